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

using dagent::planner::read_plan;
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
  SECTION("an object without steps is not the plan: the next candidate is") {
    StepStream stream;
    const auto steps = stream.feed(R"({"id": 1, "tool": "a", "parameters": {"x": [{"id": 2}]}} [{"id": 3}])");
    REQUIRE(steps.size() == 1);
    CHECK(steps[0] == object(R"({"id": 3})"));
    CHECK(stream.finished());
    auto plan = stream.finish();
    REQUIRE(plan.has_value());
    CHECK(plan->size() == 1);
  }
}

TEST_CASE("StepStream keeps the plan object's intent (folded intent analysis)", "[planner][step_stream]") {
  StepStream stream;
  stream.feed(R"(Plan [v2]: {"intent": "read a file", "steps": [{"id": 1, "action": "read_file", "parameters": {}}]})");
  REQUIRE(stream.finish().has_value());
  CHECK(stream.intent() == "read a file");
  SECTION("an intent that is not a string, or an array plan, has none") {
    StepStream other;
    other.feed(R"({"intent": 3, "steps": []})");
    REQUIRE(other.finish().has_value());
    CHECK(other.intent().empty());
    StepStream array;
    array.feed(R"([{"id": 1, "action": "read_file", "parameters": {}}])");
    REQUIRE(array.finish().has_value());
    CHECK(array.intent().empty());
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

TEST_CASE("StepStream stops at a malformed step, and a plan that yielded steps then broke fails",
          "[planner][step_stream]") {
  SECTION("a trailing comma") {
    StepStream stream;
    const auto steps = stream.feed(R"([{"id": 1}, {"id": 2,}, {"id": 3}])");
    REQUIRE(steps.size() == 1);  // nothing after the text stopped being JSON
    CHECK(steps[0] == object(R"({"id": 1})"));
    auto plan = stream.finish();
    REQUIRE_FALSE(plan.has_value());
    CHECK_THAT(plan.error(), Catch::StartsWith("the reply's JSON is malformed: "));
    CHECK_THAT(plan.error(), Catch::EndsWith(" at offset 21"));
  }
  SECTION("a brace closed by a bracket, before any step: not a plan, nothing yielded") {
    StepStream stream;
    CHECK(stream.feed(R"({"steps": [{"id": 1], {"id": 2}]})").empty());
    CHECK_FALSE(stream.finish().has_value());
  }
  SECTION("a cut reply that yielded steps does not fall back to a later or inner value") {
    StepStream stream;
    CHECK(stream.feed(R"({"steps": [{"id": 1}, {"id": 2, "parameters": {"steps": [{"id": 9}]})").size() == 1);
    auto plan = stream.finish();
    REQUIRE_FALSE(plan.has_value());
    CHECK_THAT(plan.error(), Catch::Contains("malformed"));
  }
  SECTION("elements that are not objects, after an object first element, are kept for analysis") {
    StepStream stream;
    const auto steps = stream.feed(R"([{"id": 1}, 1, "{\"id\": 0}", [{"id": 0}], null, {"id": 2}])");
    REQUIRE(steps.size() == 2);
    CHECK(steps[0] == object(R"({"id": 1})"));
    CHECK(steps[1] == object(R"({"id": 2})"));
    auto plan = stream.finish();
    REQUIRE(plan.has_value());
    CHECK(plan->size() == 6);
  }
  SECTION("an array whose first element is not an object is not a plan") {
    StepStream stream;
    CHECK(stream.feed(R"([1, {"id": 1}])").empty());
    auto plan = stream.finish();
    REQUIRE_FALSE(plan.has_value());
    CHECK(plan.error() == "expected a JSON array of steps or an object with \"steps\"");
  }
}

TEST_CASE("StepStream never returns other steps than it streamed: a repeated \"steps\" key fails the read",
          "[planner][step_stream]") {
  StepStream stream;
  const auto steps = stream.feed(R"({"steps": [{"id": 1}], "steps": [{"id": 2}]})");
  auto plan = stream.finish();
  REQUIRE(steps.size() == 1);
  // Boost.JSON keeps the last of repeated keys: not the array that was streamed.
  REQUIRE_FALSE(plan.has_value());
  CHECK_THAT(plan.error(), Catch::Contains("does not match the steps read while it streamed"));
}

TEST_CASE("StepStream finish explains a reply without a plan", "[planner][step_stream]") {
  CHECK(read_plan("no JSON here").error() == "the reply contains no JSON value");
  CHECK(read_plan(R"(Note {"a": 1})").error() == "expected a JSON array of steps or an object with \"steps\"");
  // The longest failed candidate is the one reported.
  CHECK(read_plan(R"([v2] {"steps": [{"id": 1} oops)").error() ==
        "the reply's JSON is malformed: syntax error at offset 26");
  CHECK(read_plan(R"({"steps": [)").error() == "the reply's JSON is malformed: incomplete JSON at offset 11");
}

TEST_CASE("StepStream regression: prose with a bracket before the plan (Plan [v2]: {...})", "[planner][step_stream]") {
  // Was: the stream locked onto "[v2]" and yielded nothing, while the whole-text parse found the
  // plan after it; the runtime then looked up results of steps that never ran.
  const std::string_view text = R"(Plan [v2]: {"steps": [{"id": 1, "action": "a"}, {"id": 2, "action": "b"}]})";
  StepStream stream;
  Steps streamed = feed_all(stream, bytes_of(text));
  auto plan = stream.finish();
  REQUIRE(plan.has_value());
  REQUIRE(streamed.size() == 2);
  CHECK(streamed[0] == plan->at(0).as_object());
  CHECK(streamed[1] == plan->at(1).as_object());
  const auto whole = read_plan(text);
  REQUIRE(whole.has_value());
  CHECK(*whole == *plan);
}

namespace {

// Prose that never holds a plan of its own: complete non-plan JSON, broken spans that close,
// quotes, fences and non-ASCII text. Lone brackets are in k_wild_tokens only.
const std::vector<std::string> k_balanced_tokens = {
    "Here", " is", " the", " plan", ":", " ", "\n", "[v2]", "{x}", "[see below]", R"({"note": 1})", "[1, 2]",
    "\"", "'", "```", "```json\n", "\\", "é", "日本", "“quoted”", "{\"a\": }", "[{]", "}", "]", "{ \"k\" ]"};
const std::vector<std::string> k_wild_tokens = {"[", "{", "[{", "{\"steps\": [", R"({"id": 5})", "\"steps\""};

const std::vector<std::string> k_plans = {
    R"({"steps": [{"id": 1, "action": "read_file", "parameters": {"path": "a [b] {c}.txt"}}, {"id": 2, "action": "llm", "parameters": {"prompt": "say \"}\" ] \\"}, "dependencies": [1]}]})",
    R"([{"id": 1, "action": "list_dir", "parameters": {}}, {"id": 2, "action": "x", "parameters": {"q": "日本 é"}}])",
    R"({"reasoning": "first [a] then {b}", "meta": {"steps": [{"id": 9}]}, "steps": [{"id": 3, "parameters": {"n": [1, {"m": []}]}}], "after": [{"id": 100}]})",
};

std::string prose(std::mt19937& rng, const std::vector<std::string>& tokens, int max_tokens) {
  std::uniform_int_distribution<int> count(0, max_tokens);
  std::uniform_int_distribution<std::size_t> pick(0, tokens.size() - 1);
  std::string out;
  for (int n = count(rng); n > 0; --n) out += tokens[pick(rng)];
  return out;
}

Steps objects_of(const boost::json::array& steps) {
  Steps out;
  for (const auto& s : steps)
    if (s.is_object()) out.push_back(s.as_object());
  return out;
}

}  // namespace

TEST_CASE("StepStream property: the steps streamed are the steps of the whole-text read, whatever the prose "
          "around the plan and the split points",
          "[planner][step_stream]") {
  std::mt19937 rng(1101);
  std::vector<std::string> wild = k_balanced_tokens;
  wild.insert(wild.end(), k_wild_tokens.begin(), k_wild_tokens.end());
  int found_intended = 0;
  for (int round = 0; round < 3000; ++round) {
    const bool balanced = round % 2 == 0;
    const std::string& plan_text = k_plans[static_cast<std::size_t>(round) % k_plans.size()];
    const std::string text = prose(rng, balanced ? k_balanced_tokens : wild, 8) + plan_text +
                             prose(rng, wild, 8);
    INFO("text: " << text);
    const auto whole = read_plan(text);
    StepStream stream;
    const Steps streamed = feed_all(stream, random_chunks(text, rng));
    const auto finished = stream.finish();
    // One reader: the streamed read ends where the whole read does, and hands out its steps.
    REQUIRE(finished.has_value() == whole.has_value());
    if (!whole) {
      CHECK(finished.error() == whole.error());
      CHECK_FALSE(balanced);  // balanced prose never hides the plan
      continue;
    }
    CHECK(*finished == *whole);
    CHECK(streamed == objects_of(*whole));
    const auto intended = boost::json::parse(plan_text);
    const auto& intended_steps = intended.is_array() ? intended.as_array() : intended.at("steps").as_array();
    if (balanced) CHECK(*whole == intended_steps);
    if (*whole == intended_steps) ++found_intended;
  }
  CHECK(found_intended >= 1500);
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
