#include "tools/glob_pattern.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace {

using dagent::ToolErrc;
using dagent::tools::GlobPattern;

std::vector<std::string> split(std::string_view path) {
  std::vector<std::string> names;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) names.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return names;
}

GlobPattern parse(std::string_view pattern) {
  auto glob = GlobPattern::parse(pattern);
  REQUIRE(glob.has_value());
  return *glob;
}

bool matches(std::string_view pattern, std::string_view path) { return parse(pattern).matches(split(path)); }

}  // namespace

TEST_CASE("GlobPattern::match_name") {
  CHECK(GlobPattern::match_name("*.md", "a.md"));
  CHECK(GlobPattern::match_name("*.md", ".md") == false);
  CHECK(GlobPattern::match_name("*", "anything"));
  CHECK(GlobPattern::match_name("a*b*c", "aXXbYYc"));
  CHECK_FALSE(GlobPattern::match_name("a*b*c", "aXXbYY"));
  CHECK(GlobPattern::match_name("?.txt", "a.txt"));
  CHECK_FALSE(GlobPattern::match_name("?.txt", "ab.txt"));
  CHECK(GlobPattern::match_name("?.txt", "\xC3\xA9.txt"));
  CHECK(GlobPattern::match_name("[abc].md", "b.md"));
  CHECK_FALSE(GlobPattern::match_name("[abc].md", "d.md"));
  CHECK(GlobPattern::match_name("[a-c]x", "cx"));
  CHECK(GlobPattern::match_name("[!a-c]x", "dx"));
  CHECK_FALSE(GlobPattern::match_name("[^a-c]x", "ax"));
  CHECK(GlobPattern::match_name("[]]", "]"));
  CHECK(GlobPattern::match_name("a[b", "a[b"));
  CHECK(GlobPattern::match_name("file", "file"));
  CHECK_FALSE(GlobPattern::match_name("file", "file2"));
  SECTION("hidden names need an explicit leading dot") {
    CHECK_FALSE(GlobPattern::match_name("*", ".env"));
    CHECK_FALSE(GlobPattern::match_name("?env", ".env"));
    CHECK(GlobPattern::match_name(".*", ".env"));
    CHECK(GlobPattern::match_name(".env", ".env"));
  }
}

TEST_CASE("GlobPattern splits the literal folder part off") {
  CHECK(parse("docs/**/*.md").base() == "docs");
  CHECK(parse("docs/api/*.md").base() == "docs/api");
  CHECK(parse("*.md").base() == ".");
  CHECK(parse("README.md").base() == ".");
  CHECK(parse("docs/README.md").base() == "docs");
  CHECK(parse("./docs//x/*.md").base() == "docs/x");
  CHECK(parse("../x/*.md").base() == "../x");
}

TEST_CASE("GlobPattern matches paths below its base") {
  CHECK(matches("docs/**/*.md", "a.md"));
  CHECK(matches("docs/**/*.md", "x/y/z/a.md"));
  CHECK_FALSE(matches("docs/**/*.md", "x/a.txt"));
  CHECK(matches("**", "a/b/c.txt"));
  CHECK(matches("**/*", "top.txt"));
  CHECK(matches("*/*.md", "x/a.md"));
  CHECK_FALSE(matches("*/*.md", "a.md"));
  CHECK_FALSE(matches("*/*.md", "x/y/a.md"));
  CHECK(matches("src/**/test/*.cpp", "test/a.cpp"));
  CHECK(matches("src/**/test/*.cpp", "x/test/a.cpp"));
  CHECK(matches("**/a/**/b", "a/a/b"));
  CHECK(matches("**/**/x", "x"));
  CHECK(matches("README.md", "README.md"));
  CHECK_FALSE(matches("**/*.md", ".git/a.md"));
  CHECK_FALSE(matches("**/*.md", "x/.hidden.md"));
  CHECK(matches(".dagent/**", "memory/index.bin"));
  CHECK(matches("**/.*", "x/.env"));
}

TEST_CASE("GlobPattern::may_match_below prunes folders") {
  auto glob = parse("*/docs/*.md");
  CHECK(glob.may_match_below(split("")));
  CHECK(glob.may_match_below(split("x")));
  CHECK(glob.may_match_below(split("x/docs")));
  CHECK_FALSE(glob.may_match_below(split("x/src")));
  CHECK_FALSE(glob.may_match_below(split("x/docs/deeper")));
  auto deep = parse("**/*.md");
  CHECK(deep.may_match_below(split("a/b/c")));
  CHECK_FALSE(deep.may_match_below(split(".git")));
  CHECK_FALSE(deep.may_match_below(split("a/.cache")));
}

TEST_CASE("GlobPattern::parse refuses bad patterns") {
  auto check = [](std::string_view pattern, ToolErrc code, std::string_view message) {
    auto glob = GlobPattern::parse(pattern);
    REQUIRE_FALSE(glob.has_value());
    CHECK(glob.error().code == code);
    CHECK(glob.error().message == message);
  };
  check("", ToolErrc::invalid_parameters, "pattern is empty");
  check("/etc/*", ToolErrc::outside_workspace, "absolute pattern '/etc/*' is not allowed");
  check(std::string_view("*.md\0x", 6), ToolErrc::outside_workspace, "pattern contains a NUL byte");
  check("*/../x", ToolErrc::invalid_parameters, "pattern '*/../x': '..' may only appear in its leading folder part");
  check("docs/..", ToolErrc::invalid_parameters, "pattern 'docs/..': '..' may only appear in its leading folder part");
  check("./", ToolErrc::invalid_parameters, "pattern './' names no file");
}
