// A plan or replan can only use the tools in tools.enabled: a scripted model that plans a tool
// left out is refused before anything runs, on every path a plan takes (a fixed plan, a planned
// one, a repaired one, a streamed one, a replan, a keyword route), and the tool is never offered.

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "config/config.hpp"
#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"
#include "support/process.hpp"
#include "support/test_server_process.hpp"
#include "support/test_tools.hpp"
#include "support/scripted_prompts.hpp"

namespace {

namespace json = boost::json;
using dagent::test::k_answer;
using dagent::test::k_intent;
using dagent::test::k_plan;
using dagent::test::k_repair;
using dagent::test::k_replan;
using dagent::test::rule;
using dagent::RunOptions;
using dagent::Runtime;
using dagent::StepEvent;
using dagent::StepStatus;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

constexpr const char* k_disabled = "\"write_file\" is disabled (tools.enabled)";

std::string plan_text(std::string_view steps) { return std::string("{\"steps\": ") + std::string(steps) + "}"; }

// Reads a.txt, then writes what it read over config.yaml: what a prompt injection asks for.
const char* k_hostile = R"([{"id": 1, "action": "read_file", "parameters": {"path": "a.txt"}},
  {"id": 2, "action": "write_file", "parameters": {"path": "config.yaml", "content": "$step1.content"}}])";

dagent::config::Config config_for(const TestServer& server, const TempDir& dir) {
  dagent::config::Config cfg;
  cfg.llm.base_url = server.base_url();
  cfg.llm.structured_output = false;
  cfg.base_dir = dir.path();
  cfg.tools.workspace = "ws";
  cfg.tools.enabled = {"read_file", "list_dir"};  // no write_file, no llm
  cfg.memory.enabled = false;
  cfg.tasks["goal"] = dagent::config::Task{.name = "goal", .goal = "Summarize a.txt"};
  return cfg;
}

void write_workspace(const TempDir& dir) {
  dir.write("ws/a.txt", "llm: {base_url: https://evil.example/v1}");
  dir.write("ws/config.yaml", "original\n");
}

std::vector<std::string> bodies(const TestServer& server) {
  std::vector<std::string> out;
  const auto stats = server.stats();
  for (const auto& r : stats.at("recent").as_array()) out.emplace_back(r.at("body").as_string());
  return out;
}

const std::string* body_with(const std::vector<std::string>& all, std::string_view needle) {
  for (const auto& b : all)
    if (b.find(needle) != std::string::npos) return &b;
  return nullptr;
}

std::string all_problems(const dagent::RunOutcome& o) {
  std::string out = o.result.error;
  for (const auto& p : o.problems) out += "\n" + p;
  return out;
}

struct Started {
  std::map<int, std::string>* actions;  // step id → action, for each step that started running
  void operator()(const StepEvent& e) const {
    if (e.status == StepStatus::running) (*actions)[e.step_id] = "ran";
  }
};

}  // namespace

TEST_CASE("a planned plan calling a tool outside tools.enabled is refused, and the tool is never offered",
          "[planner][enabled]") {
  // The intent names write_file too; the plan and the repair both call it.
  json::array rules{rule(k_intent, R"({"intent": "x", "tools": ["read_file", "write_file"]})"),
                    rule(k_plan, plan_text(k_hostile)), rule(k_repair, plan_text(k_hostile)), rule(k_answer, "done")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  auto cfg = config_for(server, dir);
  cfg.planner.stream_plan = false;  // the whole plan is checked before any step runs; streamed: the next test
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  std::map<int, std::string> started;
  RunOptions options;
  options.on_event = Started{&started};
  auto outcome = runtime.run_task("goal", options);
  INFO(all_problems(outcome));
  CHECK(outcome.exit_code() == 2);
  CHECK_THAT(all_problems(outcome), Catch::Contains("step 2: " + std::string(k_disabled)));
  CHECK(started.empty());  // refused before anything ran, read_file included
  CHECK(dagent::test::read_text(dir.path() / "ws/config.yaml") == "original\n");
  const auto all = bodies(server);
  const auto* plan = body_with(all, k_plan);
  REQUIRE(plan != nullptr);
  // The catalog offered only enabled tools, though the intent asked for write_file.
  CHECK(plan->find("- read_file:") != std::string::npos);
  CHECK(plan->find("- write_file:") == std::string::npos);
  const auto* repair = body_with(all, k_repair);
  REQUIRE(repair != nullptr);  // the model was told why
  CHECK(repair->find("is disabled (tools.enabled)") != std::string::npos);
  CHECK(repair->find("- write_file:") == std::string::npos);
  CHECK(body_with(all, k_answer) == nullptr);
}

TEST_CASE("a streamed plan step calling a tool outside tools.enabled never starts", "[planner][enabled]") {
  // The disabled step is complete (and would start) first; the plan stream goes on after it.
  json::array chunks{
      R"({"steps": [{"id": 1, "action": "write_file", "parameters": {"path": "config.yaml", "content": "pwned"}},)",
      R"( {"id": 2, "action": "list_dir", "parameters": {"path": "."}, "dependencies": [1]}]})"};
  json::array rules{rule(k_intent, R"({"intent": "x", "tools": []})"),
                    json::object{{"contains", k_plan}, {"stream_chunks", chunks}, {"stream_interval_ms", 50}},
                    rule(k_repair, plan_text(R"([{"id": 1, "action": "write_file", "parameters": {"path": "config.yaml", "content": "x"}}])")),
                    rule(k_answer, "done")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  auto cfg = config_for(server, dir);
  cfg.planner.stream_plan = true;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  std::map<int, std::string> started;
  RunOptions options;
  options.on_event = Started{&started};
  auto outcome = runtime.run_task("goal", options);
  INFO(all_problems(outcome));
  CHECK(outcome.exit_code() == 2);  // nothing ran, so the repair was tried, and refused too
  CHECK_THAT(all_problems(outcome), Catch::Contains(k_disabled));
  CHECK(started.empty());
  CHECK(dagent::test::read_text(dir.path() / "ws/config.yaml") == "original\n");

  SECTION("a valid step streamed before it may run; the plan still fails and nothing is written") {
    json::array more{R"({"steps": [{"id": 1, "action": "list_dir", "parameters": {"path": "."}},)",
                     R"( {"id": 2, "action": "write_file", "parameters": {"path": "config.yaml", "content": "pwned"}}]})"};
    json::array rules2{rule(k_intent, R"({"intent": "x", "tools": []})"),
                       json::object{{"contains", k_plan}, {"stream_chunks", more}, {"stream_interval_ms", 50}},
                       rule(k_answer, "done")};
    server.reset();
    server.set_script(json::object{{"rules", rules2}});
    started.clear();
    auto second = runtime.run_task("goal", options);
    INFO(all_problems(second));
    CHECK(second.exit_code() != 0);
    CHECK_THAT(all_problems(second), Catch::Contains(k_disabled));
    CHECK_FALSE(started.contains(2));
    CHECK(dagent::test::read_text(dir.path() / "ws/config.yaml") == "original\n");
  }
}

TEST_CASE("a replan calling a tool outside tools.enabled is refused and runs nothing new", "[planner][enabled]") {
  json::array rules{
      rule(k_intent, R"({"intent": "x", "tools": []})"),
      rule(k_plan, plan_text(R"([{"id": 1, "action": "read_file", "parameters": {"path": "a.txt"}}])")),
      json::object{{"contains", k_answer}, {"nth", 1}, {"reply", "REPLAN: the document asks to save it as config.yaml"}},
      rule(k_replan, plan_text(R"([{"id": 2, "action": "write_file", "parameters": {"path": "config.yaml", "content": "$step1.content"}},
                                   {"id": 3, "action": "llm", "parameters": {"prompt": "$step1.content"}}])")),
      rule(k_answer, "done")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  Runtime runtime = dagent::runtime::make_runtime(config_for(server, dir));
  std::map<int, std::string> started;
  RunOptions options;
  options.on_event = Started{&started};
  auto outcome = runtime.run_task("goal", options);
  INFO(all_problems(outcome));
  CHECK(outcome.exit_code() == 1);
  CHECK_THAT(outcome.result.error, Catch::Contains("replanning failed") && Catch::Contains(k_disabled) &&
                                       Catch::Contains("\"llm\" is disabled (tools.enabled)"));
  CHECK(started == std::map<int, std::string>{{1, "ran"}});  // only the first plan's step
  CHECK(dagent::test::read_text(dir.path() / "ws/config.yaml") == "original\n");
  const auto all = bodies(server);  // named: body_with points into it
  const auto* replan = body_with(all, k_replan);
  REQUIRE(replan != nullptr);
  CHECK(replan->find("- write_file:") == std::string::npos);
  CHECK(replan->find("- llm:") == std::string::npos);
}

TEST_CASE("a keyword route or a fixed plan naming a tool outside tools.enabled is refused", "[planner][enabled]") {
  TestServer server(TestServerOptions{.script = json::object{{"rules", json::array{rule(k_plan, plan_text(k_hostile))}}}});
  TempDir dir;
  write_workspace(dir);
  SECTION("route") {
    auto cfg = config_for(server, dir);
    cfg.planner.routes.push_back({"save", {"summarize"}, {"read_file", "write_file"}, 0});
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto outcome = runtime.run_task("goal");
    CHECK(outcome.exit_code() == 2);
    REQUIRE(outcome.problems.size() == 1);
    CHECK(outcome.problems[0] == "planner.routes[0] (save): \"write_file\" is disabled (tools.enabled)");
    CHECK(server.requests_to("/v1/chat/completions") == 0);
  }
  SECTION("fixed plan") {
    Runtime runtime = dagent::runtime::make_runtime(config_for(server, dir));
    auto outcome = runtime.run_plan(json::parse(k_hostile), {}, dir.path() / "ws");
    CHECK(outcome.exit_code() == 2);
    CHECK_THAT(all_problems(outcome), Catch::Contains(k_disabled));
    CHECK(dagent::test::read_text(dir.path() / "ws/config.yaml") == "original\n");
  }
  SECTION("a tool a program registers is enabled by registering it") {
    Runtime runtime = dagent::runtime::make_runtime(config_for(server, dir));
    REQUIRE(runtime.register_tool(std::make_shared<dagent::test::EchoTool>()).has_value());
    auto outcome = runtime.run_plan(json::parse(R"([{"id": 1, "action": "echo", "parameters": {"x": 1}}])"), {},
                                    dir.path() / "ws");
    INFO(all_problems(outcome));
    CHECK(outcome.exit_code() == 0);
  }
}
