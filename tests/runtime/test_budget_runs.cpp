// Budgets (limits.*) and the llm tool's rules, against the scripted test server: a run's calls,
// tokens and wall time are capped, a refused call never reaches the server, and the run ends
// with "budget exceeded: ..." and exit 1.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <boost/json.hpp>

#include "config/config.hpp"
#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"
#include "support/process.hpp"
#include "support/test_server_process.hpp"
#include "support/scripted_prompts.hpp"

namespace {

namespace json = boost::json;
using dagent::test::k_answer;
using dagent::test::k_chat;
using dagent::test::k_intent;
using dagent::test::k_plan;
using dagent::test::k_replan;
using dagent::test::rule;
using dagent::RunOutcome;
using dagent::Runtime;
using dagent::StepStatus;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;


dagent::config::Config config_for(const TestServer& server, const TempDir& dir) {
  dagent::config::Config cfg;
  cfg.llm.base_url = server.base_url();
  cfg.base_dir = dir.path();
  cfg.tools.workspace = "ws";
  cfg.memory.enabled = false;
  return cfg;
}

std::vector<std::string> bodies(const TestServer& server) {
  std::vector<std::string> out;
  const auto stats = server.stats();
  for (const auto& r : stats.at("recent").as_array()) out.emplace_back(r.at("body").as_string());
  return out;
}

// `n` llm steps; chained (each depends on the one before) or independent.
json::value llm_plan(int n, bool chained, std::string extra = "") {
  json::array steps;
  for (int i = 1; i <= n; ++i) {
    json::object params{{"prompt", "question " + std::to_string(i)}};
    if (!extra.empty()) params["max_tokens"] = std::stoi(extra);
    json::object step{{"id", i}, {"action", "llm"}, {"parameters", std::move(params)}};
    if (chained && i > 1) step["dependencies"] = json::array{i - 1};
    steps.push_back(std::move(step));
  }
  return steps;
}

std::string why(const RunOutcome& o) { return o.problems.empty() ? o.result.error : o.problems.front(); }

}  // namespace

TEST_CASE("limits.max_llm_calls: ten llm steps, a cap of three: three requests, the rest fail fast, exit 1",
          "[runtime][budget]") {
  TestServer server;
  TempDir dir;
  auto cfg = config_for(server, dir);
  cfg.limits.max_llm_calls = 3;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto outcome = runtime.run_plan(llm_plan(10, false), {}, dir.path());
  INFO(why(outcome));
  REQUIRE(outcome.problems.empty());
  CHECK(server.requests_to(k_chat) == 3);
  CHECK(outcome.exit_code() == 1);
  const auto& r = outcome.result;
  CHECK(r.error == "budget exceeded: limits.max_llm_calls: 3 of 3 calls");
  CHECK_FALSE(r.interrupted);
  int ok = 0, refused = 0;
  for (const auto& s : r.steps) {
    if (s.status == StepStatus::succeeded) ++ok;
    if (s.status == StepStatus::failed) {
      CHECK_THAT(s.error, Catch::StartsWith("budget exceeded: limits.max_llm_calls: 3 of 3 calls"));
      ++refused;
    }
  }
  CHECK(ok == 3);
  CHECK(refused == 7);
  CHECK(r.metrics.llm_calls == 3);

  SECTION("each run of a Runtime has a budget of its own") {
    server.reset();
    auto again = runtime.run_plan(llm_plan(3, false), {}, dir.path());
    INFO(why(again));
    CHECK(again.exit_code() == 0);
    CHECK(again.result.error.empty());
    CHECK(server.requests_to(k_chat) == 3);
  }
}

TEST_CASE("limits.max_llm_calls through the CLI: --set, the result's error and exit code 1", "[cli][budget]") {
  TestServer server;
  TempDir dir;
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: llm, parameters: {prompt: "one"}}
  - {id: 2, action: llm, parameters: {prompt: "two"}, dependencies: [1]}
  - {id: 3, action: write_file, parameters: {path: out.txt, content: "$step2.text"}}
)");
  auto r = dagent::test::run_process({DAGENT_BINARY, "run", "task.yaml", "--json", "--set", "limits.max_llm_calls=1"},
                                     dir.path(), {"OPENAI_BASE_URL=" + server.base_url(), "OPENAI_API_KEY=sk-test"});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  CHECK(server.requests_to(k_chat) == 1);
  auto o = json::parse(r.out).as_object();
  CHECK(o.at("error") == "budget exceeded: limits.max_llm_calls: 1 of 1 calls");
  const auto& steps = o.at("steps").as_array();
  CHECK(steps[0].at("status") == "succeeded");
  CHECK(steps[1].at("status") == "failed");
  CHECK(steps[2].at("status") == "skipped");
  CHECK(o.at("metrics").at("llm_calls") == 1);
  CHECK_FALSE(std::filesystem::exists(dir.path() / "out.txt"));
}

TEST_CASE("limits.max_tokens: replies reporting large usage spend the budget, the next call is refused",
          "[runtime][budget]") {
  // Every reply claims 1000 prompt and 100 completion tokens (each step asks for max_tokens 100).
  json::object big{{"id", "chatcmpl-big"},
                   {"object", "chat.completion"},
                   {"model", "gpt-4o-mini"},
                   {"choices", json::array{json::object{{"index", 0},
                                                        {"message", json::object{{"role", "assistant"}, {"content", "ok"}}},
                                                        {"finish_reason", "stop"}}}},
                   {"usage", json::object{{"prompt_tokens", 1000}, {"completion_tokens", 100}, {"total_tokens", 1100}}}};
  json::array rules{json::object{{"path", k_chat}, {"status", 200}, {"body", big}}};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  auto cfg = config_for(server, dir);
  cfg.limits.max_tokens = 2000;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto outcome = runtime.run_plan(llm_plan(5, true, "100"), {}, dir.path());
  INFO(why(outcome));
  REQUIRE(outcome.problems.empty());
  CHECK(server.requests_to(k_chat) == 2);  // 1100 + 1100: the third call finds the budget spent
  CHECK(outcome.exit_code() == 1);
  const auto& r = outcome.result;
  CHECK(r.error == "budget exceeded: limits.max_tokens: 2200 of 2000 tokens");
  REQUIRE(r.steps.size() == 5);
  CHECK(r.steps[1].status == StepStatus::succeeded);
  CHECK(r.steps[2].status == StepStatus::failed);
  CHECK_THAT(r.steps[2].error, Catch::StartsWith("budget exceeded: limits.max_tokens: 2200 of 2000 tokens"));
  CHECK(r.steps[3].status == StepStatus::skipped);
  CHECK(r.metrics.prompt_tokens + r.metrics.completion_tokens == 2200);
}

TEST_CASE("limits.max_tokens: calls in flight reserve their max_tokens, so parallel calls cannot overbook",
          "[runtime][budget]") {
  // The server's replies are tiny, but three parallel steps each may answer 800 tokens: only two
  // fit in 2000 at once, the third is refused before it is sent.
  TestServer server;
  TempDir dir;
  auto cfg = config_for(server, dir);
  cfg.limits.max_tokens = 2000;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto outcome = runtime.run_plan(llm_plan(3, false, "800"), {}, dir.path());
  INFO(why(outcome));
  REQUIRE(outcome.problems.empty());
  CHECK(server.requests_to(k_chat) == 2);
  CHECK(outcome.exit_code() == 1);
  CHECK_THAT(outcome.result.error, Catch::StartsWith("budget exceeded: limits.max_tokens: ") &&
                                       Catch::Contains("the call needs up to") &&
                                       Catch::Contains("calls in flight hold"));
  CHECK(outcome.result.metrics.llm_calls == 2);
}

TEST_CASE("a goal whose answers keep asking to replan stops at limits.max_llm_calls", "[runtime][budget][planner]") {
  json::array rules{rule(k_intent, R"({"intent": "read", "tools": ["read_file"]})"),
                    rule(k_plan, R"({"steps": [{"id": 1, "action": "read_file", "parameters": {"path": "a.txt"}}]})")};
  for (int n = 1; n <= 10; ++n) {
    auto r = rule(k_replan, "{\"steps\": [{\"id\": " + std::to_string(n + 1) +
                                ", \"action\": \"read_file\", \"parameters\": {\"path\": \"a.txt\"}}]}");
    r["nth"] = n;
    rules.push_back(std::move(r));
  }
  rules.push_back(json::object{{"contains", k_answer}, {"stream_chunks", json::array{"REPLAN: ", "read it again"}}});
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  dir.write("ws/a.txt", "alpha");
  auto cfg = config_for(server, dir);
  cfg.planner.max_replans = 10;
  cfg.tasks["goal"] = dagent::config::Task{.name = "goal", .goal = "Read a.txt until you are sure"};

  SECTION("unlimited, the loop runs to planner.max_replans") {  // what the cap below stops
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto outcome = runtime.run_task("goal");
    CHECK(outcome.result.replans == 10);
    CHECK(server.requests_to(k_chat) == 2 + 2 * 10 + 1);
  }
  SECTION("limits.max_llm_calls=6: intent, plan, then answer/replan pairs until the seventh is refused") {
    cfg.limits.max_llm_calls = 6;
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto outcome = runtime.run_task("goal");
    INFO(why(outcome));
    REQUIRE(outcome.problems.empty());
    CHECK(server.requests_to(k_chat) == 6);
    CHECK(outcome.exit_code() == 1);
    CHECK(outcome.result.error == "budget exceeded: limits.max_llm_calls: 6 of 6 calls");
    CHECK(outcome.result.replans == 2);
    CHECK(outcome.result.answer.empty());
  }
  SECTION("limits.max_llm_calls=1: the planning call is refused; a failed run (exit 1), not invalid input") {
    cfg.limits.max_llm_calls = 1;
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto outcome = runtime.run_task("goal");
    INFO(why(outcome));
    CHECK(outcome.problems.empty());
    CHECK(outcome.exit_code() == 1);
    CHECK(outcome.result.error == "budget exceeded: limits.max_llm_calls: 1 of 1 calls");
    CHECK(server.requests_to(k_chat) == 1);  // the intent call only
  }
  SECTION("limits.max_tokens is spent by the streamed answers' reported usage") {
    cfg.limits.max_tokens = 3000;
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto outcome = runtime.run_task("goal");
    INFO(why(outcome));
    REQUIRE(outcome.problems.empty());
    CHECK(outcome.exit_code() == 1);
    CHECK_THAT(outcome.result.error, Catch::StartsWith("budget exceeded: limits.max_tokens: "));
    const auto& m = outcome.result.metrics;
    CHECK(m.llm_calls == server.requests_to(k_chat));
    CHECK(outcome.result.replans < 10);
    // Only what was reported is counted; the run stopped once the budget could not cover a call.
    CHECK(m.prompt_tokens + m.completion_tokens <= 3000);
  }
}

TEST_CASE("limits.max_wall_ms: a slow reply is cancelled and the run ends with the budget error",
          "[runtime][budget]") {
  json::array rules{json::object{{"path", k_chat}, {"latency_ms", 30000}, {"reply", "too late"}}};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  auto cfg = config_for(server, dir);
  cfg.limits.max_wall_ms = 200;

  SECTION("an llm step") {
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto outcome = runtime.run_plan(llm_plan(1, false), {}, dir.path());
    INFO(why(outcome));
    REQUIRE(outcome.problems.empty());
    CHECK(outcome.exit_code() == 1);
    CHECK_THAT(outcome.result.error, Catch::StartsWith("budget exceeded: limits.max_wall_ms: ") &&
                                         Catch::EndsWith(" of 200 ms"));
    CHECK_FALSE(outcome.result.interrupted);
    REQUIRE(outcome.result.steps.size() == 1);
    CHECK(outcome.result.steps[0].status == StepStatus::failed);
  }
  SECTION("the planning call of a goal") {
    dir.write("ws/a.txt", "alpha");
    cfg.planner.intent_analysis = false;
    cfg.tasks["goal"] = dagent::config::Task{.name = "goal", .goal = "Anything"};
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto outcome = runtime.run_task("goal");
    INFO(why(outcome));
    CHECK(outcome.problems.empty());
    CHECK(outcome.exit_code() == 1);
    CHECK_THAT(outcome.result.error, Catch::StartsWith("budget exceeded: limits.max_wall_ms: "));
    CHECK_FALSE(outcome.result.interrupted);
  }
}

TEST_CASE("llm tool: a model that is not configured is refused before any request", "[runtime][budget][llm]") {
  TestServer server;
  TempDir dir;
  auto cfg = config_for(server, dir);
  cfg.llm.models = {"gpt-4o"};
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto plan = json::parse(R"([{"id": 1, "action": "llm", "parameters": {"prompt": "hi", "model": "o1-pro"}}])");
  auto outcome = dagent::runtime::run_plan(runtime, plan, {}, dir.path());  // the executor's result: its error code
  REQUIRE(outcome.problems.empty());
  CHECK(server.requests_to(k_chat) == 0);
  CHECK(outcome.exit_code() == 1);
  REQUIRE(outcome.result.steps.size() == 1);
  const auto& s = outcome.result.steps[0];
  CHECK(s.status == StepStatus::failed);
  CHECK(s.error_code == dagent::ToolErrc::invalid_parameters);
  CHECK(s.error == "model: 'o1-pro' is not a configured model; allowed: 'gpt-4o-mini' (llm.model), 'gpt-4o' (llm.models)");

  SECTION("llm.model and the models of llm.models are allowed") {
    auto ok = runtime.run_plan(
        json::parse(R"([{"id": 1, "action": "llm", "parameters": {"prompt": "a", "model": "gpt-4o"}},
                        {"id": 2, "action": "llm", "parameters": {"prompt": "b", "model": "gpt-4o-mini"}}])"),
        {}, dir.path());
    INFO(why(ok));
    CHECK(ok.exit_code() == 0);
    const auto all = bodies(server);
    REQUIRE(all.size() == 2);
    int bigger = 0;
    for (const auto& b : all) bigger += b.find("\"model\":\"gpt-4o\"") != std::string::npos;
    CHECK(bigger == 1);
  }
}

TEST_CASE("llm tool: max_tokens is capped by limits.max_tokens_per_call, and is the default", "[runtime][budget][llm]") {
  TestServer server;
  TempDir dir;
  auto cfg = config_for(server, dir);
  cfg.limits.max_tokens_per_call = 512;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto plan = json::parse(R"([{"id": 1, "action": "llm", "parameters": {"prompt": "huge", "max_tokens": 100000}},
                              {"id": 2, "action": "llm", "parameters": {"prompt": "unset"}, "dependencies": [1]},
                              {"id": 3, "action": "llm", "parameters": {"prompt": "small", "max_tokens": 7},
                               "dependencies": [2]}])");
  auto outcome = runtime.run_plan(plan, {}, dir.path());
  INFO(why(outcome));
  CHECK(outcome.exit_code() == 0);
  const auto all = bodies(server);
  REQUIRE(all.size() == 3);
  CHECK(all[0].find("\"max_tokens\":512") != std::string::npos);  // clamped, not refused
  CHECK(all[1].find("\"max_tokens\":512") != std::string::npos);  // no unlimited output by default
  CHECK(all[2].find("\"max_tokens\":7") != std::string::npos);    // a smaller one is kept
  CHECK(all[0].find("100000") == std::string::npos);

  SECTION("the default cap is 4096") {
    server.reset();
    Runtime defaults = dagent::runtime::make_runtime(config_for(server, dir));
    auto again = defaults.run_plan(json::parse(R"([{"id": 1, "action": "llm", "parameters": {"prompt": "x"}}])"), {},
                                   dir.path());
    CHECK(again.exit_code() == 0);
    const auto b = bodies(server);
    REQUIRE(b.size() == 1);
    CHECK(b[0].find("\"max_tokens\":4096") != std::string::npos);
  }
}
