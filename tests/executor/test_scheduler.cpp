#include "executor/scheduler.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <filesystem>
#include <map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/parse.hpp>

#include "dagent/workspace.hpp"
#include "support/test_tools.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent;
using namespace dagent::executor;

struct ReportSink {
  ExecutionReport* out;
  void operator()(std::exception_ptr e, ExecutionReport r) const {
    if (e) std::rethrow_exception(e);
    *out = std::move(r);
  }
};

// Runs one plan through the real scheduler on a loop of its own, with a real worker pool and a
// temporary workspace.
struct Harness {
  test::TestTools tools;
  std::filesystem::path dir;
  asio::thread_pool pool{4};
  json::object inputs;
  std::function<void(const executor::StepEvent&, Scheduler&, asio::io_context&)> on_event;

  Harness() {
    dir = std::filesystem::temp_directory_path() /
          ("dagent-sched-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    std::filesystem::create_directories(dir);
  }
  ~Harness() {
    pool.join();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  static int& counter() {
    static int n = 0;
    return n;
  }

  ExecutionReport run(std::string_view plan_text, SchedulerOptions options, AnalysisOptions analysis_options = {}) {
    auto value = parse_json_text(plan_text);
    REQUIRE(value.has_value());
    auto parsed = parse_plan(*value);
    REQUIRE(parsed.problems.empty());
    analysis_options.max_steps = 100000;
    auto analysis = analyze(parsed.plan, tools.registry, analysis_options);
    for (const auto& p : analysis.problems) FAIL(p.to_string());
    auto ws = Workspace::open(dir);
    REQUIRE(ws.has_value());
    ToolContext base;
    base.workspace = &*ws;
    base.worker = pool.get_executor();
    RuleVerifier verifier;
    asio::io_context io;
    Scheduler scheduler(parsed.plan, analysis, options, base, inputs, verifier);
    if (on_event) {
      scheduler.on_event([&](const executor::StepEvent& ev) { on_event(ev, scheduler, io); });
    }
    ExecutionReport report;
    asio::co_spawn(io, scheduler.run(), ReportSink{&report});
    io.run();
    return report;
  }
};

const executor::StepResult& step(const ExecutionReport& r, int id) {
  for (const auto& s : r.steps)
    if (s.id == id) return s;
  FAIL("no step " << id);
  return r.steps.front();
}

double makespan(const ExecutionReport& r) {
  double m = 0;
  for (const auto& s : r.steps) m = std::max(m, s.finished_ms);
  return m;
}

SchedulerOptions opts(int parallel = 5) {
  SchedulerOptions o;
  o.max_parallel_steps = parallel;
  o.step_timeout = std::chrono::milliseconds(10000);
  return o;
}

}  // namespace

TEST_CASE("eager starts a step when its own dependencies finish, levels waits at the barrier", "[executor][scheduler]") {
  // Step 3 needs only step 1 (5 ms); step 2 is slow (60 ms) and shares level 0 with step 1.
  const char* plan = R"([
    {"id": 1, "action": "sleep", "parameters": {"ms": 5}},
    {"id": 2, "action": "sleep", "parameters": {"ms": 60}},
    {"id": 3, "action": "sleep", "parameters": {"ms": 30}, "dependencies": [1]}
  ])";
  Harness h;
  auto eager = h.run(plan, opts());
  auto o = opts();
  o.scheduling = dagent::config::Scheduling::levels;
  auto levels = h.run(plan, o);

  for (const auto* r : {&eager, &levels})
    for (const auto& s : r->steps) REQUIRE(s.status == StepStatus::succeeded);
  CHECK(step(eager, 3).started_ms < step(eager, 2).finished_ms);
  CHECK(step(levels, 3).started_ms >= step(levels, 2).finished_ms);
  CHECK(makespan(eager) < makespan(levels));
}

TEST_CASE("max_parallel_steps bounds the steps running at once", "[executor][scheduler]") {
  std::string plan = "[";
  for (int i = 1; i <= 12; ++i) plan += std::string(i > 1 ? "," : "") + R"({"id":)" + std::to_string(i) + R"(,"action":"sleep","parameters":{"ms":10}})";
  plan += "]";
  Harness h;
  int running = 0, peak = 0;
  h.on_event = [&](const executor::StepEvent& ev, Scheduler&, asio::io_context&) {
    if (ev.status == StepStatus::running) peak = std::max(peak, ++running);
    if (ev.status == StepStatus::succeeded) --running;
  };
  auto r = h.run(plan, opts(3));
  CHECK(peak == 3);
  CHECK(r.max_concurrent == 3);
  for (const auto& s : r.steps) {
    CHECK(s.status == StepStatus::succeeded);
    CHECK(s.slot >= 0);
    CHECK(s.slot < 3);
  }
}

TEST_CASE("parallel_execution disabled runs one step at a time in dependency order", "[executor][scheduler]") {
  const char* plan = R"([
    {"id": 1, "action": "sleep", "parameters": {"ms": 5}},
    {"id": 2, "action": "sleep", "parameters": {"ms": 5}, "dependencies": [3]},
    {"id": 3, "action": "sleep", "parameters": {"ms": 5}},
    {"id": 4, "action": "echo", "parameters": {"after": "$step2.slept"}}
  ])";
  Harness h;
  auto o = opts(8);
  o.parallel = false;
  auto r = h.run(plan, o);
  CHECK(r.max_concurrent == 1);
  std::vector<const executor::StepResult*> by_start;
  for (const auto& s : r.steps) by_start.push_back(&s);
  std::sort(by_start.begin(), by_start.end(), [](auto* a, auto* b) { return a->started_ms < b->started_ms; });
  for (std::size_t i = 1; i < by_start.size(); ++i) CHECK(by_start[i]->started_ms >= by_start[i - 1]->finished_ms);
  CHECK(step(r, 2).started_ms >= step(r, 3).finished_ms);
  CHECK(step(r, 4).output.at("after") == 5);
}

TEST_CASE("LLM-bound steps are limited by max_parallel_llm_calls, others are not", "[executor][scheduler]") {
  std::string plan = "[";
  for (int i = 1; i <= 12; ++i)
    plan += std::string(i > 1 ? "," : "") + R"({"id":)" + std::to_string(i) + R"(,"action":")" +
            (i % 2 ? "slow_llm" : "sleep") + R"(","parameters":{"ms":15}})";
  plan += "]";
  Harness h;
  int llm = 0, llm_peak = 0;
  h.on_event = [&](const executor::StepEvent& ev, Scheduler&, asio::io_context&) {
    if (ev.action != "slow_llm") return;
    if (ev.status == StepStatus::running) llm_peak = std::max(llm_peak, ++llm);
    if (ev.status == StepStatus::succeeded) --llm;
  };
  auto o = opts(10);
  o.max_parallel_llm_calls = 2;
  auto r = h.run(plan, o);
  CHECK(llm_peak == 2);
  CHECK(r.max_concurrent > 2);
}

TEST_CASE("a failed step skips its dependents while independent branches finish", "[executor][scheduler]") {
  const char* plan = R"([
    {"id": 1, "action": "fail", "parameters": {"message": "disk on fire"}},
    {"id": 2, "action": "echo", "parameters": {"x": "$step1.x"}},
    {"id": 3, "action": "echo", "parameters": {}, "dependencies": [2]},
    {"id": 4, "action": "sleep", "parameters": {"ms": 20}},
    {"id": 5, "action": "echo", "parameters": {"y": "$step4.slept"}}
  ])";
  Harness h;
  auto r = h.run(plan, opts());
  CHECK(step(r, 1).status == StepStatus::failed);
  CHECK(step(r, 1).error == "disk on fire");
  CHECK(step(r, 2).status == StepStatus::skipped);
  CHECK(step(r, 2).error == "dependency step 1 failed");
  CHECK(step(r, 3).status == StepStatus::skipped);
  CHECK(step(r, 3).error == "dependency step 2 was skipped (step 1 failed)");
  CHECK(step(r, 4).status == StepStatus::succeeded);
  CHECK(step(r, 5).status == StepStatus::succeeded);
  CHECK(step(r, 5).output.at("y") == 20);
  CHECK(step(r, 2).attempts == 0);
}

TEST_CASE("references resolve to typed values and text at run time", "[executor][scheduler]") {
  const char* plan = R"([
    {"id": 1, "action": "echo", "parameters": {"n": 5, "obj": {"a": [1, 2]}, "s": "hi"}},
    {"id": 2, "action": "echo", "parameters": {"x": "$step1.n", "t": "n=$step1.n s=$step1.s", "y": "$step1.obj.a[1]",
                                                  "all": "$step1.obj", "nested": ["$step1.s", {"k": "$$$step1.n"}],
                                                  "in": "$input.who"}},
    {"id": 3, "action": "echo", "parameters": {"z": "$step1.nope"}},
    {"id": 4, "action": "echo", "parameters": {}, "dependencies": [3]}
  ])";
  Harness h;
  h.inputs = json::object{{"who", "engineers"}};
  auto r = h.run(plan, opts());
  const auto& out = step(r, 2).output.as_object();
  CHECK(out.at("x") == 5);
  CHECK(out.at("t") == "n=5 s=hi");
  CHECK(out.at("y") == 2);
  CHECK(out.at("all") == json::parse(R"({"a": [1, 2]})"));
  CHECK(out.at("nested") == json::parse(R"(["hi", {"k": "$5"}])"));
  CHECK(out.at("in") == "engineers");
  CHECK(step(r, 3).status == StepStatus::failed);
  CHECK_THAT(step(r, 3).error, Catch::Contains("$step1.nope") && Catch::Contains("no field 'nope'"));
  CHECK(step(r, 4).status == StepStatus::skipped);
}

TEST_CASE("without dependency analysis references do not order steps", "[executor][scheduler]") {
  const char* plan = R"([
    {"id": 1, "action": "sleep", "parameters": {"ms": 30}},
    {"id": 2, "action": "echo", "parameters": {"x": "$step1.slept"}},
    {"id": 3, "action": "echo", "parameters": {"x": "$step1.slept"}, "dependencies": [1]}
  ])";
  Harness h;
  AnalysisOptions ao;
  ao.dependency_analysis = false;
  auto r = h.run(plan, opts(), ao);
  CHECK(step(r, 2).status == StepStatus::failed);
  CHECK_THAT(step(r, 2).error, Catch::Contains("step 1 has no output"));
  CHECK(step(r, 3).status == StepStatus::succeeded);
  CHECK(step(r, 3).output.at("x") == 30);
}

TEST_CASE("a step that runs past step_timeout_ms fails with a timeout", "[executor][scheduler]") {
  Harness h;
  auto o = opts();
  o.step_timeout = std::chrono::milliseconds(40);

  SECTION("an async tool is cancelled") {
    auto r = h.run(R"([{"id": 1, "action": "sleep", "parameters": {"ms": 5000}},
                      {"id": 2, "action": "echo", "parameters": {}, "dependencies": [1]}])",
                   o);
    CHECK(step(r, 1).status == StepStatus::failed);
    CHECK(step(r, 1).error == "timed out after 40 ms");
    CHECK(step(r, 1).finished_ms < 2000);
    CHECK(step(r, 2).status == StepStatus::skipped);
  }
  SECTION("a blocking tool's step completes while the worker is still blocked") {
    bool released_after_failure = false;
    h.on_event = [&](const executor::StepEvent& ev, Scheduler&, asio::io_context&) {
      if (ev.step_id == 1 && ev.status == StepStatus::failed) {
        released_after_failure = h.tools.block->started();
        h.tools.block->release();
      }
    };
    auto r = h.run(R"([{"id": 1, "action": "block", "parameters": {}}])", o);
    CHECK(released_after_failure);
    CHECK(step(r, 1).error == "timed out after 40 ms");
  }
}

TEST_CASE("step_retries retries failures that may pass on a second try", "[executor][scheduler]") {
  Harness h;
  auto o = opts();
  SECTION("enough retries") {
    o.step_retries = 2;
    auto r = h.run(R"([{"id": 1, "action": "flaky", "parameters": {"fails": 2}}])", o);
    CHECK(step(r, 1).status == StepStatus::succeeded);
    CHECK(step(r, 1).attempts == 3);
    CHECK(step(r, 1).output.at("calls") == 3);
    CHECK(r.retries == 2);
  }
  SECTION("too few retries") {
    o.step_retries = 1;
    auto r = h.run(R"([{"id": 1, "action": "flaky", "parameters": {"fails": 2}}])", o);
    CHECK(step(r, 1).status == StepStatus::failed);
    CHECK(step(r, 1).attempts == 2);
    CHECK(step(r, 1).error == "flaky failure 2");
  }
  SECTION("invalid parameters are not retried") {
    o.step_retries = 3;
    auto r = h.run(R"([{"id": 1, "action": "read_file", "parameters": {"path": "../outside"}}])", o);
    CHECK(step(r, 1).status == StepStatus::failed);
    CHECK(step(r, 1).attempts == 1);
  }
}

TEST_CASE("interrupting a run cancels running steps and skips the rest", "[executor][scheduler]") {
  const char* plan = R"([
    {"id": 1, "action": "sleep", "parameters": {"ms": 20000}},
    {"id": 2, "action": "echo", "parameters": {}},
    {"id": 3, "action": "echo", "parameters": {}, "dependencies": [1]}
  ])";
  Harness h;
  h.on_event = [](const executor::StepEvent& ev, Scheduler& s, asio::io_context& io) {
    if (ev.step_id == 1 && ev.status == StepStatus::running) asio::post(io, [&s] { s.interrupt(); });
  };
  auto r = h.run(plan, opts());
  CHECK(r.interrupted);
  CHECK(step(r, 1).status == StepStatus::failed);
  CHECK_THAT(step(r, 1).error, Catch::Contains("cancelled"));
  CHECK(step(r, 1).finished_ms < 5000);
  CHECK(step(r, 3).status == StepStatus::skipped);
  CHECK(step(r, 3).error == "the run was interrupted");
}

TEST_CASE("verification runs in the background, and critical steps wait for it", "[executor][scheduler]") {
  Harness h;
  auto o = opts();
  SECTION("a passing and a failing rule on non-critical steps") {
    auto r = h.run(R"([
      {"id": 1, "action": "echo", "parameters": {"text": "hello world"}, "verify": {"contains": "hello"}},
      {"id": 2, "action": "echo", "parameters": {"text": "bye"}, "verify": {"contains": "hello"}},
      {"id": 3, "action": "echo", "parameters": {"x": "$step2.text"}}
    ])",
                   o);
    CHECK(step(r, 1).verification == VerificationStatus::passed);
    CHECK(step(r, 2).status == StepStatus::succeeded);
    CHECK(step(r, 2).verification == VerificationStatus::failed);
    CHECK_THAT(step(r, 2).verification_reason, Catch::Contains("does not contain \"hello\""));
    CHECK(step(r, 3).status == StepStatus::succeeded);  // non-critical: dependents do not wait
  }
  SECTION("a critical step is re-run until its verdict passes") {
    o.max_reruns = 1;
    auto r = h.run(R"([
      {"id": 1, "action": "flaky", "parameters": {"fails": 0}, "critical": true,
       "verify": {"json_schema": {"type": "object", "properties": {"calls": {"type": "integer", "minimum": 2}}}}},
      {"id": 2, "action": "echo", "parameters": {"c": "$step1.calls"}}
    ])",
                   o);
    CHECK(step(r, 1).status == StepStatus::succeeded);
    CHECK(step(r, 1).attempts == 2);
    CHECK(step(r, 1).verification == VerificationStatus::passed);
    CHECK(step(r, 2).output.at("c") == 2);
  }
  SECTION("a critical step fails when re-runs are used up, and its dependents are skipped") {
    o.max_reruns = 0;
    auto r = h.run(R"([
      {"id": 1, "action": "echo", "parameters": {"text": ""}, "critical": true, "verify": {"non_empty": true}},
      {"id": 2, "action": "echo", "parameters": {}, "dependencies": [1]}
    ])",
                   o);
    CHECK(step(r, 1).status == StepStatus::failed);
    CHECK(step(r, 1).error == "verification failed: the output is empty");
    CHECK(step(r, 1).verification == VerificationStatus::failed);
    CHECK(step(r, 2).status == StepStatus::skipped);
  }
  SECTION("background_verification_false_skipped_verification: off moves the verdict to the foreground") {
    o.background_verification = false;
    std::vector<std::string> seen;
    h.on_event = [&seen](const executor::StepEvent& ev, Scheduler&, asio::io_context&) {
      seen.push_back(std::to_string(ev.step_id) + " " + std::string(to_string(ev.status)) + " " +
                     std::string(to_string(ev.verification)));
    };
    auto r = h.run(R"([{"id": 1, "action": "echo", "parameters": {"text": ""}, "verify": {"non_empty": true}},
                       {"id": 2, "action": "echo", "parameters": {"x": "$step1.text"}}])",
                   o);
    CHECK(step(r, 1).status == StepStatus::succeeded);  // non-critical: the verdict fails the run, not the step
    CHECK(step(r, 1).verification == VerificationStatus::failed);
    CHECK_THAT(step(r, 1).verification_reason, Catch::Contains("empty"));
    // Step 1 is done only with its verdict, and step 2 starts after it.
    const auto done = std::find(seen.begin(), seen.end(), "1 succeeded failed");
    const auto next = std::find(seen.begin(), seen.end(), "2 running not_requested");
    REQUIRE(done != seen.end());
    REQUIRE(next != seen.end());
    CHECK(done < next);
  }
  SECTION("a text criterion waits for the LLM judge") {
    auto r = h.run(R"([{"id": 1, "action": "echo", "parameters": {"text": "x"}, "verify": "Is it good?"}])", o);
    CHECK(step(r, 1).verification == VerificationStatus::not_requested);
    CHECK_THAT(step(r, 1).verification_reason, Catch::Contains("LLM judge"));
  }
}

TEST_CASE("step_timeout_overflows_clock: a step timeout at the duration's limit saturates", "[executor][scheduler]") {
  // Before: now() + the timeout, converted to nanoseconds, overflowed (undefined behaviour; UBSan
  // reports it). A timeout from the API is not bounded by the config's maxima.
  Harness h;
  auto o = opts();
  o.step_timeout = std::chrono::milliseconds::max();
  auto r = h.run(R"([{"id": 1, "action": "echo", "parameters": {"text": "x"}}])", o);
  CHECK(step(r, 1).status == StepStatus::succeeded);
  o.step_timeout = std::chrono::milliseconds(-5);  // nonsense from the API: no time at all, not a wrap-around
  auto none = h.run(R"([{"id": 1, "action": "sleep", "parameters": {"ms": 10000}}])", o);
  CHECK(step(none, 1).status == StepStatus::failed);
  CHECK_THAT(step(none, 1).error, Catch::Contains("timed out"));
}

TEST_CASE("SchedulerOptions::from maps the config switches", "[executor][scheduler]") {
  dagent::config::Config cfg;
  auto defaults = SchedulerOptions::from(cfg);
  CHECK(defaults.parallel);
  CHECK(defaults.max_parallel_steps == 5);
  CHECK(defaults.max_parallel_llm_calls == 3);
  CHECK(defaults.scheduling == dagent::config::Scheduling::eager);
  CHECK(defaults.step_timeout == std::chrono::milliseconds(120000));
  CHECK(defaults.background_verification);
  CHECK(defaults.max_reruns == 1);

  cfg.performance.parallel_execution.enabled = false;
  cfg.performance.parallel_execution.scheduling = dagent::config::Scheduling::levels;
  cfg.performance.background_tasks.verification = false;
  cfg.executor.step_timeout_ms = 250;
  cfg.executor.step_retries = 2;
  cfg.verification.max_reruns = 3;
  auto o = SchedulerOptions::from(cfg);
  CHECK_FALSE(o.parallel);
  CHECK(o.max_parallel_steps == 1);
  CHECK(o.scheduling == dagent::config::Scheduling::levels);
  CHECK_FALSE(o.background_verification);
  CHECK(o.step_timeout == std::chrono::milliseconds(250));
  CHECK(o.step_retries == 2);
  CHECK(o.max_reruns == 3);
}

namespace {

// Fails once step 1 is running (`*running`; the event observer sets it and cancels `go`).
asio::awaitable<void> fail_when_told(asio::steady_timer* go, const bool* running) {
  while (!*running) co_await go->async_wait(asio::as_tuple(asio::use_awaitable));
  throw std::runtime_error("planning failed");
}

struct Both {
  Scheduler* scheduler;
  asio::steady_timer* go;
  const bool* running;
  std::vector<std::string>* seen;
  std::string* when_thrown;
};

asio::awaitable<void> run_beside_failure(Both b) {
  using namespace asio::experimental::awaitable_operators;
  try {
    co_await (b.scheduler->run() && fail_when_told(b.go, b.running));
  } catch (const std::exception& e) {
    *b.when_thrown = std::string(e.what()) + " after:";
    for (const auto& s : *b.seen) *b.when_thrown += " " + s;
  }
}

}  // namespace

TEST_CASE("scheduler_outlived_by_steps: a cancelled run() joins its running steps before it completes",
          "[executor][scheduler]") {
  // The streamed goal flow awaits `planning && scheduler.run()`: when planning throws, run() is
  // cancelled. Its step coroutines point into the scheduler, so they must be done before run()
  // completes (before, they finished later, into a destroyed scheduler).
  test::TestTools tools;
  auto parsed = parse_plan(*parse_json_text(R"([{"id": 1, "action": "sleep", "parameters": {"ms": 20000}},
                                               {"id": 2, "action": "echo", "parameters": {}, "dependencies": [1]}])"));
  REQUIRE(parsed.problems.empty());
  auto analysis = analyze(parsed.plan, tools.registry, {});
  REQUIRE(analysis.problems.empty());
  asio::thread_pool pool{2};
  auto dir = std::filesystem::temp_directory_path();
  auto ws = Workspace::open(dir);
  REQUIRE(ws.has_value());
  ToolContext base;
  base.workspace = &*ws;
  base.worker = pool.get_executor();
  RuleVerifier verifier;
  asio::io_context io;
  asio::steady_timer go(io, asio::steady_timer::time_point::max());
  std::vector<std::string> seen;
  std::string when_thrown;
  bool running = false;
  {
    auto o = opts();
    Scheduler scheduler(parsed.plan, analysis, o, base, {}, verifier);
    scheduler.on_event([&](const executor::StepEvent& ev) {
      seen.push_back(std::to_string(ev.step_id) + ":" + std::string(to_string(ev.status)));
      if (ev.step_id == 1 && ev.status == StepStatus::running) running = true, go.cancel();
    });
    asio::co_spawn(io, run_beside_failure(Both{&scheduler, &go, &running, &seen, &when_thrown}), asio::detached);
    io.run();
  }
  pool.join();
  CHECK(when_thrown == "planning failed after: 1:running 2:skipped 1:failed");
}

namespace {

// A tool that says it runs on a worker (as distributed::RemoteTool does), sleeping `ms` here.
class WorkerSleep final : public Tool {
 public:
  std::string_view name() const override { return "worker_sleep"; }
  std::string_view description() const override { return "sleeps, as if on a worker"; }
  const json::object& parameters_schema() const override { return inner_.parameters_schema(); }
  bool runs_on_worker() const override { return true; }
  asio::awaitable<ToolResult> invoke(json::object params, ToolContext ctx) override {
    co_return co_await inner_.invoke(std::move(params), std::move(ctx));
  }

 private:
  test::SleepTool inner_;
};

// Fails each step's (or item's) first call; records (step, item, attempt) of every call.
class FirstCallFails final : public Tool {
 public:
  std::string_view name() const override { return "first_fails"; }
  std::string_view description() const override { return "fails its first attempt"; }
  const json::object& parameters_schema() const override {
    static const json::object s = json::parse(R"({"type":"object"})").as_object();
    return s;
  }
  asio::awaitable<ToolResult> invoke(json::object, ToolContext ctx) override {
    calls.push_back({ctx.step_id, ctx.item, ctx.attempt});
    if (ctx.attempt == 1) co_return tool_error(ToolErrc::failed, "first attempt");
    co_return json::value(ctx.attempt);
  }
  std::vector<std::array<int, 3>> calls;
};

}  // namespace

TEST_CASE("Remote steps are bounded by max_remote_steps, the others still by max_parallel_steps",
          "[executor][scheduler][distributed]") {
  std::string plan = "[";
  for (int i = 1; i <= 18; ++i)
    plan += std::string(i > 1 ? "," : "") + R"({"id":)" + std::to_string(i) + R"(,"action":")" +
            (i <= 12 ? "worker_sleep" : "sleep") + R"(","parameters":{"ms":20}})";
  plan += R"(,{"id":19,"action":"worker_sleep","for_each":[1,2,3,4,5,6,7,8],"parameters":{"ms":20}}])";
  Harness h;
  REQUIRE(h.tools.registry.add(std::make_shared<WorkerSleep>()).has_value());
  int remote = 0, remote_peak = 0, local = 0, local_peak = 0;
  h.on_event = [&](const executor::StepEvent& ev, Scheduler&, asio::io_context&) {
    if (ev.step_id == 19) return;  // the for_each step's own events besides its items'
    int& n = ev.action == "worker_sleep" ? remote : local;
    int& peak = ev.action == "worker_sleep" ? remote_peak : local_peak;
    if (ev.status == StepStatus::running) peak = std::max(peak, ++n);
    if (ev.status == StepStatus::succeeded) --n;
  };
  auto o = opts(2);
  o.max_remote_steps = 6;
  auto r = h.run(plan, o);
  for (const auto& s : r.steps) CHECK(s.status == StepStatus::succeeded);
  CHECK(local_peak == 2);
  CHECK(remote_peak == 6);
  CHECK(r.max_concurrent == 8);  // 6 remote and 2 local at once, never more

  SECTION("without remote capacity a remote tool takes a local slot") {
    remote = remote_peak = local = local_peak = 0;
    auto none = h.run(plan, opts(2));
    CHECK(none.max_concurrent <= 2);
  }
}

TEST_CASE("Each call of a step or item gets its own attempt number", "[executor][scheduler][distributed]") {
  const char* plan = R"([
    {"id": 1, "action": "first_fails", "parameters": {}},
    {"id": 2, "action": "first_fails", "for_each": ["a", "b"], "parameters": {}}
  ])";
  Harness h;
  auto tool = std::make_shared<FirstCallFails>();
  REQUIRE(h.tools.registry.add(tool).has_value());
  auto o = opts(1);  // one at a time: the calls in a known order
  o.step_retries = 1;
  auto r = h.run(plan, o);
  for (const auto& s : r.steps) CHECK(s.status == StepStatus::succeeded);
  const std::vector<std::array<int, 3>> expected{{1, -1, 1}, {1, -1, 2}, {2, 0, 1}, {2, 0, 2}, {2, 1, 1}, {2, 1, 2}};
  CHECK(tool->calls == expected);
}
