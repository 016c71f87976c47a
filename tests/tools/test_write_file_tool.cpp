#include "tools/write_file_tool.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <string>

#include <sys/resource.h>
#include <unistd.h>

#include "tool_test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using dagent::ToolErrc;
using dagent::tools::WriteFileTool;
using dagent::tools::test::object;
using dagent::tools::test::read_text;
using dagent::tools::test::WorkspaceFixture;

std::size_t count_entries(const fs::path& folder) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(folder)) ++n;
  return n;
}

}  // namespace

TEST_CASE("write_file writes files inside the workspace") {
  WorkspaceFixture fx;
  WriteFileTool tool;
  CHECK(tool.name() == "write_file");

  SECTION("a new file in new folders") {
    auto result = tool.run(object(R"({"path": "out/deep/summary.md", "content": "hello\n"})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(*result == json::parse(R"({"path": "out/deep/summary.md", "bytes": 6})"));
    CHECK(read_text(fx.root() / "out" / "deep" / "summary.md") == "hello\n");
  }
  SECTION("replacing leaves no temporary file and keeps the mode") {
    fx.write("a.txt", "old content that is longer");
    fs::permissions(fx.root() / "a.txt", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    auto result = tool.run(object(R"({"path": "a.txt", "content": "new"})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(result->at("bytes") == 3);
    CHECK(read_text(fx.root() / "a.txt") == "new");
    CHECK(count_entries(fx.root()) == 1);
    CHECK(fs::status(fx.root() / "a.txt").permissions() ==
          (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
  }
  SECTION("append adds to the end, creating the file if needed") {
    REQUIRE(tool.run(object(R"({"path": "log.txt", "content": "one\n", "append": true})"), fx.context()).has_value());
    auto result = tool.run(object(R"({"path": "log.txt", "content": "two\n", "append": true})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(*result == json::parse(R"({"path": "log.txt", "bytes": 4})"));
    CHECK(read_text(fx.root() / "log.txt") == "one\ntwo\n");
  }
  SECTION("append false replaces") {
    fx.write("a.txt", "old");
    REQUIRE(tool.run(object(R"({"path": "a.txt", "content": "new", "append": false})"), fx.context()).has_value());
    CHECK(read_text(fx.root() / "a.txt") == "new");
  }
  SECTION("empty content and raw bytes") {
    REQUIRE(tool.run(object(R"({"path": "empty.txt", "content": ""})"), fx.context()).has_value());
    CHECK(fs::file_size(fx.root() / "empty.txt") == 0);
    json::object params{{"path", "raw.bin"}, {"content", json::string(std::string("a\0\xff", 3))}};
    auto result = tool.run(params, fx.context());
    REQUIRE(result.has_value());
    CHECK(result->at("bytes") == 3);
    CHECK(read_text(fx.root() / "raw.bin") == std::string("a\0\xff", 3));
  }
  SECTION("a symlink inside is written through to its target") {
    fx.write("docs/real.md", "old");
    fs::create_symlink("docs/real.md", fx.root() / "alias.md");
    auto result = tool.run(object(R"({"path": "alias.md", "content": "new"})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(result->at("path") == "docs/real.md");
    CHECK(read_text(fx.root() / "docs" / "real.md") == "new");
    CHECK(fs::is_symlink(fx.root() / "alias.md"));
  }
}

TEST_CASE("write_file errors") {
  WorkspaceFixture fx;
  WriteFileTool tool;
  auto error_of = [&](std::string_view params) {
    auto result = tool.run(object(params), fx.context());
    REQUIRE(result.has_error());
    return result.error();
  };

  SECTION("escapes write nothing outside") {
    CHECK(error_of(R"({"path": "../outside/new.txt", "content": "x"})").code == ToolErrc::outside_workspace);
    CHECK(error_of(R"({"path": "/tmp/dagent-should-not-exist.txt", "content": "x"})").code ==
          ToolErrc::outside_workspace);
    fs::create_symlink(fx.base() / "outside" / "secret.txt", fx.root() / "leak.txt");
    CHECK(error_of(R"({"path": "leak.txt", "content": "x"})").code == ToolErrc::outside_workspace);
    CHECK(error_of(R"({"path": "leak.txt", "content": "x", "append": true})").code == ToolErrc::outside_workspace);
    CHECK(read_text(fx.base() / "outside" / "secret.txt") == "outside secret\n");
    fs::create_symlink(fx.base() / "outside" / "planted.txt", fx.root() / "dangling.txt");
    CHECK(error_of(R"({"path": "dangling.txt", "content": "x"})").code == ToolErrc::outside_workspace);
    CHECK_FALSE(fs::exists(fx.base() / "outside" / "planted.txt"));
    fs::create_directory_symlink(fx.base() / "outside", fx.root() / "out");
    CHECK(error_of(R"({"path": "out/sub/new.txt", "content": "x"})").code == ToolErrc::outside_workspace);
    CHECK_FALSE(fs::exists(fx.base() / "outside" / "sub"));
    CHECK(count_entries(fx.base() / "outside") == 1);
  }
  SECTION("a folder cannot be written") {
    fs::create_directory(fx.root() / "docs");
    auto e = error_of(R"({"path": "docs", "content": "x"})");
    CHECK(e.code == ToolErrc::invalid_parameters);
    CHECK(e.message == "'docs' is a folder");
    CHECK(error_of(R"({"path": ".", "content": "x"})").code == ToolErrc::invalid_parameters);
  }
  SECTION("a file in the way of a folder") {
    fx.write("docs", "a file");
    auto e = error_of(R"({"path": "docs/a.md", "content": "x"})");
    CHECK(e.code == ToolErrc::invalid_parameters);
    CHECK(e.message == "'docs' is not a folder");
  }
  SECTION("bad parameters") {
    CHECK(error_of(R"({"path": "a.txt"})").message == "invalid parameters: $.content: missing required property");
    CHECK(error_of(R"({"path": "a.txt", "content": 5})").message ==
          "invalid parameters: $.content: expected string, got integer");
    CHECK(error_of(R"({"path": "a.txt", "content": "x", "append": "yes"})").message ==
          "invalid parameters: $.append: expected boolean, got string");
    CHECK_FALSE(fs::exists(fx.root() / "a.txt"));
  }
  SECTION("a failed write keeps the old file and leaves no temporary file") {
    fx.write("a.txt", "old");
    // Files may not grow past 10 bytes: the write stops half way with EFBIG.
    struct rlimit saved {};
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = saved;
    small.rlim_cur = 10;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    auto replaced = tool.run(object(R"({"path": "a.txt", "content": "far more than ten bytes"})"), fx.context());
    auto appended =
        tool.run(object(R"({"path": "b.txt", "content": "also more than ten bytes", "append": true})"), fx.context());
    ::setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, old_handler);
    REQUIRE(replaced.has_error());
    CHECK(replaced.error().code == ToolErrc::io_error);
    CHECK(replaced.error().message == "cannot write 'a.txt': File too large");
    CHECK(read_text(fx.root() / "a.txt") == "old");
    REQUIRE(appended.has_error());
    CHECK(appended.error().code == ToolErrc::io_error);
    CHECK(count_entries(fx.root()) == 2);
  }
  SECTION("a read-only folder fails cleanly and keeps the old file") {
    if (::geteuid() == 0) return;  // root writes anywhere
    fx.write("ro/a.txt", "old");
    fs::permissions(fx.root() / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    auto e = error_of(R"({"path": "ro/a.txt", "content": "new"})");
    CHECK(e.code == ToolErrc::io_error);
    CHECK(e.message == "cannot create a temporary file for 'ro/a.txt': Permission denied");
    fs::permissions(fx.root() / "ro", fs::perms::owner_all);
    CHECK(read_text(fx.root() / "ro" / "a.txt") == "old");
    CHECK(count_entries(fx.root() / "ro") == 1);
  }
}
