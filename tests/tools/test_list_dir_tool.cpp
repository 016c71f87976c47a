#include "tools/list_dir_tool.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include <sys/stat.h>

#include <boost/json/serialize.hpp>

#include "text/bad_utf8_samples.hpp"
#include "text/utf8.hpp"
#include "tool_test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using dagent::ToolErrc;
using dagent::tools::ListDirTool;
using dagent::tools::test::object;
using dagent::tools::test::WorkspaceFixture;

json::value entries(std::string_view text) { return json::parse(text); }

}  // namespace

TEST_CASE("list_dir lists a folder") {
  WorkspaceFixture fx;
  ListDirTool tool;
  CHECK(tool.name() == "list_dir");
  fx.write("b.txt", "12345");
  fx.write("a.md", "1");
  fx.write("docs/guide.md", "123");
  fx.write("docs/api/ref.md", "");
  fx.write(".hidden", "xy");

  SECTION("the root by default, sorted, not recursive") {
    auto result = tool.run(object("{}"), fx.context());
    REQUIRE(result.has_value());
    CHECK(*result == entries(R"({"entries": [
      {"path": ".hidden", "type": "file", "size": 2},
      {"path": "a.md", "type": "file", "size": 1},
      {"path": "b.txt", "type": "file", "size": 5},
      {"path": "docs", "type": "dir", "size": 0}]})"));
  }
  SECTION("a subfolder, paths relative to the workspace") {
    auto result = tool.run(object(R"({"path": "docs"})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(*result == entries(R"({"entries": [
      {"path": "docs/api", "type": "dir", "size": 0},
      {"path": "docs/guide.md", "type": "file", "size": 3}]})"));
  }
  SECTION("recursive") {
    auto result = tool.run(object(R"({"path": "docs", "recursive": true})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(*result == entries(R"({"entries": [
      {"path": "docs/api", "type": "dir", "size": 0},
      {"path": "docs/api/ref.md", "type": "file", "size": 0},
      {"path": "docs/guide.md", "type": "file", "size": 3}]})"));
  }
  SECTION("an empty folder") {
    fs::create_directory(fx.root() / "empty");
    auto result = tool.run(object(R"({"path": "empty/", "recursive": true})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(*result == entries(R"({"entries": []})"));
  }
}

TEST_CASE("list_dir and symlinks") {
  WorkspaceFixture fx;
  ListDirTool tool;
  fx.write("docs/guide.md", "123");
  fs::create_symlink("docs/guide.md", fx.root() / "file_link");
  fs::create_directory_symlink("docs", fx.root() / "dir_link");
  fs::create_symlink(fx.base() / "outside" / "secret.txt", fx.root() / "leak");
  fs::create_directory_symlink(fx.base() / "outside", fx.root() / "out");
  fs::create_symlink("missing.txt", fx.root() / "dangling");
  fs::create_symlink(fx.base() / "outside" / "missing.txt", fx.root() / "dangling_out");
  REQUIRE(::mkfifo((fx.root() / "pipe").c_str(), 0600) == 0);

  SECTION("inside links show their target's type; outside, dangling and special files are left out") {
    auto result = tool.run(object(R"({"recursive": true})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(*result == entries(R"({"entries": [
      {"path": "dir_link", "type": "dir", "size": 0},
      {"path": "docs", "type": "dir", "size": 0},
      {"path": "docs/guide.md", "type": "file", "size": 3},
      {"path": "file_link", "type": "file", "size": 3}]})"));
  }
  SECTION("listing through an inside folder link") {
    auto result = tool.run(object(R"({"path": "dir_link"})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(*result == entries(R"({"entries": [{"path": "docs/guide.md", "type": "file", "size": 3}]})"));
  }
  SECTION("listing through an outside folder link is refused") {
    auto result = tool.run(object(R"({"path": "out"})"), fx.context());
    REQUIRE(result.has_error());
    CHECK(result.error().code == ToolErrc::outside_workspace);
  }
}

TEST_CASE("list_dir errors") {
  WorkspaceFixture fx;
  ListDirTool tool;
  fx.write("a.md", "1");
  auto error_of = [&](std::string_view params) {
    auto result = tool.run(object(params), fx.context());
    REQUIRE(result.has_error());
    return result.error();
  };
  CHECK(error_of(R"({"path": "missing"})").message == "'missing' does not exist");
  CHECK(error_of(R"({"path": "missing"})").code == ToolErrc::not_found);
  CHECK(error_of(R"({"path": "a.md"})").message == "'a.md' is not a folder");
  CHECK(error_of(R"({"path": ".."})").code == ToolErrc::outside_workspace);
  CHECK(error_of(R"({"path": "/"})").code == ToolErrc::outside_workspace);
  CHECK(error_of(R"({"recursive": 1})").message == "invalid parameters: $.recursive: expected boolean, got integer");
  fx.cancel();
  CHECK(error_of(R"({"path": "."})").code == ToolErrc::cancelled);
}

TEST_CASE("list_dir regression: names that are not UTF-8 were returned raw") {
  WorkspaceFixture fx;
  ListDirTool tool;
  fx.write("caf\xE9/x\xED\xA0\x80.txt", "12");  // a Latin-1 folder holding a file named with a surrogate
  fx.write("ok.txt", "1");
  auto result = tool.run(object(R"({"recursive": true})"), fx.context());
  REQUIRE(result.has_value());
  CHECK(dagent::text::is_valid_utf8(json::serialize(*result)));
  const std::string fffd = dagent::test::k_fffd;
  const std::string folder = "caf" + fffd;
  const std::string file = folder + "/x" + fffd + fffd + fffd + ".txt";
  CHECK(*result == json::value(json::object{{"entries", json::array{json::object{{"path", folder}, {"type", "dir"}, {"size", 0}},
                                                       json::object{{"path", file}, {"type", "file"}, {"size", 2}},
                                                       json::object{{"path", "ok.txt"}, {"type", "file"}, {"size", 1}}}}}));
}
