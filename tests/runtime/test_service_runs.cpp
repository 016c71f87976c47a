// A service's side of the Runtime: run_loop() drives the one loop, runtime::run_task_async runs go
// concurrently on it, RunCancel interrupts one, stop_loop() waits for the runs underway.

#include <catch2/catch.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/json.hpp>

#include "config/config.hpp"
#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"
#include "support/test_server_process.hpp"
#include "support/test_tools.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using dagent::RunCancel;
using dagent::RunOptions;
using dagent::RunOutcome;
using dagent::Runtime;
using dagent::StepEvent;
using dagent::StepStatus;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

constexpr const char* k_chat = "/v1/chat/completions";

dagent::config::Config config_for(const TestServer& server, const TempDir& dir) {
  dagent::config::Config cfg;
  cfg.llm.base_url = server.base_url();
  cfg.base_dir = dir.path();
  cfg.tools.workspace = "ws";
  cfg.history.enabled = false;
  dir.write("ws/notes.txt", "the workspace exists");
  return cfg;
}

// "alpha-run" answers A and "beta-run" B, each reply held until the other call has arrived: run
// one after the other, the first would wait out the server's hold limit and fail.
json::array replies_held_for_each_other() {
  return {json::object{{"path", k_chat}, {"contains", "alpha-run"}, {"reply", "A"},
                       {"hold_until", json::object{{"contains", "beta-run"}}}},
          json::object{{"path", k_chat}, {"contains", "beta-run"}, {"reply", "B"},
                       {"hold_until", json::object{{"contains", "alpha-run"}}}}};
}

// A fixed plan of one llm step whose prompt is `prompt`.
dagent::config::Task llm_task(std::string name, std::string prompt) {
  dagent::config::Task task;
  task.name = std::move(name);
  task.plan = json::array{json::object{{"id", 1}, {"action", "llm"}, {"parameters", json::object{{"prompt", prompt}}}}};
  return task;
}

struct Submitted {
  Runtime* runtime;
  dagent::config::Task task;
  RunOptions options;
  std::optional<dagent::runtime::Outcome> outcome;
};

asio::awaitable<void> submit(Submitted* s) {
  s->outcome = co_await dagent::runtime::run_task_async(*s->runtime, s->task, s->options);
}

struct Ignore {
  void operator()(std::exception_ptr e) const {
    if (e) std::rethrow_exception(e);
  }
};

// Starts each run on the loop, asks the loop to stop once they are done, and drives it.
std::vector<std::string> run_all(Runtime& runtime, std::vector<std::unique_ptr<Submitted>>& runs) {
  for (auto& s : runs) asio::co_spawn(runtime.executor(), submit(s.get()), Ignore{});
  runtime.stop_loop();  // queued after the runs' starts: it waits for them
  return runtime.run_loop();
}

}  // namespace

TEST_CASE("run_task_async runs go at once on the runtime's one loop", "[runtime][service]") {
  // Each reply is held until the other run's call has arrived: run one after the other, the first
  // would wait out the server's hold limit and the server would never see two calls at once.
  TestServer server(TestServerOptions{.script = json::object{{"rules", replies_held_for_each_other()}}});
  TempDir dir;
  Runtime runtime = dagent::runtime::make_runtime(config_for(server, dir));
  std::vector<std::unique_ptr<Submitted>> runs;
  runs.push_back(std::make_unique<Submitted>(Submitted{&runtime, llm_task("a", "alpha-run"), {}, {}}));
  runs.push_back(std::make_unique<Submitted>(Submitted{&runtime, llm_task("b", "beta-run"), {}, {}}));
  REQUIRE(run_all(runtime, runs).empty());
  for (const auto& s : runs) {
    REQUIRE(s->outcome);
    INFO(s->task.name << ": " << s->outcome->result.error << (s->outcome->problems.empty() ? "" : s->outcome->problems[0]));
    CHECK(s->outcome->exit_code() == 0);
    REQUIRE(s->outcome->result.steps.size() == 1);
  }
  CHECK(runs[0]->outcome->result.steps[0].output.at("text") == "A");
  CHECK(runs[1]->outcome->result.steps[0].output.at("text") == "B");
  CHECK(runs[0]->outcome->result.run_id != runs[1]->outcome->result.run_id);
  // Each run's metrics are its own calls, though both went through one client at once.
  for (const auto& s : runs) {
    CHECK(s->outcome->result.metrics.llm_calls == 1);
    CHECK(s->outcome->result.metrics.connections_opened == 1);
    CHECK(s->outcome->result.metrics.prompt_tokens > 0);
  }
  CHECK(server.stats().at("max_concurrent_requests").to_number<int>() == 2);
  // The runs shared the runtime's pool: two connections, both opened once.
  CHECK(server.stats().at("connections_accepted").to_number<int>() == 2);

  SECTION("the loop can be driven again for more runs") {
    server.reset();
    std::vector<std::unique_ptr<Submitted>> more;
    more.push_back(std::make_unique<Submitted>(Submitted{&runtime, llm_task("c", "gamma-run"), {}, {}}));
    REQUIRE(run_all(runtime, more).empty());
    REQUIRE(more[0]->outcome);
    CHECK(more[0]->outcome->exit_code() == 0);
  }
}

namespace {

// Cancels a run when a step reaches `status` (in this observer's run, which may be another).
struct CancelOn {
  std::shared_ptr<RunCancel> cancel;
  StepStatus status;
  void operator()(const StepEvent& e) const {
    if (e.status == status) cancel->cancel();
  }
};

int requests_containing(const TestServer& server, std::string_view needle) {
  int n = 0;
  const auto stats = server.stats();
  for (const auto& r : stats.at("recent").as_array()) n += r.at("body").as_string().find(needle) != std::string::npos;
  return n;
}

}  // namespace

TEST_CASE("RunCancel interrupts a service's run as Ctrl-C does and only that run", "[runtime][service]") {
  // The other run's reply waits until the stalled call has reached the server: when the other
  // run's step succeeds, the stalled call is in flight, and the other run cancels it.
  json::array rules{json::object{{"path", k_chat}, {"contains", "stalled-run"}, {"fault", "stall"}},
                    json::object{{"path", k_chat}, {"contains", "other-run"}, {"reply", "fine"},
                                 {"hold_until", json::object{{"contains", "stalled-run"}}}}};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  Runtime runtime = dagent::runtime::make_runtime(config_for(server, dir));
  auto cancel = std::make_shared<RunCancel>();
  RunOptions cancelled;
  cancelled.cancel = cancel;
  RunOptions other;
  other.on_event = CancelOn{cancel, StepStatus::succeeded};
  std::vector<std::unique_ptr<Submitted>> runs;
  runs.push_back(std::make_unique<Submitted>(Submitted{&runtime, llm_task("stalled", "stalled-run"), cancelled, {}}));
  runs.push_back(std::make_unique<Submitted>(Submitted{&runtime, llm_task("other", "other-run"), other, {}}));
  REQUIRE(run_all(runtime, runs).empty());
  const auto& stopped = *runs[0]->outcome;
  CHECK(stopped.exit_code() == 1);
  CHECK(stopped.result.interrupted);
  CHECK(stopped.result.error.find("interrupted") != std::string::npos);
  REQUIRE(stopped.result.steps.size() == 1);
  CHECK(stopped.result.steps[0].error.find("cancelled") != std::string::npos);
  CHECK(runs[1]->outcome->exit_code() == 0);
  CHECK(requests_containing(server, "stalled-run") == 1);

  SECTION("cancelled by an observer of its step's start: the call is never made") {
    server.reset();
    server.set_script(json::object{{"rules", rules}});
    auto at_start = std::make_shared<RunCancel>();
    RunOptions options;
    options.cancel = at_start;
    options.on_event = CancelOn{at_start, StepStatus::running};
    std::vector<std::unique_ptr<Submitted>> one;
    one.push_back(std::make_unique<Submitted>(Submitted{&runtime, llm_task("starting", "stalled-run"), options, {}}));
    REQUIRE(run_all(runtime, one).empty());
    CHECK(one[0]->outcome->exit_code() == 1);
    CHECK(one[0]->outcome->result.interrupted);
    CHECK(server.requests_to(k_chat) == 0);
  }
  SECTION("a run cancelled before it starts calls nothing") {
    server.reset();
    server.set_script(json::object{{"rules", rules}});
    auto before = std::make_shared<RunCancel>();
    before->cancel();
    RunOptions options;
    options.cancel = before;
    std::vector<std::unique_ptr<Submitted>> early;
    early.push_back(std::make_unique<Submitted>(Submitted{&runtime, llm_task("early", "other-run"), options, {}}));
    REQUIRE(run_all(runtime, early).empty());
    CHECK(early[0]->outcome->exit_code() == 1);
    CHECK(early[0]->outcome->result.interrupted);
    CHECK(server.requests_to(k_chat) == 0);
  }
}

TEST_CASE("run_task_async outside run_loop or with a blocking call's options is refused with a reason",
          "[runtime][service]") {
  TempDir dir;
  dir.write("ws/a.txt", "alpha");
  dagent::config::Config cfg;
  cfg.base_dir = dir.path();
  cfg.tools.workspace = "ws";
  cfg.history.enabled = false;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  Submitted outside{&runtime, llm_task("x", "never"), {}, {}};
  asio::co_spawn(runtime.executor(), submit(&outside), Ignore{});
  // A blocking call drives the loop, and with it the run started beside it: not a service's loop.
  const json::value plan = json::array{json::object{{"id", 1}, {"action", "list_dir"}, {"parameters", json::object{{"path", "."}}}}};
  CHECK(runtime.run_plan(plan, {}, dir.path() / "ws").exit_code() == 0);
  REQUIRE(outside.outcome);
  REQUIRE(outside.outcome->problems.size() == 1);
  CHECK(outside.outcome->problems[0] == "run_task_async: the runtime's loop is not running (run_loop)");
  CHECK(outside.outcome->exit_code() == 2);

  RunOptions options;
  options.stop_on_sigint = true;
  std::vector<std::unique_ptr<Submitted>> runs;
  runs.push_back(std::make_unique<Submitted>(Submitted{&runtime, llm_task("y", "never"), options, {}}));
  REQUIRE(run_all(runtime, runs).empty());
  REQUIRE(runs[0]->outcome);
  REQUIRE(runs[0]->outcome->problems.size() == 1);
  CHECK(runs[0]->outcome->problems[0] == "run_task_async: stop_on_sigint is for the blocking calls");
}

TEST_CASE("concurrent runs each spend their own llm.retry_budget", "[runtime][service]") {
  // One retry per run (ratio 0, minimum 1). A always fails: it retries once and is then refused.
  // B fails once: its retry comes from its own budget, whichever run spent first. With one budget
  // for both, one of them would be refused its first retry.
  json::array rules{json::object{{"path", k_chat}, {"contains", "alpha-run"}, {"status", 500}},
                    json::object{{"path", k_chat}, {"contains", "beta-run"}, {"nth", 1}, {"status", 500}},
                    json::object{{"path", k_chat}, {"contains", "beta-run"}, {"reply", "B"}}};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  auto cfg = config_for(server, dir);
  cfg.llm.retry_budget = 0;
  cfg.llm.retry_budget_min = 1;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  std::vector<std::unique_ptr<Submitted>> runs;
  runs.push_back(std::make_unique<Submitted>(Submitted{&runtime, llm_task("a", "alpha-run"), {}, {}}));
  runs.push_back(std::make_unique<Submitted>(Submitted{&runtime, llm_task("b", "beta-run"), {}, {}}));
  REQUIRE(run_all(runtime, runs).empty());
  const auto& a = runs[0]->outcome->result;
  const auto& b = runs[1]->outcome->result;
  INFO(a.error << " | " << b.error);
  REQUIRE(a.steps.size() == 1);
  CHECK(a.steps[0].error.find("(not retried: retry budget exhausted)") != std::string::npos);
  CHECK(a.metrics.retries_refused >= 1);
  CHECK(runs[1]->outcome->exit_code() == 0);
  CHECK(b.metrics.retries == 1);
  CHECK(b.metrics.retries_refused == 0);
}

namespace {

// The public API's side: a plan and a task file started with run_plan_async / run_task_async.
struct PublicRuns {
  Runtime* runtime;
  std::filesystem::path workspace;
  std::string task_file;
  RunOptions options;
  std::optional<RunOutcome> plan_outcome;
  std::optional<RunOutcome> task_outcome;
  std::optional<RunOutcome> missing_outcome;
};

asio::awaitable<void> submit_plan(PublicRuns* r) {
  json::value plan = json::array{json::object{{"id", 1}, {"action", "llm"}, {"parameters", json::object{{"prompt", "alpha-run"}}}}};
  r->plan_outcome = co_await r->runtime->run_plan_async(std::move(plan), {}, r->workspace, r->options, "public-plan");
}

asio::awaitable<void> submit_task(PublicRuns* r) {
  r->task_outcome = co_await r->runtime->run_task_async(r->task_file, r->options);
  r->missing_outcome = co_await r->runtime->run_task_async("no-such-task", r->options);
}

}  // namespace

TEST_CASE("run_plan_async and run_task_async of the public API go at once on the loop", "[runtime][service]") {
  TestServer server(TestServerOptions{.script = json::object{{"rules", replies_held_for_each_other()}}});
  TempDir dir;
  Runtime runtime = dagent::runtime::make_runtime(config_for(server, dir));
  dir.write("task.yaml",
            "name: public-task\nplan:\n  - id: 1\n    action: llm\n    parameters: {prompt: beta-run}\n");
  PublicRuns runs{&runtime, dir.path() / "ws", (dir.path() / "task.yaml").string(), {}, {}, {}, {}};
  asio::co_spawn(runtime.executor(), submit_plan(&runs), Ignore{});
  asio::co_spawn(runtime.executor(), submit_task(&runs), Ignore{});
  runtime.stop_loop();
  REQUIRE(runtime.run_loop().empty());
  REQUIRE(runs.plan_outcome);
  REQUIRE(runs.task_outcome);
  CHECK(runs.plan_outcome->exit_code() == 0);
  CHECK(runs.task_outcome->exit_code() == 0);
  CHECK(runs.plan_outcome->result.task == "public-plan");
  CHECK(runs.task_outcome->result.task == "public-task");
  REQUIRE(runs.plan_outcome->result.steps.size() == 1);
  REQUIRE(runs.task_outcome->result.steps.size() == 1);
  CHECK(runs.plan_outcome->result.steps[0].output.at("text") == "A");
  CHECK(runs.task_outcome->result.steps[0].output.at("text") == "B");
  CHECK(server.stats().at("max_concurrent_requests").to_number<int>() == 2);
  // A task that does not exist is a problem, as for run_task; nothing ran.
  REQUIRE(runs.missing_outcome);
  CHECK(runs.missing_outcome->exit_code() == 2);
  REQUIRE_FALSE(runs.missing_outcome->problems.empty());
  CHECK(runs.missing_outcome->problems[0].find("no-such-task") != std::string::npos);

  SECTION("outside run_loop run_plan_async is refused with a reason") {
    PublicRuns outside{&runtime, dir.path() / "ws", "", {}, {}, {}, {}};
    asio::co_spawn(runtime.executor(), submit_plan(&outside), Ignore{});
    const json::value plan = json::array{json::object{{"id", 1}, {"action", "list_dir"}, {"parameters", json::object{{"path", "."}}}}};
    CHECK(runtime.run_plan(plan, {}, dir.path() / "ws").exit_code() == 0);  // drives the loop
    REQUIRE(outside.plan_outcome);
    REQUIRE(outside.plan_outcome->problems.size() == 1);
    CHECK(outside.plan_outcome->problems[0] == "run_plan_async: the runtime's loop is not running (run_loop)");
  }
}
