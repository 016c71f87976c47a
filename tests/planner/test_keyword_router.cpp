#include "planner/keyword_router.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace {

using dagent::planner::KeywordRoute;
using dagent::planner::KeywordRouter;
using dagent::planner::RouteMatch;

using Routes = std::vector<KeywordRoute>;
using Strings = std::vector<std::string>;

char fold(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_word(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), fold);
  return out;
}

/// Where the first hit of `keyword` in `goal` ends (one past), by std::search; nullopt if none.
std::optional<std::size_t> naive_first_end(std::string_view goal, std::string_view keyword) {
  const std::string g = lower(goal);
  const std::string k = lower(keyword);
  for (auto it = g.begin();; ++it) {
    it = std::search(it, g.end(), k.begin(), k.end());
    if (it == g.end()) return std::nullopt;
    const auto start = static_cast<std::size_t>(it - g.begin());
    const std::size_t end = start + k.size();
    if ((start == 0 || !is_word(g[start - 1])) && (end == g.size() || !is_word(g[end]))) return end;
  }
}

/// The reference: every keyword searched on its own, then the same choice rules as the router.
std::optional<RouteMatch> naive_match(const Routes& routes, std::string_view goal) {
  std::optional<RouteMatch> best;
  for (std::size_t r = 0; r < routes.size(); ++r) {
    std::vector<std::tuple<std::size_t, std::size_t, std::string>> hits;  // end, -length, keyword
    Strings seen;
    for (const auto& keyword : routes[r].keywords) {
      if (keyword.empty() || std::find(seen.begin(), seen.end(), lower(keyword)) != seen.end())
        continue;
      seen.push_back(lower(keyword));
      if (const auto end = naive_first_end(goal, keyword))
        hits.emplace_back(*end, SIZE_MAX - keyword.size(), keyword);
    }
    if (hits.empty() || (best && hits.size() <= best->keywords.size())) continue;
    std::sort(hits.begin(), hits.end());
    best = RouteMatch{r, {}};
    for (const auto& hit : hits) best->keywords.push_back(std::get<2>(hit));
  }
  return best;
}

std::optional<RouteMatch> expected(std::size_t route, Strings keywords) {
  return RouteMatch{route, std::move(keywords)};
}

}  // namespace

TEST_CASE("KeywordRouter matches a single route", "[planner][keyword_router]") {
  const KeywordRouter router(Routes{{"deploy", {"deploy", "release", "ship it"}}});
  REQUIRE(router.routes().size() == 1);
  CHECK(router.routes()[0].name == "deploy");

  SECTION("one keyword") { CHECK(router.match("please deploy the service") == expected(0, {"deploy"})); }
  SECTION("keywords reported in order of first hit and once each") {
    CHECK(router.match("release then deploy then release again") == expected(0, {"release", "deploy"}));
  }
  SECTION("no hit") { CHECK(router.match("write a poem") == std::nullopt); }
  SECTION("empty goal") { CHECK(router.match("") == std::nullopt); }
}

TEST_CASE("KeywordRouter is ASCII case-insensitive", "[planner][keyword_router]") {
  const KeywordRouter router(Routes{{"git", {"Commit", "PUSH"}}});
  SECTION("goal case differs") { CHECK(router.match("COMMIT and push") == expected(0, {"Commit", "PUSH"})); }
  SECTION("mixed case") { CHECK(router.match("cOmMiT") == expected(0, {"Commit"})); }
  SECTION("non-ASCII bytes are not folded") {
    const KeywordRouter accents(Routes{{"cafe", {"caf\xc3\xa9"}}});
    CHECK(accents.match("CAF\xc3\xa9") == expected(0, {"caf\xc3\xa9"}));
    CHECK(accents.match("caf\xc3\x89") == std::nullopt);  // U+00C9, not U+00E9
  }
  SECTION("the same keyword twice in one route in different cases counts once") {
    const KeywordRouter twice(Routes{{"a", {"log", "LOG", "Log"}}, {"b", {"log", "trace"}}});
    CHECK(twice.match("Log it") == expected(0, {"log"}));
    CHECK(twice.match("log and trace") == expected(1, {"log", "trace"}));
  }
}

TEST_CASE("KeywordRouter matches on word boundaries", "[planner][keyword_router]") {
  const KeywordRouter router(Routes{{"logs", {"log"}}});
  SECTION("inside a word is no hit") {
    CHECK(router.match("catalog") == std::nullopt);
    CHECK(router.match("logging") == std::nullopt);
    CHECK(router.match("blogger") == std::nullopt);
    CHECK(router.match("log_file") == std::nullopt);
    CHECK(router.match("my_log") == std::nullopt);
    CHECK(router.match("log2") == std::nullopt);
    CHECK(router.match("9log") == std::nullopt);
  }
  SECTION("at the start and end of the text") {
    CHECK(router.match("log") == expected(0, {"log"}));
    CHECK(router.match("log this") == expected(0, {"log"}));
    CHECK(router.match("read the log") == expected(0, {"log"}));
  }
  SECTION("punctuation around it") {
    CHECK(router.match("(log)") == expected(0, {"log"}));
    CHECK(router.match("the log, please.") == expected(0, {"log"}));
    CHECK(router.match("error-log/") == expected(0, {"log"}));
    CHECK(router.match("\"log\"\n") == expected(0, {"log"}));
  }
  SECTION("a miss inside a word does not hide a later hit") {
    CHECK(router.match("catalog log") == expected(0, {"log"}));
    CHECK(router.match("catalog.log") == expected(0, {"log"}));
  }
}

TEST_CASE("KeywordRouter matches keywords of several words", "[planner][keyword_router]") {
  const KeywordRouter router(Routes{{"review", {"pull request", "request"}}});
  SECTION("the whole phrase and its last word both hit; the longer first") {
    CHECK(router.match("open a Pull Request now") == expected(0, {"pull request", "request"}));
  }
  SECTION("the phrase needs its space") {
    CHECK(router.match("pullrequest") == std::nullopt);
    CHECK(router.match("pull  request") == expected(0, {"request"}));
  }
  SECTION("the phrase needs its boundaries") { CHECK(router.match("pull requests") == std::nullopt); }
}

TEST_CASE("KeywordRouter finds overlapping keywords", "[planner][keyword_router]") {
  SECTION("he she hers without boundaries in the way") {
    const KeywordRouter router(Routes{{"classic", {"he", "she", "his", "hers"}}});
    CHECK(router.match("she") == expected(0, {"she"}));  // "he" ends inside a word
    CHECK(router.match("hers") == expected(0, {"hers"}));
    CHECK(router.match("ushers") == std::nullopt);
  }
  SECTION("he she hers separated by non-word bytes") {
    const KeywordRouter router(Routes{{"classic", {"he", "s he", "he rs", "hers"}}});
    CHECK(router.match("s he rs") == expected(0, {"s he", "he", "he rs"}));
  }
  SECTION("a keyword that is a prefix of another") {
    const KeywordRouter router(Routes{{"r", {"a b c", "a b", "b"}}});
    CHECK(router.match("a b c") == expected(0, {"a b", "b", "a b c"}));
  }
  SECTION("overlapping hits of one keyword count once") {
    const KeywordRouter router(Routes{{"r", {"a a"}}});
    CHECK(router.match("a a a a") == expected(0, {"a a"}));
  }
}

TEST_CASE("KeywordRouter picks the route with the most distinct hits", "[planner][keyword_router]") {
  const KeywordRouter router(Routes{
      {"deploy", {"deploy", "release", "log"}},
      {"debug", {"log", "error", "trace", "stack"}},
      {"docs", {"readme", "docs"}},
  });
  SECTION("most distinct hits wins") {
    CHECK(router.match("deploy the release and check the log") == expected(0, {"deploy", "release", "log"}));
    CHECK(router.match("log the error with a stack trace") == expected(1, {"log", "error", "stack", "trace"}));
  }
  SECTION("repeats of one keyword do not add up") {
    CHECK(router.match("error error error deploy release") == expected(0, {"deploy", "release"}));
  }
  SECTION("a shared keyword counts for both routes; a tie goes to the earlier route") {
    CHECK(router.match("log") == expected(0, {"log"}));
    CHECK(router.match("log the error and update the readme docs") == expected(1, {"log", "error"}));
    CHECK(router.match("readme docs error trace") == expected(1, {"error", "trace"}));
    CHECK(router.match("the docs and the error") == expected(1, {"error"}));
    CHECK(router.match("the error and the docs") == expected(1, {"error"}));
  }
}

TEST_CASE("KeywordRouter with nothing to match returns nullopt", "[planner][keyword_router]") {
  SECTION("no routes") {
    const KeywordRouter router(Routes{});
    CHECK(router.routes().empty());
    CHECK(router.match("anything at all") == std::nullopt);
    CHECK(router.match("") == std::nullopt);
  }
  SECTION("only empty keywords") {
    const KeywordRouter router(Routes{{"empty", {"", ""}}, {"none", {}}});
    CHECK(router.routes().size() == 2);
    CHECK(router.match("") == std::nullopt);
    CHECK(router.match(" a b ") == std::nullopt);
  }
  SECTION("empty keywords beside real ones are ignored") {
    const KeywordRouter router(Routes{{"r", {"", "go", ""}}});
    CHECK(router.match("go") == expected(0, {"go"}));
  }
  SECTION("no hit") {
    const KeywordRouter router(Routes{{"r", {"alpha"}}, {"s", {"beta"}}});
    CHECK(router.match("gamma alphabet betamax") == std::nullopt);
  }
}

TEST_CASE("KeywordRouter agrees with a naive matcher on random goals", "[planner][keyword_router]") {
  std::mt19937 rng(20240601);
  const auto pick = [&rng](std::string_view alphabet, std::size_t max_length) {
    std::string s(std::uniform_int_distribution<std::size_t>(0, max_length)(rng), ' ');
    for (auto& c : s) c = alphabet[std::uniform_int_distribution<std::size_t>(0, alphabet.size() - 1)(rng)];
    return s;
  };
  const auto count = [&rng](std::size_t max) { return std::uniform_int_distribution<std::size_t>(0, max)(rng); };

  for (int round = 0; round < 400; ++round) {
    Routes routes(count(4));
    for (auto& route : routes) {
      route.keywords.resize(count(5));
      for (auto& keyword : route.keywords) keyword = pick("abAB -", 4);
    }
    const KeywordRouter router(routes);
    for (int g = 0; g < 10; ++g) {
      const std::string goal = pick("abAB _-.", 40);
      INFO("round " << round << " goal \"" << goal << "\"");
      const auto got = router.match(goal);
      const auto want = naive_match(routes, goal);
      REQUIRE(got.has_value() == want.has_value());
      if (got) {
        CHECK(got->route == want->route);
        CHECK(got->keywords == want->keywords);
      }
    }
  }
}
