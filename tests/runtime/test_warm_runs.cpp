// performance.connection_pooling.warm_connections: a goal run opens the connections its widest
// level of model calls needs while it plans. Against the test server over TLS with a connection
// setup delay; what is checked is the order the server saw (which connection each request came
// on, when that connection was accepted), never a duration.

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
using dagent::test::k_intent;
using dagent::test::k_plan;
using dagent::test::rule;
using dagent::Runtime;
using dagent::test::HandshakeFault;
using dagent::test::ServerCert;
using dagent::test::TempDir;
using dagent::test::TestCerts;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

constexpr const char* k_step = "warm-step-";

// One level of three llm steps, then a step that joins them.
const char* k_wide_plan = R"({"steps": [
  {"id": 1, "action": "llm", "parameters": {"prompt": "warm-step-1"}},
  {"id": 2, "action": "llm", "parameters": {"prompt": "warm-step-2"}},
  {"id": 3, "action": "llm", "parameters": {"prompt": "warm-step-3"}},
  {"id": 4, "action": "write_file", "parameters": {"path": "out.txt", "content": "$step1.text $step2.text $step3.text"}}]})";

TestServerOptions wide_plan_server() {
  TestServerOptions o;
  o.cert = ServerCert::valid;
  o.connect_delay_ms = 100;
  o.script = json::object{{"rules", json::array{rule(k_intent, R"({"intent": "three questions", "tools": ["llm", "write_file"]})"),
                                                rule(k_plan, k_wide_plan), rule(k_answer, "three answers written")}}};
  return o;
}

dagent::config::Config config_for(const TestServer& server, const TempDir& dir) {
  dir.write("ws/.keep", "");
  dagent::config::Config cfg;
  cfg.llm.base_url = server.base_url();
  cfg.llm.ca_file = TestCerts::get().ca().string();
  cfg.base_dir = dir.path();
  cfg.tools.workspace = "ws";
  cfg.memory.enabled = false;  // no recall: every request is the run's chat calls
  // The whole plan: "the plan reply was sent" is then the moment before any step could start.
  cfg.planner.stream_plan = false;
  cfg.tasks["goal"] = dagent::config::Task{.name = "goal", .goal = "Ask three questions and write the answers"};
  return cfg;
}

// What the server logged of one run.
struct Seen {
  double plan_sent_ms = -1;                 // when the plan reply went out
  std::vector<double> step_connections_ms;  // when each llm step's connection was accepted
  std::int64_t accepted = 0;
};

Seen seen_by(const TestServer& server) {
  Seen out;
  const auto stats = server.stats();  // named: the loop below points into it
  out.accepted = stats.at("connections_accepted").to_number<std::int64_t>();
  for (const auto& r : stats.at("recent").as_array()) {
    const std::string_view body = r.at("body").as_string();
    if (body.find(k_plan) != std::string_view::npos) {
      out.plan_sent_ms = r.at("completion_ms").to_number<double>();
    } else if (body.find(k_step) != std::string_view::npos && body.find(k_answer) == std::string_view::npos &&
               body.find(k_intent) == std::string_view::npos) {
      out.step_connections_ms.push_back(r.at("connection_accepted_ms").to_number<double>());
    }
  }
  return out;
}

dagent::RunOutcome run_goal(const dagent::config::Config& cfg) {
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto outcome = runtime.run_task("goal");
  INFO((outcome.problems.empty() ? outcome.result.error : outcome.problems.front()));
  REQUIRE(outcome.exit_code() == 0);
  REQUIRE(outcome.result.levels.size() == 2);
  CHECK(outcome.result.levels[0] == std::vector<int>{1, 2, 3});
  return outcome;
}

}  // namespace

TEST_CASE("a goal run opens the connections of its widest level while it plans", "[runtime][warm]") {
  TestServer server(wide_plan_server());
  TempDir dir;
  const auto cfg = config_for(server, dir);
  REQUIRE(cfg.performance.connection_pooling.warm_connections);  // the default
  run_goal(cfg);
  const Seen seen = seen_by(server);
  REQUIRE(seen.plan_sent_ms > 0);
  REQUIRE(seen.step_connections_ms.size() == 3);
  // Every llm step ran on a connection the server had accepted before it sent the plan.
  for (double accepted : seen.step_connections_ms) CHECK(accepted < seen.plan_sent_ms);
}

TEST_CASE("warm_connections false opens the widening level's connections after the plan", "[runtime][warm]") {
  TestServer server(wide_plan_server());
  TempDir dir;
  auto cfg = config_for(server, dir);
  cfg.performance.connection_pooling.warm_connections = false;
  run_goal(cfg);
  const Seen seen = seen_by(server);
  REQUIRE(seen.step_connections_ms.size() == 3);
  // The planning calls had at most two connections: the third step's came after the plan.
  int after_plan = 0;
  for (double accepted : seen.step_connections_ms) after_plan += accepted > seen.plan_sent_ms;
  CHECK(after_plan >= 1);
}

TEST_CASE("warm-up is bounded by max_connections in a goal run", "[runtime][warm]") {
  TestServer server(wide_plan_server());
  TempDir dir;
  auto cfg = config_for(server, dir);
  cfg.performance.connection_pooling.max_connections = 2;
  run_goal(cfg);
  CHECK(seen_by(server).accepted <= 2);
}

TEST_CASE("warm-up handshakes that fail do not fail the run", "[runtime][warm]") {
  TestServerOptions options = wide_plan_server();
  options.handshake_fault = HandshakeFault::reset;
  options.handshake_faults = 2;  // fewer than a call's tries: whoever meets them, every call gets through
  TestServer server(options);
  TempDir dir;
  auto cfg = config_for(server, dir);
  cfg.performance.circuit_breaker.enabled = false;
  const auto outcome = run_goal(cfg);
  CHECK(dagent::test::read_text(dir.path() / "ws/out.txt").find("echo: warm-step-3") != std::string::npos);
  CHECK(server.stats().at("tls_handshake_failures").to_number<std::int64_t>() == 2);
  (void)outcome;
}

TEST_CASE("a run that ends while its warm-up connects are under way cancels them", "[runtime][warm]") {
  TestServerOptions options;
  options.cert = ServerCert::valid;
  options.handshake_fault = HandshakeFault::stall;
  options.handshake_faults = 3;  // the warm-up's TLS connections, if they get that far
  TestServer server(options);
  TempDir dir;
  auto cfg = config_for(server, dir);
  // Only cancellation can end a stalled connect here: if the run's end waited for the warm-up,
  // this test would hang.
  cfg.llm.connect_timeout_ms = 600000;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  // Step 1 fails at once (no such file): its three llm dependents never run, and the run ends.
  auto outcome = runtime.run_plan(json::parse(R"([
    {"id": 1, "action": "read_file", "parameters": {"path": "missing.txt"}},
    {"id": 2, "action": "llm", "parameters": {"prompt": "a $step1.content"}},
    {"id": 3, "action": "llm", "parameters": {"prompt": "b $step1.content"}},
    {"id": 4, "action": "llm", "parameters": {"prompt": "c $step1.content"}}])"),
                                  {}, dir.path() / "ws");
  REQUIRE(outcome.problems.empty());
  CHECK(outcome.result.status == dagent::RunStatus::failed);
  CHECK(outcome.result.metrics.llm_calls == 0);
  // No control request follows: the stalls the cancelled connects never reached would meet it.
}

namespace {

// A plan whose one llm step is judged in the background and whose result goes to memory: as the
// step ends, its judge and the embedding request both want a connection.
struct JudgedPlanRun {
  double step_reply_sent_ms = -1;            // when the llm step's reply went out
  std::vector<double> later_connections_ms;  // when the judge's and the embedding's connections were accepted
  std::int64_t accepted = 0;
};

JudgedPlanRun run_judged_plan(bool warm) {
  TestServerOptions options;
  options.cert = ServerCert::valid;
  options.connect_delay_ms = 100;
  auto judge = rule("check a step's result", R"({"passed": true, "reason": "fine"})");
  judge["latency_ms"] = 300;  // still judging when the embedding request goes out
  options.script = json::object{{"rules", json::array{judge}}};
  TestServer server(options);
  TempDir dir;
  auto cfg = config_for(server, dir);
  cfg.memory.enabled = true;
  cfg.memory.path = "mem";
  cfg.performance.connection_pooling.warm_connections = warm;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto outcome = runtime.run_plan(json::parse(R"([
    {"id": 1, "action": "llm", "parameters": {"prompt": "warm-judged-step"}, "verify": "names a colour"},
    {"id": 2, "action": "memory_add", "parameters": {"text": "$step1.text"}}])"),
                                  {}, dir.path() / "ws");
  INFO((outcome.problems.empty() ? outcome.result.error : outcome.problems.front()));
  REQUIRE(outcome.exit_code() == 0);
  JudgedPlanRun out;
  const auto stats = server.stats();
  out.accepted = stats.at("connections_accepted").to_number<std::int64_t>();
  for (const auto& r : stats.at("recent").as_array()) {
    const std::string_view body = r.at("body").as_string();
    const bool judge = body.find("check a step's result") != std::string_view::npos;
    if (!judge && body.find("warm-judged-step") != std::string_view::npos && r.at("path").as_string() == "/v1/chat/completions")
      out.step_reply_sent_ms = r.at("completion_ms").to_number<double>();
    else
      out.later_connections_ms.push_back(r.at("connection_accepted_ms").to_number<double>());
  }
  return out;
}

}  // namespace

TEST_CASE("a plan's warm-up counts its background judge and its embedding request", "[runtime][warm]") {
  const JudgedPlanRun warm = run_judged_plan(true);
  REQUIRE(warm.step_reply_sent_ms > 0);
  REQUIRE(warm.later_connections_ms.size() == 2);  // the judge and the embedding
  // As the step ends, its judge (on the connection the step gave back) and the embedding request
  // run at once: two connections, both opened before the step ended, so neither follower waited
  // for a handshake.
  CHECK(warm.accepted == 2);
  for (double accepted : warm.later_connections_ms) CHECK(accepted < warm.step_reply_sent_ms);

  const JudgedPlanRun cold = run_judged_plan(false);
  REQUIRE(cold.later_connections_ms.size() == 2);
  int after_step = 0;
  for (double accepted : cold.later_connections_ms) after_step += accepted > cold.step_reply_sent_ms;
  CHECK(after_step >= 1);
}

namespace {

// A goal whose plan is three judged llm steps, then a memory_add of each: the memory level has
// three judges and up to three embedding requests in flight, more than the llm slots the goal's
// warm-up started with, so the warm-up is topped up once the plan is known.
struct TopUpRun {
  double first_step_reply_ms = -1;            // when the first llm step's reply went out
  std::vector<double> embedding_connections_ms;  // when each embedding request's connection was accepted
};

TopUpRun run_top_up(bool warm) {
  auto latency = [](json::object r) {
    r["latency_ms"] = 300;
    return r;
  };
  TestServerOptions options;
  options.cert = ServerCert::valid;
  options.connect_delay_ms = 100;
  // First match wins: the answer and judge requests quote the steps' outputs.
  options.script = json::object{{"rules", json::array{
      rule(k_intent, R"({"intent": "three questions", "tools": ["llm", "memory_add"]})"),
      rule(k_plan, R"({"steps": [
    {"id": 1, "action": "llm", "parameters": {"prompt": "warm-step-1"}, "verify": "answers it"},
    {"id": 2, "action": "llm", "parameters": {"prompt": "warm-step-2"}, "verify": "answers it"},
    {"id": 3, "action": "llm", "parameters": {"prompt": "warm-step-3"}, "verify": "answers it"},
    {"id": 4, "action": "memory_add", "parameters": {"text": "$step1.text"}},
    {"id": 5, "action": "memory_add", "parameters": {"text": "$step2.text"}},
    {"id": 6, "action": "memory_add", "parameters": {"text": "$step3.text"}}]})"),
      rule(k_answer, "three answers kept"),
      latency(rule("check a step's result", R"({"passed": true, "reason": "fine"})")),
      latency(json::object{{"path", "/v1/chat/completions"}, {"contains", k_step}})}}};
  TestServer server(options);
  TempDir dir;
  auto cfg = config_for(server, dir);
  cfg.memory.enabled = true;
  cfg.memory.path = "mem";
  cfg.performance.connection_pooling.warm_connections = warm;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto outcome = runtime.run_task("goal");
  INFO((outcome.problems.empty() ? outcome.result.error : outcome.problems.front()));
  REQUIRE(outcome.exit_code() == 0);
  TopUpRun out;
  const auto stats = server.stats();
  for (const auto& r : stats.at("recent").as_array()) {
    const std::string_view body = r.at("body").as_string();
    if (r.at("path").as_string() == "/v1/embeddings") {
      out.embedding_connections_ms.push_back(r.at("connection_accepted_ms").to_number<double>());
    } else if (body.find(k_step) != std::string_view::npos && body.find("check a step's result") == std::string_view::npos &&
               body.find(k_answer) == std::string_view::npos && body.find(k_plan) == std::string_view::npos) {
      const double sent = r.at("completion_ms").to_number<double>();
      if (out.first_step_reply_ms < 0 || sent < out.first_step_reply_ms) out.first_step_reply_ms = sent;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("a goal's warm-up is topped up to what its plan needs once the plan is known", "[runtime][warm]") {
  const TopUpRun warm = run_top_up(true);
  REQUIRE(warm.first_step_reply_ms > 0);
  REQUIRE(!warm.embedding_connections_ms.empty());
  // The memory level's embedding requests ran on connections opened while the llm steps ran.
  for (double accepted : warm.embedding_connections_ms) CHECK(accepted < warm.first_step_reply_ms);

  const TopUpRun cold = run_top_up(false);
  REQUIRE(!cold.embedding_connections_ms.empty());
  int after = 0;
  for (double accepted : cold.embedding_connections_ms) after += accepted > cold.first_step_reply_ms;
  CHECK(after >= 1);
}
