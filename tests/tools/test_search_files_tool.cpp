#include "tools/search_files_tool.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "tools/registry.hpp"

#include <boost/json/serialize.hpp>

#include "text/bad_utf8_samples.hpp"
#include "text/utf8.hpp"
#include "tool_test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using dagent::ToolErrc;
using dagent::test::k_bad_text;
using dagent::test::k_bad_text_repaired;
using dagent::test::k_fffd;
using dagent::tools::SearchFilesTool;
using dagent::tools::test::object;
using dagent::tools::test::WorkspaceFixture;

json::value search(SearchFilesTool& tool, const WorkspaceFixture& fx, std::string_view params) {
  auto result = tool.run(object(params), fx.context());
  REQUIRE(result.has_value());
  return *result;
}

}  // namespace

TEST_CASE("search_files finds files by glob") {
  WorkspaceFixture fx;
  SearchFilesTool tool;
  CHECK(tool.name() == "search_files");
  fx.write("README.md", "readme\n");
  fx.write("docs/intro.md", "intro\n");
  fx.write("docs/guide/setup.md", "setup\n");
  fx.write("docs/guide/notes.txt", "notes\n");
  fx.write("docs/.draft.md", "draft\n");
  fx.write(".git/HEAD.md", "ref\n");

  SECTION("** spans any depth, sorted by path") {
    CHECK(search(tool, fx, R"({"pattern": "docs/**/*.md"})") == json::parse(R"({
      "matches": [{"path": "docs/guide/setup.md"}, {"path": "docs/intro.md"}], "count": 2})"));
  }
  SECTION("* stays within one folder") {
    CHECK(search(tool, fx, R"({"pattern": "*.md"})") ==
          json::parse(R"({"matches": [{"path": "README.md"}], "count": 1})"));
    CHECK(search(tool, fx, R"({"pattern": "docs/*/*.txt"})") ==
          json::parse(R"({"matches": [{"path": "docs/guide/notes.txt"}], "count": 1})"));
  }
  SECTION("hidden names only with an explicit dot") {
    CHECK(search(tool, fx, R"({"pattern": "**/*.md"})").at("count") == 3);
    CHECK(search(tool, fx, R"({"pattern": "docs/.*.md"})") ==
          json::parse(R"({"matches": [{"path": "docs/.draft.md"}], "count": 1})"));
    CHECK(search(tool, fx, R"({"pattern": ".git/*"})").at("count") == 1);
  }
  SECTION("?, classes and a literal path") {
    CHECK(search(tool, fx, R"({"pattern": "docs/guide/[ns]*.???"})").at("count") == 1);
    CHECK(search(tool, fx, R"({"pattern": "docs/intro.md"})") ==
          json::parse(R"({"matches": [{"path": "docs/intro.md"}], "count": 1})"));
  }
  SECTION("a missing base folder is no match, not an error") {
    CHECK(search(tool, fx, R"({"pattern": "nowhere/**/*.md"})") == json::parse(R"({"matches": [], "count": 0})"));
    CHECK(search(tool, fx, R"({"pattern": "README.md/*"})") == json::parse(R"({"matches": [], "count": 0})"));
  }
  SECTION("folders are not matches") {
    CHECK(search(tool, fx, R"({"pattern": "docs/*"})") ==
          json::parse(R"({"matches": [{"path": "docs/intro.md"}], "count": 1})"));
  }
  SECTION("max_results cuts and says so") {
    CHECK(search(tool, fx, R"({"pattern": "**/*", "max_results": 2})") == json::parse(R"({
      "matches": [{"path": "README.md"}, {"path": "docs/guide/notes.txt"}], "count": 2, "truncated": true})"));
    CHECK_FALSE(search(tool, fx, R"({"pattern": "**/*", "max_results": 4})").as_object().contains("truncated"));
  }
}

TEST_CASE("search_files with a query finds lines") {
  WorkspaceFixture fx;
  SearchFilesTool tool;
  fx.write("a.txt", "first line\nTODO: fix\r\nnothing\nanother TODO");
  fx.write("b.txt", "TODO in b\n");
  fx.write("c.md", "TODO but not a txt\n");
  fx.write("bin.txt", std::string("TODO\0binary\n", 12));

  SECTION("plain text, one match per line, 1-based, without line endings") {
    CHECK(search(tool, fx, R"({"pattern": "*.txt", "query": "TODO"})") == json::parse(R"({"matches": [
      {"path": "a.txt", "line": 2, "text": "TODO: fix"},
      {"path": "a.txt", "line": 4, "text": "another TODO"},
      {"path": "b.txt", "line": 1, "text": "TODO in b"}], "count": 3})"));
  }
  SECTION("plain text is not a regex") {
    fx.write("d.txt", "a.b\naxb\n");
    CHECK(search(tool, fx, R"({"pattern": "d.txt", "query": "a.b"})").at("count") == 1);
  }
  SECTION("regex") {
    CHECK(search(tool, fx, R"({"pattern": "*.txt", "query": "^TODO\\b", "regex": true})") ==
          json::parse(R"({"matches": [
      {"path": "a.txt", "line": 2, "text": "TODO: fix"},
      {"path": "b.txt", "line": 1, "text": "TODO in b"}], "count": 2})"));
  }
  SECTION("max_results counts lines") {
    CHECK(search(tool, fx, R"({"pattern": "**", "query": "TODO", "max_results": 2})") == json::parse(R"({"matches": [
      {"path": "a.txt", "line": 2, "text": "TODO: fix"},
      {"path": "a.txt", "line": 4, "text": "another TODO"}], "count": 2, "truncated": true})"));
  }
  SECTION("binary files are skipped, but a NUL after the first 8 KiB is not binary") {
    fx.write("late.txt", std::string(9000, 'x') + "\nTODO\n" + std::string(1, '\0'));
    auto found = search(tool, fx, R"({"pattern": "*l*.txt", "query": "TODO"})");
    CHECK(found == json::parse(R"({"matches": [{"path": "late.txt", "line": 2, "text": "TODO"}], "count": 1})"));
  }
  SECTION("lines longer than a read chunk") {
    fx.write("long.txt", "start\n" + std::string(100'000, 'y') + "TODO\nend TODO");
    SearchFilesTool roomy(200'000);
    auto found = search(roomy, fx, R"({"pattern": "long.txt", "query": "TODO"})");
    REQUIRE(found.at("count") == 2);
    CHECK(found.at("matches").at(0).at("line") == 2);
    CHECK(found.at("matches").at(0).at("text").as_string().size() == 100'004);
    CHECK(found.at("matches").at(1) == json::parse(R"({"path": "long.txt", "line": 3, "text": "end TODO"})"));
  }
}

TEST_CASE("search_files regression: a file without newlines is read in blocks and only a line's first "
          "tools.search_max_line_bytes are searched") {
  WorkspaceFixture fx;
  // 4 MiB on one line: a needle at the start, one past the cap, one at the very end.
  std::string text = "needle-start " + std::string(4 << 20, 'z');
  text.replace(100'000, 12, "needle-inner");
  text += " needle-end";
  fx.write("one-line.txt", text);
  fx.write("short.txt", "a needle here\n");

  SECTION("the default cap (64 KiB): only the first bytes of the line count") {
    SearchFilesTool tool;
    auto found = search(tool, fx, R"({"pattern": "one-line.txt", "query": "needle"})");
    REQUIRE(found.at("count") == 1);
    CHECK(found.at("matches").at(0).at("line") == 1);
    CHECK(found.at("matches").at(0).at("text").as_string().size() == 64u << 10);
    CHECK(search(tool, fx, R"({"pattern": "one-line.txt", "query": "needle-inner"})").at("count") == 0);
    CHECK(search(tool, fx, R"({"pattern": "one-line.txt", "query": "needle-end"})").at("count") == 0);
  }
  SECTION("a configured cap, through the registry's options") {
    auto registry = dagent::tools::make_builtin_registry({"search_files"}, {.search_max_line_bytes = 200'000});
    auto* tool = dynamic_cast<SearchFilesTool*>(registry.get("search_files").get());
    REQUIRE(tool != nullptr);
    CHECK(search(*tool, fx, R"({"pattern": "one-line.txt", "query": "needle-inner"})").at("count") == 1);
    CHECK(search(*tool, fx, R"({"pattern": "one-line.txt", "query": "needle-end"})").at("count") == 0);
    CHECK(search(*tool, fx, R"({"pattern": "*.txt", "query": "needle"})").at("count") == 2);
  }
  SECTION("a cut inside a multi-byte character keeps the text valid UTF-8") {
    SearchFilesTool tool(64);
    fx.write("utf8.txt", "needle " + std::string(56, 'a') + "日本語");  // byte 64 is inside 日
    auto found = search(tool, fx, R"({"pattern": "utf8.txt", "query": "needle"})");
    CHECK(found.at("matches").at(0).at("text").as_string() == "needle " + std::string(56, 'a'));
  }
}

TEST_CASE("search_files and symlinks") {
  WorkspaceFixture fx;
  SearchFilesTool tool;
  fx.write("docs/a.md", "secret word inside\n");
  fs::create_symlink("docs/a.md", fx.root() / "alias.md");
  fs::create_directory_symlink("docs", fx.root() / "docs_link");
  fs::create_symlink(fx.base() / "outside" / "secret.txt", fx.root() / "leak.md");
  fs::create_directory_symlink(fx.base() / "outside", fx.root() / "out");

  SECTION("inside file links count, folder links are not entered, outside links are left out") {
    CHECK(search(tool, fx, R"({"pattern": "**/*.md"})") ==
          json::parse(R"({"matches": [{"path": "alias.md"}, {"path": "docs/a.md"}], "count": 2})"));
    CHECK(search(tool, fx, R"({"pattern": "**/*", "query": "secret"})") == json::parse(R"({"matches": [
      {"path": "alias.md", "line": 1, "text": "secret word inside"},
      {"path": "docs/a.md", "line": 1, "text": "secret word inside"}], "count": 2})"));
  }
  SECTION("a base folder leading outside is refused") {
    auto result = tool.run(object(R"({"pattern": "out/*.txt"})"), fx.context());
    REQUIRE(result.has_error());
    CHECK(result.error().code == ToolErrc::outside_workspace);
  }
}

TEST_CASE("search_files errors") {
  WorkspaceFixture fx;
  SearchFilesTool tool;
  fx.write("a.txt", "x\n");
  auto error_of = [&](std::string_view params) {
    auto result = tool.run(object(params), fx.context());
    REQUIRE(result.has_error());
    return result.error();
  };
  SECTION("escaping patterns") {
    CHECK(error_of(R"({"pattern": "../**/*.txt"})").message == "pattern '../**/*.txt': path '..' leaves the workspace");
    CHECK(error_of(R"({"pattern": "/etc/*"})").code == ToolErrc::outside_workspace);
    CHECK(error_of(R"({"pattern": "*\u0000"})").code == ToolErrc::outside_workspace);
    CHECK(error_of(R"({"pattern": "*/../../x"})").code == ToolErrc::invalid_parameters);
  }
  SECTION("bad regex") {
    auto e = error_of(R"({"pattern": "*", "query": "([a", "regex": true})");
    CHECK(e.code == ToolErrc::invalid_parameters);
    CHECK(e.message.rfind("invalid regex '([a': ", 0) == 0);
  }
  SECTION("a regex too complex for a long line fails instead of crashing") {
    fx.write("minified.js", std::string(200'000, 'y'));
    auto e = error_of(R"({"pattern": "*.js", "query": "(a|y)*x", "regex": true})");
    CHECK(e.code == ToolErrc::failed);
    CHECK(e.message.rfind("regex '(a|y)*x' failed on line 1 of 'minified.js': ", 0) == 0);
    auto found = search(tool, fx, R"({"pattern": "*.js", "query": ".*x", "regex": true})");
    CHECK(found.at("count") == 0);
  }
  SECTION("bad parameters") {
    CHECK(error_of(R"({})").message == "invalid parameters: $.pattern: missing required property");
    CHECK(error_of(R"({"pattern": "*", "max_results": 0})").message ==
          "invalid parameters: $.max_results: must be >= 1, got 0");
    CHECK(error_of(R"({"pattern": "*", "query": ""})").code == ToolErrc::invalid_parameters);
    CHECK(error_of(R"({"pattern": "*", "regex": "yes"})").code == ToolErrc::invalid_parameters);
  }
  SECTION("cancelled") {
    fx.cancel();
    CHECK(error_of(R"({"pattern": "**"})").code == ToolErrc::cancelled);
    CHECK(error_of(R"({"pattern": "*", "query": "x"})").code == ToolErrc::cancelled);
  }
}

TEST_CASE("search_files regression: matched lines and file names that are not UTF-8 were returned raw") {
  WorkspaceFixture fx;
  SearchFilesTool tool;
  fx.write("notes.txt", "first\nneedle " + k_bad_text + "\nlast needle\n");
  fx.write("caf\xE9.txt", "needle in a Latin-1 name\n");

  auto result = search(tool, fx, R"({"pattern": "*.txt", "query": "needle"})");
  CHECK(dagent::text::is_valid_utf8(json::serialize(result)));
  const auto& matches = result.at("matches").as_array();
  REQUIRE(matches.size() == 3);
  CHECK(matches[0].at("path") == ("caf" + k_fffd + ".txt").c_str());
  CHECK(matches[0].at("text") == "needle in a Latin-1 name");
  CHECK(matches[1].at("path") == "notes.txt");
  CHECK(matches[1].at("line") == 2);
  CHECK(matches[1].at("text") == ("needle " + k_bad_text_repaired).c_str());
  CHECK(matches[2].at("text") == "last needle");

  SECTION("a regex matches the file's bytes; what it returns is repaired") {
    auto found = search(tool, fx, R"({"pattern": "notes.txt", "query": "caf.", "regex": true})");
    REQUIRE(found.at("count") == 1);
    CHECK(found.at("matches").as_array()[0].at("text") == ("needle " + k_bad_text_repaired).c_str());
  }
  SECTION("without a query, names alone") {
    auto named = search(tool, fx, R"({"pattern": "caf*"})");
    REQUIRE(named.at("count") == 1);
    CHECK(named.at("matches").as_array()[0].at("path") == ("caf" + k_fffd + ".txt").c_str());
  }
}
