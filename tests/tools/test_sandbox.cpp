// The kernel-enforced sandbox (issue 13): races against a folder swapped for a symlink, hard
// links to outside files, executable bits, and folders created through a symlink.

#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/serialize.hpp>

#include "tool_test_support.hpp"
#include "tools/file_handle.hpp"
#include "tools/list_dir_tool.hpp"
#include "tools/read_file_tool.hpp"
#include "tools/search_files_tool.hpp"
#include "tools/write_file_tool.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using dagent::ToolErrc;
using dagent::tools::ListDirTool;
using dagent::tools::ReadFileTool;
using dagent::tools::SearchFilesTool;
using dagent::tools::WriteFileTool;
using dagent::tools::test::object;
using dagent::tools::test::read_text;
using dagent::tools::test::WorkspaceFixture;
using dagent::tools::test::write_text;

// Every file and folder under `folder` (symlinks not followed) with the files' contents.
std::map<std::string, std::string> snapshot(const fs::path& folder) {
  std::map<std::string, std::string> out;
  for (const auto& entry : fs::recursive_directory_iterator(folder)) {
    const std::string name = entry.path().lexically_relative(folder).generic_string();
    out[name] = entry.is_regular_file() && !entry.is_symlink() ? read_text(entry.path()) : std::string("<folder>");
  }
  return out;
}

// Whether the call succeeded; its error message otherwise, for the failure report.
std::string failure(const dagent::ToolResult& result) { return result ? std::string() : result.error().message; }

mode_t mode_of(const fs::path& path) {
  struct stat info {};
  REQUIRE(::stat(path.c_str(), &info) == 0);
  return info.st_mode & 07777;
}

// Runs each section with the kernel's openat2 and, where it matters, with the fallback walk.
struct FallbackGuard {
  explicit FallbackGuard(bool on) { dagent::tools::force_workspace_fallback(on); }
  ~FallbackGuard() { dagent::tools::force_workspace_fallback(false); }
  FallbackGuard(const FallbackGuard&) = delete;
  FallbackGuard& operator=(const FallbackGuard&) = delete;
};

}  // namespace

TEST_CASE("sandbox race: a folder swapped for a symlink to outside while the tools run never leads outside") {
  REQUIRE(dagent::Workspace::kernel_beneath());  // Debian 12's kernel has openat2
  WorkspaceFixture fx;
  const fs::path outside = fx.base() / "outside";
  write_text(outside / "sub" / "f.txt", "OUTSIDE f\n");
  write_text(outside / "sub" / "only_outside.txt", "OUTSIDE only\n");
  fx.write("sw/sub/f.txt", "inside f\n");
  fs::create_directory_symlink(outside, fx.root() / "swl");
  const auto before = snapshot(outside);

  // Exchanges sw (a folder) and swl (a symlink to outside) as fast as it can until told to stop.
  std::atomic<bool> stop{false};
  std::atomic<long> swaps{0};
  std::atomic<int> swap_error{0};
  const std::string a = (fx.root() / "sw").string();
  const std::string b = (fx.root() / "swl").string();
  std::thread swapper([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0) {
        swaps.fetch_add(1);
      } else {
        swap_error = errno;  // e.g. a temp file system without RENAME_EXCHANGE
        break;
      }
    }
  });
  while (swaps.load() == 0 && swap_error.load() == 0) std::this_thread::yield();  // the swapping has begun
  if (swap_error.load() != 0) {
    swapper.join();
    FAIL("renameat2(RENAME_EXCHANGE) failed: " << std::strerror(swap_error.load()));
  }

  ReadFileTool read;
  WriteFileTool write;
  ListDirTool list;
  SearchFilesTool search;
  const auto ctx = fx.context();
  int calls = 0;
  int leaks = 0;
  std::string first_leak;
  const auto leaked = [&](const dagent::ToolResult& result, std::string_view what) {
    ++calls;
    const std::string text = result ? json::serialize(*result) : result.error().message;
    if (text.find("OUTSIDE") != std::string::npos || text.find("only_outside") != std::string::npos) {
      if (leaks++ == 0) first_leak = std::string(what) + ": " + text;
    }
  };
  constexpr int k_rounds = 350;
  for (int i = 0; i < k_rounds; ++i) {
    const std::string n = std::to_string(i);
    leaked(read.run(object(R"({"path": "sw/sub/f.txt"})"), ctx), "read_file");
    leaked(write.run(object(R"({"path": "sw/sub/w)" + n + R"(.txt", "content": "inside"})"), ctx), "write_file");
    leaked(write.run(object(R"({"path": "sw/sub/f.txt", "content": "x", "append": true})"), ctx), "append");
    leaked(write.run(object(R"({"path": "sw/new)" + n + R"(/deep/x.txt", "content": "inside"})"), ctx), "mkdir");
    leaked(list.run(object(R"({"path": "sw/sub"})"), ctx), "list_dir sw/sub");
    leaked(list.run(object(R"({"path": ".", "recursive": true})"), ctx), "list_dir .");
    leaked(search.run(object(R"({"pattern": "sw/sub/*.txt", "query": "OUTSIDE"})"), ctx), "search_files");
  }
  stop = true;
  swapper.join();

  INFO("first leak: " << first_leak);
  CHECK(calls >= 2000);
  CHECK(swaps.load() > 0);
  CHECK(leaks == 0);
  CHECK(snapshot(outside) == before);  // nothing written or created outside
}

TEST_CASE("sandbox: a hard link inside to a file outside is neither written nor read") {
  WorkspaceFixture fx;
  const fs::path secret = fx.base() / "outside" / "secret.txt";
  fs::create_hard_link(secret, fx.root() / "hl.txt");
  const auto ctx = fx.context();
  const std::string refused =
      "'hl.txt' has 2 hard links; files with more than one are neither read nor written (another link may be "
      "outside the workspace)";

  SECTION("replacing is refused and the link stays") {
    auto result = WriteFileTool().run(object(R"({"path": "hl.txt", "content": "pwned"})"), ctx);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().code == ToolErrc::outside_workspace);
    CHECK(result.error().message == refused);
    CHECK(fs::hard_link_count(fx.root() / "hl.txt") == 2);
  }
  SECTION("appending is refused") {
    auto result = WriteFileTool().run(object(R"({"path": "hl.txt", "content": "pwned", "append": true})"), ctx);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().message == refused);
  }
  SECTION("reading is refused; search_files skips it; list_dir still lists it") {
    auto result = ReadFileTool().run(object(R"({"path": "hl.txt"})"), ctx);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().code == ToolErrc::outside_workspace);
    CHECK(result.error().message == refused);
    auto found = SearchFilesTool().run(object(R"({"pattern": "*.txt", "query": "secret"})"), ctx);
    REQUIRE(found.has_value());
    CHECK(found->at("count") == 0);
    auto listed = ListDirTool().run(object(R"({})"), ctx);
    REQUIRE(listed.has_value());
    CHECK(json::serialize(*listed).find("hl.txt") != std::string::npos);
  }
  CHECK(read_text(secret) == "outside secret\n");
}

TEST_CASE("sandbox: writes never leave an executable bit") {
  WorkspaceFixture fx;
  const auto ctx = fx.context();
  const ::mode_t old_umask = ::umask(022);
  fx.write("run.sh", "#!/bin/sh\necho hi\n");
  fs::permissions(fx.root() / "run.sh", fs::perms(06755));

  SECTION("replacing an executable") {
    REQUIRE(failure(WriteFileTool().run(object(R"({"path": "run.sh", "content": "#!/bin/sh\nrm -rf ~\n"})"), ctx)) == "");
    CHECK(mode_of(fx.root() / "run.sh") == 0644);
  }
  SECTION("appending to an executable") {
    REQUIRE(failure(WriteFileTool().run(object(R"({"path": "run.sh", "content": "rm -rf ~\n", "append": true})"), ctx)) == "");
    CHECK(mode_of(fx.root() / "run.sh") == 0644);
    CHECK(read_text(fx.root() / "run.sh") == "#!/bin/sh\necho hi\nrm -rf ~\n");
  }
  SECTION("a read-only file keeps being read-only for others") {
    fs::permissions(fx.root() / "run.sh", fs::perms(0740));
    REQUIRE(failure(WriteFileTool().run(object(R"({"path": "run.sh", "content": "x"})"), ctx)) == "");
    CHECK(mode_of(fx.root() / "run.sh") == 0640);
  }
  SECTION("new files, replaced or appended") {
    REQUIRE(failure(WriteFileTool().run(object(R"({"path": "new.sh", "content": "x"})"), ctx)) == "");
    REQUIRE(failure(WriteFileTool().run(object(R"({"path": "new2.sh", "content": "x", "append": true})"), ctx)) == "");
    CHECK(mode_of(fx.root() / "new.sh") == 0644);
    CHECK(mode_of(fx.root() / "new2.sh") == 0644);
  }
  ::umask(old_umask);
}

TEST_CASE("sandbox: missing folders are made beneath the root, a symlinked component creates nothing outside") {
  const bool fallback = GENERATE(false, true);
  const FallbackGuard guard(fallback);
  INFO("fallback walk: " << fallback);
  WorkspaceFixture fx;
  const fs::path outside = fx.base() / "outside";
  const auto before = snapshot(outside);
  fs::create_directory_symlink(outside, fx.root() / "abs");
  fs::create_directory_symlink("../outside", fx.root() / "rel");
  fx.write("docs/a.md", "a");
  fs::create_directory_symlink("../../outside", fx.root() / "docs" / "up");
  const auto ctx = fx.context();

  for (const char* path : {"abs/a/b/c.txt", "rel/a/b/c.txt", "docs/up/a/b/c.txt", "docs/up/c.txt"}) {
    INFO(path);
    auto result = WriteFileTool().run(object(std::string(R"({"path": ")") + path + R"(", "content": "x"})"), ctx);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().code == ToolErrc::outside_workspace);
    CHECK(result.error().message == "path '" + std::string(path) + "' leads outside the workspace through a symlink");
  }
  CHECK(snapshot(outside) == before);
  CHECK_FALSE(fs::exists(fx.root() / "a"));

  // Inside, deep folders are made one at a time, also through a symlink that stays inside.
  fs::create_directory_symlink("docs", fx.root() / "d");
  REQUIRE(failure(WriteFileTool().run(object(R"({"path": "d/x/y/z.txt", "content": "z"})"), ctx)) == "");
  CHECK(read_text(fx.root() / "docs" / "x" / "y" / "z.txt") == "z");
}

TEST_CASE("sandbox: the fallback walk (kernels without openat2) refuses what the kernel refuses") {
  const FallbackGuard guard(true);
  CHECK_FALSE(dagent::Workspace::kernel_beneath());
  WorkspaceFixture fx;
  fx.write("docs/a.md", "a");
  fs::create_directory_symlink(fx.base() / "outside", fx.root() / "out");
  fs::create_symlink("../outside/secret.txt", fx.root() / "leak.txt");
  const auto ctx = fx.context();
  auto read = ReadFileTool().run(object(R"({"path": "out/secret.txt"})"), ctx);
  REQUIRE_FALSE(read.has_value());
  CHECK(read.error().message == "path 'out/secret.txt' leads outside the workspace through a symlink");
  auto leak = ReadFileTool().run(object(R"({"path": "leak.txt"})"), ctx);
  REQUIRE_FALSE(leak.has_value());
  CHECK(leak.error().code == ToolErrc::outside_workspace);
  auto listed = ListDirTool().run(object(R"({"path": "out"})"), ctx);
  REQUIRE_FALSE(listed.has_value());
  CHECK(listed.error().code == ToolErrc::outside_workspace);
  // A trailing `/` still names a folder (fuzz_workspace found the walk dropping it).
  auto slash = ReadFileTool().run(object(R"({"path": "docs/a.md/"})"), ctx);
  REQUIRE_FALSE(slash.has_value());
  CHECK(slash.error().message == "'docs/a.md' is not a folder");
  auto inside = ReadFileTool().run(object(R"({"path": "docs/a.md"})"), ctx);
  REQUIRE(inside.has_value());
  CHECK(inside->at("content") == "a");
  auto all = ListDirTool().run(object(R"({"recursive": true})"), ctx);
  REQUIRE(all.has_value());
  CHECK(json::serialize(*all).find("docs/a.md") != std::string::npos);
}
