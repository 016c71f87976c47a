#include "executor/plan.hpp"

#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

namespace {

namespace json = boost::json;
using dagent::executor::parse_json_text;
using dagent::executor::parse_plan;
using dagent::executor::ParsedPlan;
using dagent::executor::PlanProblem;

ParsedPlan parse(std::string_view text) { return parse_plan(json::parse(text)); }

// Every problem as "step N: ..." lines, for failure messages and substring checks.
std::string all_problems(const std::vector<PlanProblem>& problems) {
  std::string out;
  for (const auto& p : problems) out += p.to_string() + "\n";
  return out;
}

// The number of problems with `step_id` whose message contains `needle`.
int count_problems(const std::vector<PlanProblem>& problems, int step_id, std::string_view needle) {
  int n = 0;
  for (const auto& p : problems)
    if (p.step_id == step_id && p.message.find(needle) != std::string::npos) ++n;
  return n;
}

}  // namespace

TEST_CASE("parse_plan reads both plan forms", "[executor]") {
  const char* steps = R"([
    {"id": 1, "action": "search_files", "parameters": {"pattern": "docs/**/*.md"}, "dependencies": []},
    {"id": 2, "action": "read_file", "parameters": {"path": "$step1.matches[0].path"}},
    {"id": 3, "action": "llm", "parameters": {"prompt": "Summarize"},
     "verify": "The summary is short", "critical": true},
    {"id": 4, "action": "write_file", "parameters": {"path": "out/summary.md", "content": "$step3.text"},
     "dependencies": [3]}
  ])";

  auto check = [](const ParsedPlan& parsed) {
    INFO(all_problems(parsed.problems));
    REQUIRE(parsed.problems.empty());
    REQUIRE(parsed.plan.steps.size() == 4);
    const auto& s = parsed.plan.steps;
    CHECK(s[0].id == 1);
    CHECK(s[0].action == "search_files");
    CHECK(s[0].parameters.at("pattern") == "docs/**/*.md");
    CHECK(s[0].dependencies.empty());
    CHECK(s[1].id == 2);
    CHECK(s[1].action == "read_file");
    CHECK(s[1].parameters.at("path") == "$step1.matches[0].path");
    CHECK(s[1].dependencies.empty());  // referenced steps are not explicit dependencies
    CHECK_FALSE(s[1].verify.has_value());
    CHECK_FALSE(s[1].critical);
    CHECK(s[2].critical);
    REQUIRE(s[2].verify.has_value());
    CHECK(*s[2].verify == "The summary is short");
    CHECK(s[3].dependencies == std::vector<int>{3});
    CHECK(s[3].parameters.size() == 2);
  };

  SECTION("a JSON array") { check(parse(steps)); }
  SECTION("an object with steps") { check(parse(std::string(R"({"steps": )") + steps + "}")); }
  SECTION("neither form") {
    for (const char* text : {R"({"stepz": []})", R"({"steps": {}})", "42", R"("plan")"}) {
      auto parsed = parse(text);
      INFO(text);
      REQUIRE(parsed.problems.size() == 1);
      CHECK(parsed.problems[0].step_id == 0);
      CHECK_THAT(parsed.problems[0].to_string(), Catch::Contains("plan: a plan is a JSON array"));
      CHECK(parsed.plan.steps.empty());
    }
  }
  SECTION("an empty plan") {
    auto parsed = parse("[]");
    REQUIRE(parsed.problems.size() == 1);
    CHECK(parsed.problems[0].step_id == 0);
    CHECK_THAT(parsed.problems[0].message, Catch::Contains("no steps"));
  }
}

TEST_CASE("parse_plan step fields", "[executor]") {
  SECTION("args is a synonym for parameters") {
    auto parsed = parse(R"([{"id": 7, "action": "echo", "args": {"x": 1, "y": [true]}}])");
    REQUIRE(parsed.problems.empty());
    REQUIRE(parsed.plan.steps.size() == 1);
    CHECK(parsed.plan.steps[0].id == 7);
    CHECK(parsed.plan.steps[0].parameters == json::parse(R"({"x": 1, "y": [true]})").as_object());
  }
  SECTION("parameters may be left out") {
    auto parsed = parse(R"([{"id": 1, "action": "echo"}])");
    REQUIRE(parsed.problems.empty());
    CHECK(parsed.plan.steps[0].parameters.empty());
  }
  SECTION("descriptive keys are known") {
    auto parsed = parse(R"([{"id": 1, "action": "echo", "description": "d", "reason": "r"}])");
    CHECK(parsed.problems.empty());
  }
  SECTION("verify is kept as written") {
    auto parsed = parse(R"([
      {"id": 1, "action": "echo", "verify": {"non_empty": true}},
      {"id": 2, "action": "echo", "verify": ["names the file", {"contains": ["a", "b"]}]},
      {"id": 3, "action": "echo", "verify": null}
    ])");
    REQUIRE(parsed.problems.empty());
    REQUIRE(parsed.plan.steps.size() == 3);
    REQUIRE(parsed.plan.steps[0].verify.has_value());
    CHECK(*parsed.plan.steps[0].verify == json::parse(R"({"non_empty": true})"));
    REQUIRE(parsed.plan.steps[1].verify.has_value());
    CHECK(*parsed.plan.steps[1].verify == json::parse(R"(["names the file", {"contains": ["a", "b"]}])"));
    CHECK_FALSE(parsed.plan.steps[2].verify.has_value());
  }
  SECTION("duplicate dependencies are listed once, in order") {
    auto parsed = parse(R"([{"id": 9, "action": "echo", "dependencies": [3, 1, 3, 2, 1]}])");
    REQUIRE(parsed.problems.empty());
    CHECK(parsed.plan.steps[0].dependencies == std::vector<int>{3, 1, 2});
  }
  SECTION("dependencies: null is no list") {
    auto parsed = parse(R"([{"id": 1, "action": "echo", "dependencies": null}])");
    CHECK(parsed.problems.empty());
    CHECK(parsed.plan.steps[0].dependencies.empty());
  }
}

TEST_CASE("parse_plan rejects malformed steps", "[executor]") {
  SECTION("missing id: the step is left out, named by its position") {
    auto parsed = parse(R"([{"id": 1, "action": "echo"}, {"action": "echo"}])");
    REQUIRE(parsed.problems.size() == 1);
    CHECK(parsed.problems[0].step_id == 0);
    CHECK(parsed.problems[0].to_string() == "plan: step #2 has no id");
    REQUIRE(parsed.plan.steps.size() == 1);
    CHECK(parsed.plan.steps[0].id == 1);
  }
  SECTION("non-positive ids") {
    for (const char* id : {"0", "-3"}) {
      auto parsed = parse(std::string(R"([{"id": )") + id + R"(, "action": "echo"}])");
      INFO(id);
      REQUIRE(parsed.problems.size() == 1);
      CHECK(parsed.problems[0].step_id == 0);
      CHECK_THAT(parsed.problems[0].message, Catch::Contains("step #1 has an invalid id " + std::string(id)));
      CHECK_THAT(parsed.problems[0].message, Catch::Contains("positive integers"));
      CHECK(parsed.plan.steps.empty());
    }
  }
  SECTION("non-integer ids") {
    for (const char* id : {"1.5", R"("1")", "true", "null", "[1]", "4294967297"}) {
      auto parsed = parse(std::string(R"([{"id": )") + id + R"(, "action": "echo"}])");
      INFO(id);
      REQUIRE(parsed.problems.size() == 1);
      CHECK(parsed.problems[0].step_id == 0);
      CHECK_THAT(parsed.problems[0].message, Catch::Contains("step #1 has an invalid id"));
      CHECK(parsed.plan.steps.empty());
    }
  }
  SECTION("a step that is not an object") {
    auto parsed = parse(R"([{"id": 1, "action": "echo"}, "read the file"])");
    REQUIRE(parsed.problems.size() == 1);
    CHECK(parsed.problems[0].to_string() == "plan: step #2 is not a JSON object");
    CHECK(parsed.plan.steps.size() == 1);
  }
  SECTION("duplicate id: the second step is left out") {
    auto parsed = parse(R"([
      {"id": 4, "action": "echo", "parameters": {"n": 1}},
      {"id": 4, "action": "read_file", "parameters": {"n": 2}}
    ])");
    REQUIRE(parsed.problems.size() == 1);
    CHECK(parsed.problems[0].step_id == 4);
    CHECK(parsed.problems[0].to_string() == "step 4: duplicate step id 4");
    REQUIRE(parsed.plan.steps.size() == 1);
    CHECK(parsed.plan.steps[0].action == "echo");
  }
  SECTION("missing action: reported, step kept") {
    for (const char* step : {R"({"id": 3})", R"({"id": 3, "action": ""})", R"({"id": 3, "action": 5})"}) {
      auto parsed = parse(std::string("[") + step + "]");
      INFO(step);
      REQUIRE(parsed.problems.size() == 1);
      CHECK(parsed.problems[0].step_id == 3);
      CHECK(parsed.problems[0].to_string() == "step 3: missing \"action\" (the name of a tool)");
      REQUIRE(parsed.plan.steps.size() == 1);
      CHECK(parsed.plan.steps[0].action.empty());
    }
  }
  SECTION("tool is accepted for action") {
    auto parsed = parse(R"([{"id": 3, "tool": "echo"}])");
    CHECK(parsed.problems.empty());
    CHECK(parsed.plan.steps[0].action == "echo");
  }
  SECTION("parameters not an object") {
    auto parsed = parse(R"([{"id": 2, "action": "echo", "parameters": ["a", 1]},
                            {"id": 5, "action": "echo", "args": "x"}])");
    INFO(all_problems(parsed.problems));
    REQUIRE(parsed.problems.size() == 2);
    CHECK(parsed.problems[0].to_string() == R"(step 2: "parameters" must be a JSON object, got ["a",1])");
    CHECK(parsed.problems[1].to_string() == R"(step 5: "parameters" must be a JSON object, got "x")");
    REQUIRE(parsed.plan.steps.size() == 2);
    CHECK(parsed.plan.steps[0].parameters.empty());
  }
  SECTION("dependencies not a list") {
    auto parsed = parse(R"([{"id": 2, "action": "echo", "dependencies": 1}])");
    REQUIRE(parsed.problems.size() == 1);
    CHECK(parsed.problems[0].to_string() == R"(step 2: "dependencies" must be a list of step ids)");
    CHECK(parsed.plan.steps[0].dependencies.empty());
  }
  SECTION("dependencies that are not ids") {
    auto parsed = parse(R"([{"id": 6, "action": "echo", "dependencies": [1, "2", 0, -1, 2.5, 3]}])");
    INFO(all_problems(parsed.problems));
    REQUIRE(parsed.problems.size() == 4);
    CHECK(parsed.problems[0].to_string() == R"(step 6: dependency "2" is not a step id)");
    CHECK(parsed.problems[1].to_string() == "step 6: dependency 0 is not a step id");
    CHECK(parsed.problems[2].to_string() == "step 6: dependency -1 is not a step id");
    CHECK_THAT(parsed.problems[3].message, Catch::StartsWith("dependency 2.5") && Catch::EndsWith("is not a step id"));
    CHECK(parsed.plan.steps[0].dependencies == std::vector<int>{1, 3});
  }
  SECTION("unknown key") {
    auto parsed = parse(R"([{"id": 8, "action": "echo", "params": {"x": 1}}])");
    REQUIRE(parsed.problems.size() == 1);
    CHECK(parsed.problems[0].to_string() == R"(step 8: unknown key "params")");
    REQUIRE(parsed.plan.steps.size() == 1);
  }
  SECTION("critical not a bool") {
    auto parsed = parse(R"([{"id": 2, "action": "echo", "critical": "yes"}])");
    REQUIRE(parsed.problems.size() == 1);
    CHECK(parsed.problems[0].to_string() == "step 2: \"critical\" must be true or false");
    CHECK_FALSE(parsed.plan.steps[0].critical);
  }
}

TEST_CASE("parse_plan reports several problems at once", "[executor]") {
  auto parsed = parse(R"([
    {"id": 1, "action": "echo", "critical": 1},
    {"action": "echo"},
    {"id": 1, "action": "echo"},
    {"id": 3, "parameters": 7, "dependencies": "1", "colour": "red"},
    {"id": -2, "action": "echo"},
    {"id": 4, "action": "echo"}
  ])");
  const auto text = all_problems(parsed.problems);
  INFO(text);
  CHECK(parsed.problems.size() == 8);
  CHECK(count_problems(parsed.problems, 1, "\"critical\" must be true or false") == 1);
  CHECK(count_problems(parsed.problems, 0, "step #2 has no id") == 1);
  CHECK(count_problems(parsed.problems, 1, "duplicate step id 1") == 1);
  CHECK(count_problems(parsed.problems, 3, "missing \"action\"") == 1);
  CHECK(count_problems(parsed.problems, 3, "\"parameters\" must be a JSON object, got 7") == 1);
  CHECK(count_problems(parsed.problems, 3, "\"dependencies\" must be a list") == 1);
  CHECK(count_problems(parsed.problems, 3, "unknown key \"colour\"") == 1);
  CHECK(count_problems(parsed.problems, 0, "step #5 has an invalid id -2") == 1);
  // Steps 1, 3 and 4 are kept; the id-less, duplicate and invalid ones are not.
  REQUIRE(parsed.plan.steps.size() == 3);
  CHECK(parsed.plan.steps[0].id == 1);
  CHECK(parsed.plan.steps[1].id == 3);
  CHECK(parsed.plan.steps[2].id == 4);
}

TEST_CASE("parse_json_text", "[executor]") {
  SECTION("valid text") {
    auto r = parse_json_text(R"([{"id": 1, "action": "echo"}])");
    REQUIRE(r.has_value());
    CHECK(*r == json::parse(R"([{"id": 1, "action": "echo"}])"));
  }
  SECTION("comments and trailing commas are allowed") {
    auto r = parse_json_text(
        "// a plan\n"
        "[\n"
        "  /* the first step */\n"
        "  {\"id\": 1, \"action\": \"echo\", \"parameters\": {\"x\": 1,},},  // trailing commas\n"
        "]\n");
    REQUIRE(r.has_value());
    CHECK(*r == json::parse(R"([{"id": 1, "action": "echo", "parameters": {"x": 1}}])"));
  }
  SECTION("a syntax error names its line and column") {
    // Line 3 lacks the colon after "action"; the parser stops at the second string, column 13.
    auto r = parse_json_text("[\n  {\"id\": 1,\n   \"action\" \"echo\"}\n]");
    REQUIRE(r.has_error());
    CHECK_THAT(r.error(), Catch::StartsWith("invalid JSON at line 3, column 13: "));
    CHECK_THAT(r.error(), Catch::Contains("syntax error"));
  }
  SECTION("an error on the first line") {
    auto r = parse_json_text(R"({"a": tru})");
    REQUIRE(r.has_error());
    CHECK_THAT(r.error(), Catch::StartsWith("invalid JSON at line 1, column "));
  }
  SECTION("truncated text") {
    auto r = parse_json_text("[\n  {\"id\": 1,\n");
    REQUIRE(r.has_error());
    CHECK_THAT(r.error(), Catch::StartsWith("invalid JSON at line 3, column 1: "));
  }
  SECTION("text after the value is an error") {
    auto r = parse_json_text("[1]\n[2]");
    CHECK(r.has_error());
  }
  SECTION("empty text") {
    auto r = parse_json_text("");
    REQUIRE(r.has_error());
    CHECK_THAT(r.error(), Catch::StartsWith("invalid JSON at line 1, column 1"));
  }
}
