#include "executor/analysis.hpp"

#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

#include "dagent/tool.hpp"
#include "net/openai_client.hpp"
#include "net/url.hpp"
#include "tools/llm_tool.hpp"
#include "support/test_tools.hpp"

namespace {

namespace json = boost::json;
using dagent::executor::analyze;
using dagent::executor::Analysis;
using dagent::executor::AnalysisOptions;
using dagent::executor::parse_plan;
using dagent::executor::Plan;
using dagent::executor::PlanProblem;

Plan plan_of(std::string_view text) {
  auto parsed = parse_plan(json::parse(text));
  for (const auto& p : parsed.problems) FAIL("parse problem: " << p.to_string());
  return std::move(parsed.plan);
}

std::string all_problems(const std::vector<PlanProblem>& problems) {
  std::string out;
  for (const auto& p : problems) out += p.to_string() + "\n";
  return out;
}

// The number of problems with `step_id` whose message contains `needle`.
int count_problems(const Analysis& a, int step_id, std::string_view needle) {
  int n = 0;
  for (const auto& p : a.problems)
    if (p.step_id == step_id && p.message.find(needle) != std::string::npos) ++n;
  return n;
}

// Step indices as step ids, in the same order.
std::vector<int> ids(const Plan& plan, const std::vector<std::size_t>& indices) {
  std::vector<int> out;
  for (auto i : indices) out.push_back(plan.steps.at(i).id);
  return out;
}

std::vector<std::vector<int>> level_ids(const Plan& plan, const Analysis& a) {
  std::vector<std::vector<int>> out;
  for (const auto& level : a.levels) out.push_back(ids(plan, level));
  return out;
}

const dagent::executor::StepInfo& info(const Plan& plan, const Analysis& a, int id) {
  auto it = a.index_of.find(id);
  REQUIRE(it != a.index_of.end());
  REQUIRE(it->second < plan.steps.size());
  return a.steps.at(it->second);
}

std::vector<int> dep_ids(const Plan& plan, const Analysis& a, int id) { return ids(plan, info(plan, a, id).deps); }

// A tool whose schema uses keywords beyond the old subset: pattern and anyOf of consts.
class PatternTool final : public dagent::Tool {
 public:
  std::string_view name() const override { return "pattern"; }
  std::string_view description() const override { return "test"; }
  const json::object& parameters_schema() const override {
    static const json::object schema = json::parse(R"({"type": "object", "required": ["code"],
        "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"},
                       "mode": {"anyOf": [{"const": "fast"}, {"const": "exact"}]}}})").as_object();
    return schema;
  }
  boost::asio::awaitable<dagent::ToolResult> invoke(json::object params, dagent::ToolContext) override {
    co_return json::value(std::move(params));
  }
};

}  // namespace

TEST_CASE("analyze derives levels, heights and the critical path", "[executor]") {
  dagent::test::TestTools tools;

  SECTION("a diamond") {
    auto plan = plan_of(R"([
      {"id": 1, "action": "echo"},
      {"id": 2, "action": "echo", "dependencies": [1]},
      {"id": 3, "action": "sleep", "parameters": {"ms": 1}, "dependencies": [1]},
      {"id": 4, "action": "echo", "dependencies": [2, 3]}
    ])");
    auto a = analyze(plan, tools.registry);
    INFO(all_problems(a.problems));
    REQUIRE(a.ok());
    REQUIRE(a.steps.size() == 4);
    CHECK(a.index_of.size() == 4);
    CHECK(a.index_of.at(3) == 2);
    CHECK(level_ids(plan, a) == std::vector<std::vector<int>>{{1}, {2, 3}, {4}});
    CHECK(info(plan, a, 1).level == 0);
    CHECK(info(plan, a, 3).level == 1);
    CHECK(info(plan, a, 4).level == 2);
    CHECK(info(plan, a, 1).height == 3);
    CHECK(info(plan, a, 2).height == 2);
    CHECK(info(plan, a, 3).height == 2);
    CHECK(info(plan, a, 4).height == 1);
    CHECK(dep_ids(plan, a, 4) == std::vector<int>{2, 3});
    CHECK(ids(plan, info(plan, a, 1).dependents) == std::vector<int>{2, 3});
    CHECK(ids(plan, a.critical_path) == std::vector<int>{1, 2, 4});
    REQUIRE(info(plan, a, 3).tool != nullptr);
    CHECK(info(plan, a, 3).tool->name() == "sleep");
    CHECK(info(plan, a, 1).tool->name() == "echo");
  }

  SECTION("a wider DAG in shuffled plan order, with a reference-only dependency") {
    auto plan = plan_of(R"([
      {"id": 60, "action": "echo", "dependencies": [40, 50]},
      {"id": 10, "action": "echo"},
      {"id": 20, "action": "echo"},
      {"id": 30, "action": "echo", "parameters": {"text": "from $step10.x"}},
      {"id": 40, "action": "echo", "dependencies": [10, 20]},
      {"id": 50, "action": "echo", "dependencies": [30]},
      {"id": 70, "action": "echo", "parameters": {"all": "$step20"}}
    ])");
    auto a = analyze(plan, tools.registry);
    INFO(all_problems(a.problems));
    REQUIRE(a.ok());
    CHECK(a.index_of.at(60) == 0);
    CHECK(a.index_of.at(10) == 1);
    CHECK(a.index_of.at(70) == 6);
    CHECK(level_ids(plan, a) == std::vector<std::vector<int>>{{10, 20}, {30, 40, 70}, {50}, {60}});
    CHECK(dep_ids(plan, a, 30) == std::vector<int>{10});
    CHECK(dep_ids(plan, a, 70) == std::vector<int>{20});
    CHECK(ids(plan, info(plan, a, 10).dependents) == std::vector<int>{30, 40});
    CHECK(ids(plan, info(plan, a, 20).dependents) == std::vector<int>{40, 70});
    CHECK(info(plan, a, 10).height == 4);
    CHECK(info(plan, a, 20).height == 3);
    CHECK(info(plan, a, 30).height == 3);
    CHECK(info(plan, a, 40).height == 2);
    CHECK(info(plan, a, 50).height == 2);
    CHECK(info(plan, a, 60).height == 1);
    CHECK(info(plan, a, 70).height == 1);
    CHECK(info(plan, a, 60).level == 3);
    CHECK(ids(plan, a.critical_path) == std::vector<int>{10, 30, 50, 60});
  }

  SECTION("independent steps share level 0") {
    auto plan = plan_of(R"([{"id": 3, "action": "echo"}, {"id": 1, "action": "echo"}, {"id": 2, "action": "echo"}])");
    auto a = analyze(plan, tools.registry);
    REQUIRE(a.ok());
    CHECK(level_ids(plan, a) == std::vector<std::vector<int>>{{3, 1, 2}});
    CHECK(a.critical_path.size() == 1);
    for (const auto& s : a.steps) CHECK(s.height == 1);
  }
}

TEST_CASE("analyze: references add dependencies", "[executor]") {
  dagent::test::TestTools tools;
  auto plan = plan_of(R"([
    {"id": 1, "action": "echo"},
    {"id": 2, "action": "echo", "parameters": {"v": "$step1", "w": ["see $step1.a", {"x": "$step1.b[0]"}]}},
    {"id": 3, "action": "echo", "parameters": {"v": "$step2.v"}, "dependencies": [2, 1]},
    {"id": 4, "action": "echo", "parameters": {"t": "$$step1 is not a reference", "i": "$input.topic"}}
  ])");

  SECTION("with dependency analysis") {
    auto a = analyze(plan, tools.registry);
    INFO(all_problems(a.problems));
    REQUIRE(a.ok());
    CHECK(dep_ids(plan, a, 2) == std::vector<int>{1});  // three references, one dependency
    CHECK(dep_ids(plan, a, 3) == std::vector<int>{2, 1});
    CHECK(dep_ids(plan, a, 4).empty());
    CHECK(level_ids(plan, a) == std::vector<std::vector<int>>{{1, 4}, {2}, {3}});
    CHECK(info(plan, a, 2).params.references().size() == 3);
    CHECK(ids(plan, a.critical_path) == std::vector<int>{1, 2, 3});
  }
  SECTION("without dependency analysis references do not order steps") {
    AnalysisOptions options;
    options.dependency_analysis = false;
    auto a = analyze(plan, tools.registry, options);
    INFO(all_problems(a.problems));
    REQUIRE(a.ok());
    CHECK(dep_ids(plan, a, 2).empty());
    CHECK(dep_ids(plan, a, 3) == std::vector<int>{2, 1});  // explicit dependencies still count
    CHECK(level_ids(plan, a) == std::vector<std::vector<int>>{{1, 2, 4}, {3}});
  }
  SECTION("without dependency analysis a reference to a missing step is still an error") {
    AnalysisOptions options;
    options.dependency_analysis = false;
    auto bad = plan_of(R"([
      {"id": 1, "action": "echo"},
      {"id": 2, "action": "echo", "parameters": {"v": "$step9.x", "w": "$step1"}},
      {"id": 3, "action": "echo", "parameters": {"me": "I am $step3"}}
    ])");
    auto a = analyze(bad, tools.registry, options);
    INFO(all_problems(a.problems));
    REQUIRE(a.problems.size() == 2);
    CHECK(a.problems[0].to_string() == "step 2: $step9.x refers to step 9, which is not in the plan");
    CHECK(a.problems[1].to_string() == "step 3: refers to itself ($step3)");
  }
}

TEST_CASE("analyze rejects bad plans with the step id", "[executor]") {
  dagent::test::TestTools tools;

  SECTION("duplicate ids, through parse_plan") {
    auto parsed = parse_plan(json::parse(R"([
      {"id": 1, "action": "echo"}, {"id": 1, "action": "echo"}, {"id": 2, "action": "echo", "dependencies": [1]}
    ])"));
    REQUIRE(parsed.problems.size() == 1);
    CHECK(parsed.problems[0].to_string() == "step 1: duplicate step id 1");
    auto a = analyze(parsed.plan, tools.registry);
    CHECK(a.ok());
    CHECK(a.steps.size() == 2);
  }
  SECTION("unknown action") {
    auto plan = plan_of(R"([{"id": 1, "action": "echo"}, {"id": 3, "action": "teleport", "parameters": {"x": 1}}])");
    auto a = analyze(plan, tools.registry);
    REQUIRE(a.problems.size() == 1);
    CHECK(a.problems[0].step_id == 3);
    CHECK(a.problems[0].to_string() == "step 3: unknown action 'teleport'");
    CHECK(info(plan, a, 3).tool == nullptr);
    // Only a dangling dependency or a cycle stops the DAG from being derived.
    CHECK(level_ids(plan, a) == std::vector<std::vector<int>>{{1, 3}});
  }
  SECTION("a dependency on a missing step") {
    auto plan = plan_of(R"([
      {"id": 1, "action": "echo"},
      {"id": 2, "action": "echo", "dependencies": [1, 9]},
      {"id": 4, "action": "echo", "parameters": {"p": "x $step8.out y"}}
    ])");
    auto a = analyze(plan, tools.registry);
    INFO(all_problems(a.problems));
    REQUIRE(a.problems.size() == 2);
    CHECK(a.problems[0].to_string() == "step 2: depends on step 9, which is not in the plan");
    CHECK(a.problems[1].to_string() == "step 4: $step8.out refers to step 8, which is not in the plan");
    CHECK(a.levels.empty());
    CHECK(a.critical_path.empty());
  }
  SECTION("a self-reference, explicit or by reference") {
    auto plan = plan_of(R"([
      {"id": 1, "action": "echo", "dependencies": [1]},
      {"id": 2, "action": "echo", "parameters": {"again": "$step2.text"}}
    ])");
    auto a = analyze(plan, tools.registry);
    INFO(all_problems(a.problems));
    REQUIRE(a.problems.size() == 2);
    CHECK(a.problems[0].to_string() == "step 1: depends on itself");
    CHECK(a.problems[1].to_string() == "step 2: refers to itself ($step2.text)");
    CHECK(a.levels.empty());
  }
  SECTION("a 3-cycle shows the cycle, following dependencies") {
    // 2 waits for 5 (by reference), 5 waits for 3, 3 waits for 2; 1 is upstream of the cycle.
    auto plan = plan_of(R"([
      {"id": 1, "action": "echo"},
      {"id": 2, "action": "echo", "parameters": {"v": "$step5.v"}, "dependencies": [1]},
      {"id": 3, "action": "echo", "dependencies": [2]},
      {"id": 5, "action": "echo", "dependencies": [3]}
    ])");
    auto a = analyze(plan, tools.registry);
    INFO(all_problems(a.problems));
    REQUIRE(a.problems.size() == 1);
    CHECK(a.problems[0].step_id == 2);
    CHECK_THAT(a.problems[0].message, Catch::Contains("2 -> 5 -> 3 -> 2"));
    CHECK(a.problems[0].to_string() == "step 2: dependency cycle: 2 -> 5 -> 3 -> 2 (each step depends on the next)");
    CHECK(a.levels.empty());
    CHECK(a.critical_path.empty());
  }
  SECTION("two separate cycles are both shown") {
    auto plan = plan_of(R"([
      {"id": 8, "action": "echo", "dependencies": [7]},
      {"id": 7, "action": "echo", "dependencies": [8]},
      {"id": 1, "action": "echo", "dependencies": [2]},
      {"id": 2, "action": "echo", "dependencies": [1]}
    ])");
    auto a = analyze(plan, tools.registry);
    INFO(all_problems(a.problems));
    REQUIRE(a.problems.size() == 2);
    CHECK(a.problems[0].to_string() == "step 1: dependency cycle: 1 -> 2 -> 1 (each step depends on the next)");
    CHECK(a.problems[1].to_string() == "step 8: dependency cycle: 8 -> 7 -> 8 (each step depends on the next)");
  }
  SECTION("malformed references") {
    auto plan = plan_of(R"([
      {"id": 1, "action": "echo"},
      {"id": 2, "action": "echo", "parameters": {"a": {"b": ["fine $step1", "bad $foo"]}, "c": "$step1x"}}
    ])");
    auto a = analyze(plan, tools.registry);
    INFO(all_problems(a.problems));
    REQUIRE(a.problems.size() == 2);
    CHECK_THAT(a.problems[0].to_string(),
               Catch::StartsWith("step 2: parameter a.b[1]: malformed reference '$foo' at offset 4: "));
    CHECK_THAT(a.problems[1].to_string(), Catch::StartsWith("step 2: parameter c: malformed reference '$step1x'"));
  }
  SECTION("parameters that do not match the tool's schema") {
    auto plan = plan_of(R"([
      {"id": 1, "action": "read_file", "parameters": {}},
      {"id": 2, "action": "read_file", "parameters": {"path": 5}},
      {"id": 3, "action": "read_file", "parameters": {"path": "a.txt", "offset": 3}},
      {"id": 4, "action": "read_file", "parameters": {"path": "a.txt", "max_bytes": "10"}},
      {"id": 5, "action": "sleep", "parameters": {"ms": -1}},
      {"id": 6, "action": "sleep", "parameters": {"ms": "wait $step5.slept"}}
    ])");
    auto a = analyze(plan, tools.registry);
    INFO(all_problems(a.problems));
    REQUIRE(a.problems.size() == 6);
    CHECK(a.problems[0].to_string() == "step 1: parameters.path: missing required property");
    CHECK(a.problems[1].to_string() == "step 2: parameters.path: expected string, got integer");
    CHECK(a.problems[2].to_string() == "step 3: parameters.offset: unknown property (expected path, max_bytes)");
    CHECK(a.problems[3].to_string() == "step 4: parameters.max_bytes: expected integer, got string");
    CHECK(a.problems[4].to_string() == "step 5: parameters.ms: must be >= 0, got -1");
    // Text with a reference inside is a string, whatever the reference holds.
    CHECK(a.problems[5].to_string() == "step 6: parameters.ms: expected integer, got string");
  }
  SECTION("a whole-reference parameter passes the schema check") {
    auto plan = plan_of(R"([
      {"id": 1, "action": "echo", "parameters": {"n": 10, "path": "a.txt"}},
      {"id": 2, "action": "sleep", "parameters": {"ms": "$step1.n", "value": "$step1"}}
    ])");
    auto a = analyze(plan, tools.registry);
    INFO(all_problems(a.problems));
    CHECK(a.ok());
  }
  SECTION("a whole reference to read_file's path passes the schema check (SPEC §3 example)") {
    auto plan = plan_of(R"([
      {"id": 1, "action": "search_files", "parameters": {"pattern": "docs/**/*.md"}},
      {"id": 2, "action": "read_file", "parameters": {"path": "$step1.matches[0].path", "max_bytes": "$input.limit"}}
    ])");
    auto a = analyze(plan, tools.registry);
    INFO(all_problems(a.problems));
    CHECK(a.ok());
  }
  SECTION("more steps than max_steps") {
    auto plan = plan_of(R"([{"id": 1, "action": "echo"}, {"id": 2, "action": "echo"}, {"id": 3, "action": "echo"}])");
    AnalysisOptions options;
    options.max_steps = 2;
    auto a = analyze(plan, tools.registry, options);
    REQUIRE(a.problems.size() == 1);
    CHECK(a.problems[0].step_id == 0);
    CHECK(a.problems[0].to_string() == "plan: the plan has 3 steps, more than planner.max_steps (2)");
    options.max_steps = 3;
    CHECK(analyze(plan, tools.registry, options).ok());
  }
  SECTION("an unknown $input when inputs are given") {
    auto plan = plan_of(R"([
      {"id": 1, "action": "echo", "parameters": {"a": "$input.topic", "b": "about $input.colour"}}
    ])");
    CHECK(analyze(plan, tools.registry).ok());  // no inputs given: not checked
    auto inputs = json::parse(R"({"topic": "rivers"})").as_object();
    AnalysisOptions options;
    options.inputs = &inputs;
    auto a = analyze(plan, tools.registry, options);
    REQUIRE(a.problems.size() == 1);
    CHECK(a.problems[0].to_string() == "step 1: reference $input.colour: the task has no input 'colour'");
  }
  SECTION("a verify json_schema that is not a valid schema names the step and the key") {
    auto plan = plan_of(R"([{"id": 3, "action": "echo", "verify": {"json_schema": {"type": "nonsense"}}},
                            {"id": 4, "action": "echo", "verify": [{"json_schema": {"required": "x"}}]}])");
    auto a = analyze(plan, tools.registry);
    INFO(all_problems(a.problems));
    REQUIRE(a.problems.size() == 2);
    CHECK_THAT(a.problems[0].to_string(), Catch::StartsWith("step 3: verify: json_schema.type: must be a type name"));
    CHECK(a.problems[1].to_string() == "step 4: verify: [0] json_schema.required: expected array, got string");
  }
  SECTION("parameters are checked with every keyword, and references still pass where they may") {
    dagent::tools::Registry registry;
    REQUIRE(registry.add(std::make_shared<PatternTool>()).has_value());
    auto plan = plan_of(R"([
      {"id": 1, "action": "pattern", "parameters": {"code": "ABC-12", "mode": "fast"}},
      {"id": 2, "action": "pattern", "parameters": {"code": "abc", "mode": "slow"}},
      {"id": 3, "action": "pattern", "parameters": {"code": "$step1.code", "mode": "fast"}},
      {"id": 4, "action": "pattern", "parameters": {"code": "ABC-$step1.n", "mode": "fast"}},
      {"id": 5, "action": "pattern", "parameters": {"code": "ABC-1", "mode": "$step1.mode"}}
    ])");
    auto a = analyze(plan, registry);
    INFO(all_problems(a.problems));
    REQUIRE(a.problems.size() == 2);
    CHECK(a.problems[0].to_string() == R"(step 2: parameters.code: must match the pattern "^[A-Z]{3}-[0-9]+$", got "abc")");
    CHECK(a.problems[1].to_string() == "step 2: parameters.mode: matches none of the anyOf alternatives");
  }
  SECTION("an llm step's json_schema must be a valid schema") {
    boost::asio::io_context io;
    dagent::net::OpenAiOptions options;
    options.base_url = *dagent::net::parse_base_url("http://127.0.0.1:9/v1");  // never called
    dagent::net::OpenAiClient client(io.get_executor(), nullptr, options);
    dagent::tools::Registry registry;
    REQUIRE(registry.add(std::make_shared<dagent::tools::LlmTool>(client, "m")).has_value());
    auto plan = plan_of(R"([
      {"id": 1, "action": "llm", "parameters": {"prompt": "x", "json_schema": {"properties": {"n": {"type": "integr"}}}}},
      {"id": 2, "action": "llm", "parameters": {"prompt": "x", "json_schema": {"properties": {"n": {"type": "integer"}}}}}
    ])");
    auto a = analyze(plan, registry);
    INFO(all_problems(a.problems));
    REQUIRE(a.problems.size() == 1);
    CHECK_THAT(a.problems[0].to_string(),
               Catch::StartsWith("step 1: parameters.json_schema.properties.n.type: must be a type name"));
  }
  SECTION("a malformed verify criterion") {
    auto plan = plan_of(R"([{"id": 4, "action": "echo", "verify": {"mentions": "x"}}])");
    auto a = analyze(plan, tools.registry);
    REQUIRE(a.problems.size() == 1);
    CHECK(a.problems[0].step_id == 4);
    CHECK_THAT(a.problems[0].message, Catch::StartsWith("verify: unknown rule 'mentions'"));
  }
}

TEST_CASE("analyze reports every problem of a bad plan, sorted by step id", "[executor]") {
  dagent::test::TestTools tools;
  auto plan = plan_of(R"([
    {"id": 9, "action": "echo", "dependencies": [12]},
    {"id": 5, "action": "warp"},
    {"id": 2, "action": "read_file", "parameters": {"path": "a", "mode": "r"}, "verify": []},
    {"id": 7, "action": "echo", "parameters": {"p": "$step7"}},
    {"id": 1, "action": "echo", "parameters": {"p": "$what"}}
  ])");
  AnalysisOptions options;
  auto a = analyze(plan, tools.registry, options);
  INFO(all_problems(a.problems));
  REQUIRE(a.problems.size() == 6);
  std::vector<int> order;
  for (const auto& p : a.problems) order.push_back(p.step_id);
  CHECK(order == std::vector<int>{1, 2, 2, 5, 7, 9});
  CHECK_THAT(a.problems[0].message, Catch::StartsWith("parameter p: malformed reference '$what'"));
  CHECK(a.problems[1].message == "parameters.mode: unknown property (expected path, max_bytes)");
  CHECK(a.problems[2].message == "verify: an empty list of criteria");
  CHECK(a.problems[3].message == "unknown action 'warp'");
  CHECK(a.problems[4].message == "refers to itself ($step7)");
  CHECK(a.problems[5].message == "depends on step 12, which is not in the plan");
  CHECK(a.levels.empty());

  SECTION("a plan over planner.max_steps is rejected on its size alone") {
    options.max_steps = 4;
    auto over = analyze(plan, tools.registry, options);
    REQUIRE(over.problems.size() == 1);
    CHECK(over.problems[0].to_string() == "plan: the plan has 5 steps, more than planner.max_steps (4)");
  }
}

TEST_CASE("analyze: a step downstream of a cycle does not repeat the cycle", "[executor]") {
  // Steps 2, 5 and 3 form a cycle; 6 only waits for it. The cycle is one problem, not one per
  // step that reaches it.
  dagent::test::TestTools tools;
  auto plan = plan_of(R"([
    {"id": 2, "action": "echo", "dependencies": [5]},
    {"id": 3, "action": "echo", "dependencies": [2]},
    {"id": 5, "action": "echo", "dependencies": [3]},
    {"id": 6, "action": "echo", "dependencies": [3]}
  ])");
  auto a = analyze(plan, tools.registry);
  INFO(all_problems(a.problems));
  CHECK(count_problems(a, 2, "dependency cycle: 2 -> 5 -> 3 -> 2") == 1);
  CHECK(a.problems.size() == 1);
}

TEST_CASE("analyze on a hand-built plan with duplicate ids", "[executor]") {
  // A Plan is plain data: one built without parse_plan must still be rejected (SPEC §3).
  dagent::test::TestTools tools;
  Plan plan;
  plan.steps.resize(2);
  plan.steps[0].id = 4;
  plan.steps[0].action = "echo";
  plan.steps[1].id = 4;
  plan.steps[1].action = "echo";
  auto a = analyze(plan, tools.registry);
  INFO(all_problems(a.problems));
  CHECK(count_problems(a, 4, "duplicate") == 1);
}

TEST_CASE("analyze regression: a built-in tool left out of tools.enabled is called disabled, not unknown",
          "[executor]") {
  auto registry = dagent::tools::make_builtin_registry({"read_file"});
  auto plan = plan_of(R"([
    {"id": 1, "action": "write_file", "parameters": {"path": "a", "content": "x"}},
    {"id": 2, "action": "memory_search", "parameters": {"query": "q"}},
    {"id": 3, "action": "no_such_tool"}
  ])");
  auto a = analyze(plan, registry);
  INFO(all_problems(a.problems));
  CHECK(count_problems(a, 1, "\"write_file\" is disabled (tools.enabled)") == 1);
  CHECK(count_problems(a, 2, "\"memory_search\" is disabled (tools.enabled)") == 1);
  CHECK(count_problems(a, 3, "unknown action 'no_such_tool'") == 1);
  CHECK(count_problems(a, 1, "unknown action") == 0);
}

namespace {

// `n` list_dir steps; step i depends on step i + 1, and the last on the first when `closed`.
Plan chain_plan(int n, bool closed) {
  Plan plan;
  plan.steps.reserve(static_cast<std::size_t>(n));
  for (int id = 1; id <= n; ++id) {
    dagent::executor::Step step;
    step.id = id;
    step.action = "list_dir";
    step.parameters = json::object{{"path", "."}};
    if (id < n) step.dependencies.push_back(id + 1);
    else if (closed) step.dependencies.push_back(1);
    plan.steps.push_back(std::move(step));
  }
  return plan;
}

}  // namespace

TEST_CASE("analyze regression: a 100 000-step plan is rejected on planner.max_steps before any step is inspected",
          "[executor]") {
  auto registry = dagent::tools::make_builtin_registry({"list_dir"});
  auto plan = chain_plan(100'000, false);
  plan.steps[5].action = "no_such_tool";  // not reported: the count alone rejects the plan
  AnalysisOptions options;
  options.max_steps = 50;
  auto a = analyze(plan, registry, options);
  REQUIRE(a.problems.size() == 1);
  CHECK(a.problems[0].to_string() == "plan: the plan has 100000 steps, more than planner.max_steps (50)");
  CHECK(a.levels.empty());
}

TEST_CASE("analyze regression: a 100 000-step dependency cycle is found without deep recursion", "[executor]") {
  auto registry = dagent::tools::make_builtin_registry({"list_dir"});
  AnalysisOptions options;
  options.max_steps = 0;  // no cap: the analysis itself must scale
  SECTION("one long cycle") {
    auto a = analyze(chain_plan(100'000, true), registry, options);
    REQUIRE(a.problems.size() == 1);
    CHECK_THAT(a.problems[0].to_string(), Catch::StartsWith("step 1: dependency cycle: 1 -> 2 -> 3 -> "));
    CHECK_THAT(a.problems[0].to_string(), Catch::EndsWith(" -> 100000 -> 1 (each step depends on the next)"));
  }
  SECTION("a long chain waiting for a small cycle shows the cycle once") {
    auto plan = chain_plan(100'000, false);
    plan.steps.back().dependencies.push_back(99'999);  // 99 999 <-> 100 000
    auto a = analyze(plan, registry, options);
    REQUIRE(a.problems.size() == 1);
    CHECK(a.problems[0].to_string() == "step 99999: dependency cycle: 99999 -> 100000 -> 99999 (each step depends on the next)");
  }
  SECTION("a long acyclic chain gets its levels") {
    auto a = analyze(chain_plan(100'000, false), registry, options);
    CHECK(a.problems.empty());
    CHECK(a.levels.size() == 100'000);
    CHECK(a.critical_path.size() == 100'000);
  }
}

TEST_CASE("IncrementalAnalysis regression: 100 000 streamed steps arriving before their dependencies are admitted "
          "in one linear pass",
          "[executor]") {
  auto registry = dagent::tools::make_builtin_registry({"list_dir"});
  AnalysisOptions options;
  options.max_steps = 0;
  dagent::executor::IncrementalAnalysis inc(registry, options);
  auto plan = chain_plan(100'000, false);  // each step waits for the next one to arrive
  for (std::size_t i = 0; i + 1 < plan.steps.size(); ++i) CHECK(inc.add(plan.steps[i]).empty());
  CHECK(inc.waiting() == 99'999);
  auto admitted = inc.add(plan.steps.back());
  REQUIRE(admitted.size() == 100'000);
  CHECK(inc.waiting() == 0);
  CHECK(inc.plan().steps.front().id == 100'000);
  CHECK(inc.plan().steps.back().id == 1);
  CHECK(inc.analysis().steps.back().level == 99'999);

  SECTION("past max_steps nothing more is admitted or kept waiting") {
    AnalysisOptions capped;
    capped.max_steps = 3;
    dagent::executor::IncrementalAnalysis small(registry, capped);
    auto few = chain_plan(5, false);
    for (int i = 4; i >= 0; --i) small.add(few.steps[static_cast<std::size_t>(i)]);
    CHECK(small.plan().steps.size() == 3);
    CHECK(small.waiting() == 0);
  }
}

TEST_CASE("IncrementalAnalysis regression: with dependency_analysis off, a reference to a later step that depends "
          "on it does not keep both waiting (fuzz_plan)",
          "[executor]") {
  auto registry = dagent::tools::make_builtin_registry({"read_file", "list_dir"});
  AnalysisOptions options;
  options.dependency_analysis = false;
  // Step 1 waits for step 2; step 2 only refers to step 1, which does not order it.
  const auto plan = plan_of(R"([
    {"id": 1, "action": "list_dir", "parameters": {"path": "."}, "dependencies": [2]},
    {"id": 2, "action": "read_file", "parameters": {"path": "$step1.entries[0].path"}}
  ])");
  const auto whole = analyze(plan, registry, options);
  REQUIRE(whole.ok());
  dagent::executor::IncrementalAnalysis inc(registry, options);
  CHECK(inc.add(plan.steps[0]).empty());
  const auto admitted = inc.add(plan.steps[1]);
  CHECK(ids(inc.plan(), admitted) == std::vector<int>{2, 1});
  CHECK(inc.waiting() == 0);
  CHECK(inc.analysis().steps[0].level == whole.steps[whole.index_of.at(2)].level);
  CHECK(inc.analysis().steps[1].level == whole.steps[whole.index_of.at(1)].level);
}
