#include "planner/step_stream.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/parse.hpp>

using dagent::planner::StepStream;

namespace {

using Steps = std::vector<boost::json::object>;

boost::json::object object(std::string_view text) { return boost::json::parse(text).as_object(); }

Steps feed_all(StepStream& stream, const std::vector<std::string_view>& chunks) {
  Steps steps;
  for (const auto chunk : chunks) {
    for (auto& step : stream.feed(chunk)) steps.push_back(std::move(step));
  }
  return steps;
}

Steps feed_whole(std::string_view text) {
  StepStream stream;
  return feed_all(stream, {text});
}

std::vector<std::string_view> bytes_of(std::string_view text) {
  std::vector<std::string_view> chunks;
  for (std::size_t i = 0; i < text.size(); ++i) chunks.push_back(text.substr(i, 1));
  return chunks;
}

std::vector<std::string_view> random_chunks(std::string_view text, std::mt19937& rng) {
  std::uniform_int_distribution<std::size_t> size(0, 9);
  std::vector<std::string_view> chunks;
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t n = size(rng);
    chunks.push_back(text.substr(at, n));
    at += std::min(n, text.size() - at);
  }
  return chunks;
}

// Strings with brackets, braces, escaped quotes, a backslash before a closing quote, \u escapes,
// multi-byte UTF-8 and nested parameters: every place a chunk boundary can hurt.
constexpr std::string_view k_tricky_plan = R"(Here is the plan, as requested:
```json
{
  "reasoning": "first [fetch], then {summarize} \"quoted ]\" and C:\\ \\",
  "notes": [{"id": 99}, "[", "{"],
  "meta": {"steps": [{"id": 98}]},
  "steps": [
    {"id": 1, "tool": "fetch", "parameters": {"url": "https://x/?q={a}&r=[b]", "headers": [["k", "v]"]]}},
    {"id": 2, "tool": "summarize", "parameters": {"text": "say \"}\" and \\", "opts": {"deep": {"list": [1, [2, {"a": []}]]}}}},
    {"id": 3, "tool": "write", "parameters": {"path": "C:\\out\\", "body": "h\u00e9 日本語 — ]}"}}
  ],
  "after": [{"id": 100}]
}
```
Done [really].)";

}  // namespace

TEST_CASE("StepStream reads the array form", "[planner][step_stream]") {
  StepStream stream;
  const auto steps = stream.feed(R"([{"id": 1, "tool": "a"}, {"id": 2, "tool": "b"}])");
  REQUIRE(steps.size() == 2);
  CHECK(steps[0] == object(R"({"id": 1, "tool": "a"})"));
  CHECK(steps[1] == object(R"({"id": 2, "tool": "b"})"));
  CHECK(stream.finished());
  CHECK(stream.steps_emitted() == 2);
}

TEST_CASE("StepStream reads the object form", "[planner][step_stream]") {
  SECTION("only the steps member at depth 1 counts") {
    StepStream stream;
    const auto steps = stream.feed(
        R"({"reasoning": "... [not this] {nor this} ...", "other": [{"id": 0}], "meta": {"steps": [{"id": 9}]},)"
        R"( "steps": [{"id": 1}, {"id": 2}], "after": [{"id": 3}]})");
    REQUIRE(steps.size() == 2);
    CHECK(steps[0] == object(R"({"id": 1})"));
    CHECK(steps[1] == object(R"({"id": 2})"));
    CHECK(stream.finished());
  }
  SECTION("a value string equal to steps is not a key") {
    const auto steps = feed_whole(R"({"name": "steps", "x": [{"id": 0}], "steps": [{"id": 1}]})");
    REQUIRE(steps.size() == 1);
    CHECK(steps[0] == object(R"({"id": 1})"));
  }
  SECTION("a longer or shorter key is not steps") {
    const auto steps = feed_whole(R"({"stepsX": [{"id": 0}], "step": [{"id": 0}], "steps": [{"id": 1}]})");
    REQUIRE(steps.size() == 1);
    CHECK(steps[0] == object(R"({"id": 1})"));
  }
  SECTION("an object without steps never finishes") {
    StepStream stream;
    CHECK(stream.feed(R"({"id": 1, "tool": "a", "parameters": {"x": [{"id": 2}]}} [{"id": 3}])").empty());
    CHECK_FALSE(stream.finished());
    CHECK(stream.steps_emitted() == 0);
  }
}

TEST_CASE("StepStream skips prose and a code fence", "[planner][step_stream]") {
  StepStream stream;
  const auto steps = stream.feed("Here is the plan:\n```json\n[{\"id\": 1}]\n```\nLet me know [if] {anything}.");
  REQUIRE(steps.size() == 1);
  CHECK(steps[0] == object(R"({"id": 1})"));
  CHECK(stream.finished());
}

TEST_CASE("StepStream ignores brackets and quotes inside strings", "[planner][step_stream]") {
  const std::string_view step = R"({"id": 1, "parameters": {"a": "} ] { [", "b": "say \"}\" now", "c": "C:\\dir\\", "d": "\\\""}})";
  const auto steps = feed_whole("[" + std::string(step) + ", {\"id\": 2}]");
  REQUIRE(steps.size() == 2);
  CHECK(steps[0] == object(step));
  CHECK(steps[1] == object(R"({"id": 2})"));
}

TEST_CASE("StepStream gives the same steps however the text is split", "[planner][step_stream]") {
  const Steps whole = feed_whole(k_tricky_plan);
  REQUIRE(whole.size() == 3);
  const auto plan = boost::json::parse(k_tricky_plan.substr(k_tricky_plan.find('{'),
                                                            k_tricky_plan.rfind('}') - k_tricky_plan.find('{') + 1));
  const auto& expected = plan.at("steps").as_array();
  for (std::size_t i = 0; i < whole.size(); ++i) CHECK(whole[i] == expected[i].as_object());

  SECTION("one byte at a time") {
    StepStream stream;
    CHECK(feed_all(stream, bytes_of(k_tricky_plan)) == whole);
    CHECK(stream.finished());
    CHECK(stream.steps_emitted() == 3);
  }
  SECTION("random chunk sizes") {
    std::mt19937 rng(20240611);
    for (int round = 0; round < 200; ++round) {
      StepStream stream;
      CHECK(feed_all(stream, random_chunks(k_tricky_plan, rng)) == whole);
      CHECK(stream.finished());
    }
  }
  SECTION("every split into two chunks") {
    for (std::size_t cut = 0; cut <= k_tricky_plan.size(); ++cut) {
      StepStream stream;
      CHECK(feed_all(stream, {k_tricky_plan.substr(0, cut), k_tricky_plan.substr(cut)}) == whole);
    }
  }
}

TEST_CASE("StepStream emits a step as soon as it closes", "[planner][step_stream]") {
  const std::string_view text = R"({"steps": [{"id": 1, "p": {"q": 2}}, {"id": 2}]})";
  const std::size_t first_end = text.find("}}") + 2;
  StepStream stream;

  SECTION("not before its closing brace") {
    CHECK(stream.feed(text.substr(0, first_end - 1)).empty());
    CHECK(stream.steps_emitted() == 0);
    const auto steps = stream.feed(text.substr(first_end - 1, 1));
    REQUIRE(steps.size() == 1);
    CHECK(steps[0] == object(R"({"id": 1, "p": {"q": 2}})"));
  }
  SECTION("one step out after its brace and the rest later") {
    CHECK(stream.feed(text.substr(0, first_end)).size() == 1);
    CHECK(stream.steps_emitted() == 1);
    CHECK_FALSE(stream.finished());
    const auto rest = stream.feed(text.substr(first_end));
    REQUIRE(rest.size() == 1);
    CHECK(rest[0] == object(R"({"id": 2})"));
    CHECK(stream.steps_emitted() == 2);
    CHECK(stream.finished());
  }
}

TEST_CASE("StepStream skips a malformed step and keeps going", "[planner][step_stream]") {
  SECTION("a trailing comma") {
    const auto steps = feed_whole(R"([{"id": 1}, {"id": 2,}, {"id": 3}])");
    REQUIRE(steps.size() == 2);
    CHECK(steps[0] == object(R"({"id": 1})"));
    CHECK(steps[1] == object(R"({"id": 3})"));
  }
  SECTION("a brace closed by a bracket") {
    StepStream stream;
    const auto steps = stream.feed(R"({"steps": [{"id": 1], {"id": 2}]})");
    REQUIRE(steps.size() == 1);
    CHECK(steps[0] == object(R"({"id": 2})"));
    CHECK(stream.finished());
  }
  SECTION("elements that are not objects") {
    const auto steps = feed_whole(R"([1, "{\"id\": 0}", [{"id": 0}], null, {"id": 1}])");
    REQUIRE(steps.size() == 1);
    CHECK(steps[0] == object(R"({"id": 1})"));
  }
}

TEST_CASE("StepStream finished follows the steps array", "[planner][step_stream]") {
  SECTION("not before the closing bracket") {
    StepStream stream;
    CHECK(stream.feed(R"([{"id": 1}, {"id": 2})").size() == 2);
    CHECK_FALSE(stream.finished());
    CHECK(stream.feed(" ]").empty());
    CHECK(stream.finished());
  }
  SECTION("an empty steps array") {
    StepStream stream;
    CHECK(stream.feed(R"({"steps": []})").empty());
    CHECK(stream.finished());
    CHECK(stream.steps_emitted() == 0);
  }
  SECTION("text after the steps array is ignored") {
    StepStream stream;
    CHECK(stream.feed(R"({"steps": [{"id": 1}], "more": [{"id": 2}]} then [{"id": 3}])").size() == 1);
    CHECK(stream.feed(R"([{"id": 4}])").empty());
    CHECK(stream.finished());
    CHECK(stream.steps_emitted() == 1);
  }
  SECTION("nothing to read yet") {
    StepStream stream;
    CHECK(stream.feed("Thinking about the plan...").empty());
    CHECK(stream.feed("").empty());
    CHECK_FALSE(stream.finished());
  }
}
