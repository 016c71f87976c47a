#pragma once
// The fuzz targets' assertion: an invariant that does not hold aborts, which libFuzzer reports
// as a crash with the input that caused it.

#include <stdlib.h>  // mkdtemp

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

namespace dagent::fuzz {

inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

/// A check that text reaching output is valid UTF-8 (issue 12). DAGENT_FUZZ_NO_UTF8=1 skips it, to
/// fuzz the rest of a reader whose UTF-8 repair is not in yet; CI and scripts/fuzz.sh keep it on.
inline void check_utf8(bool ok, const char* what) {
  static const bool skip = [] {
    const char* env = std::getenv("DAGENT_FUZZ_NO_UTF8");
    return env && *env && *env != '0';
  }();
  if (!skip) check(ok, what);
}

/// Where targets that go through files keep them: a RAM disk when there is one, since a save
/// fsyncs and a disk would make each run take milliseconds.
inline std::filesystem::path scratch_base() {
  std::error_code ec;
  if (std::filesystem::is_directory("/dev/shm", ec)) return "/dev/shm";
  return std::filesystem::temp_directory_path();
}

/// A folder of this process's own under scratch_base(), named after `target`, created at the first
/// call and removed at exit (a target that crashes leaves it behind).
inline const std::filesystem::path& scratch_dir(std::string_view target) {
  static const std::filesystem::path dir = [&] {
    std::string tmpl = (scratch_base() / ("dagent-fuzz-" + std::string(target) + "-XXXXXX")).string();
    check(::mkdtemp(tmpl.data()) != nullptr, "cannot create a scratch folder");
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir({}), ec);
    });
    return std::filesystem::path(tmpl);
  }();
  return dir;
}

}  // namespace dagent::fuzz
