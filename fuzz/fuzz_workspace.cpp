// Workspace path checks (src/tools/workspace): a fixed tree is built once per process, with
// symlinks that stay inside, lead outside (relative, absolute, dangling, through `..`) and loop;
// the fuzzer supplies the relative path. Checks that nothing opened lands outside the root, that
// open_existing reaches the real path (realpath(3) of the same path: the kernel's RESOLVE_BENEATH
// is stricter, never looser), that open_for_write's folder is real, inside, and never names a
// symlink or the root, that protected names are refused, and that creating parent folders
// creates nothing outside. Both the kernel's openat2 and the userspace fallback are run.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <string_view>

#include "check.hpp"
#include "dagent/workspace.hpp"
#include "tools/file_handle.hpp"

namespace {

namespace fs = std::filesystem;
using dagent::Workspace;
using dagent::fuzz::check;

struct Tree {
  fs::path base;     // holds root/ and outside/
  fs::path root;     // the workspace, canonical
  fs::path outside;  // canonical
  std::set<fs::path> original;  // every path under root, symlinks not followed
};

std::set<fs::path> listing(const fs::path& dir) {
  std::set<fs::path> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end; !ec && it != end;
       it.increment(ec))
    out.insert(it->path());
  return out;
}

const Tree& tree() {
  static const Tree t = [] {
    Tree t;
    t.base = fs::canonical(dagent::fuzz::scratch_dir("workspace"));
    t.root = t.base / "root";
    t.outside = t.base / "outside";
    fs::create_directories(t.root / "dir" / "sub");
    fs::create_directories(t.outside / "deep");
    std::ofstream(t.root / "a.txt") << "a";
    std::ofstream(t.root / "dir" / "b.txt") << "b";
    std::ofstream(t.outside / "secret.txt") << "secret";
    fs::create_directory_symlink("dir", t.root / "in");                       // inside, relative
    fs::create_directory_symlink(t.root / "dir", t.root / "in_abs");          // inside, absolute
    fs::create_directory_symlink("..", t.root / "dir" / "up");                // the root itself
    fs::create_directory_symlink("../..", t.root / "dir" / "upup");           // out through ..
    fs::create_directory_symlink("../outside", t.root / "out");               // outside, relative
    fs::create_directory_symlink(t.outside, t.root / "out_abs");              // outside, absolute
    fs::create_symlink("../outside/secret.txt", t.root / "secret");           // an outside file
    fs::create_symlink("../outside/new.txt", t.root / "dangling_out");        // a file to be created outside
    fs::create_symlink("missing.txt", t.root / "dangling_in");                // a file to be created inside
    fs::create_symlink("/", t.root / "slash");
    fs::create_symlink("loop2", t.root / "loop1");
    fs::create_symlink("loop1", t.root / "loop2");
    fs::create_directory_symlink("../out", t.root / "dir" / "chain");         // via another symlink
    t.original = listing(t.root);
    return t;
  }();
  return t;
}

bool within(const fs::path& path, const fs::path& root) {
  auto r = root.begin();
  auto p = path.begin();
  for (; r != root.end(); ++r, ++p)
    if (p == path.end() || *p != *r) return false;
  return true;
}

// Removes what a create_parents call added, so each run starts from the same tree.
void restore(const Tree& t) {
  for (const auto& path : listing(t.root)) {
    if (t.original.contains(path)) continue;
    std::error_code ec;
    fs::remove_all(path, ec);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Tree& t = tree();
  static const Workspace ws = Workspace::open(t.root, dagent::Protection{{"guarded"}, {}}).value();
  const std::string_view user_path(reinterpret_cast<const char*>(data), size);

  for (bool fallback : {false, true}) {
    dagent::tools::force_workspace_fallback(fallback);
    if (auto r = ws.open_existing(user_path, O_PATH)) {
      check(within(r->real, t.root), "open_existing landed outside the root");
      std::error_code ec;
      const fs::path real = fs::canonical(t.root / fs::path(std::string(user_path)), ec);
      check(!ec && real == r->real, "open_existing did not reach the real path");
      const std::string shown = ws.display(r->real);
      check(!shown.empty() && shown.front() != '/' && !shown.starts_with("..") &&
                shown.find("/../") == std::string::npos,
            "display of an inside path leaves the root");
    }

    for (bool create : {false, true}) {
      const auto before_outside = listing(t.outside);
      if (auto r = ws.open_for_write(user_path, create)) {
        check(within(r->real, t.root) && r->real != t.root, "open_for_write landed outside the root or on it");
        check(!r->name.empty() && r->name.find('/') == std::string::npos, "open_for_write's name is not one name");
        struct stat info {};
        check(::fstatat(r->dir.get(), r->name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISLNK(info.st_mode),
              "open_for_write named a symlink");
        std::error_code ec;
        const fs::path parent = fs::canonical(r->real.parent_path(), ec);
        check(!ec && parent == r->real.parent_path() && within(parent, t.root),
              "the folder open_for_write returned is not real and inside");
        bool guarded = false;
        for (const auto& element : r->real) guarded = guarded || element == "guarded";
        check(!guarded, "open_for_write allowed a protected name");
      }
      check(listing(t.outside) == before_outside, "open_for_write created something outside the root");
      if (create) restore(t);
    }
  }
  dagent::tools::force_workspace_fallback(false);
  return 0;
}
