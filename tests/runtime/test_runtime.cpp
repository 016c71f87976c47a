#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"

#include <catch2/catch.hpp>

#include <csignal>

#include <boost/json.hpp>

#include "config/config.hpp"
#include "support/process.hpp"
#include "support/test_tools.hpp"

namespace {

namespace json = boost::json;
using namespace dagent;


}  // namespace

TEST_CASE("Runtime runs a plan with a registered tool and reports step events", "[runtime]") {
  test::TempDir dir;
  dir.write("a.txt", "alpha");
  Runtime runtime = dagent::runtime::make_runtime(config::Config{});
  REQUIRE(runtime.register_tool(std::make_shared<test::EchoTool>()).has_value());

  SECTION("a tool name can be registered once") {
    auto again = runtime.register_tool(std::make_shared<test::EchoTool>());
    REQUIRE_FALSE(again.has_value());
    CHECK_THAT(again.error().message, Catch::Contains("echo"));
  }
  SECTION("events arrive in order for each step, the result matches them") {
    std::vector<std::pair<int, StepStatus>> events;
    RunOptions options;
    std::size_t announced = 0;
    options.on_start = [&](const RunResult& r) { announced = r.levels.size(); };
    options.on_event = [&](const StepEvent& e) { events.emplace_back(e.step_id, e.status); };
    auto plan = json::parse(R"([
      {"id": 1, "action": "read_file", "parameters": {"path": "a.txt"}},
      {"id": 2, "action": "echo", "parameters": {"got": "$step1.content", "who": "$input.who"}}
    ])");
    auto outcome = runtime.run_plan(plan, json::object{{"who", "me"}}, dir.path(), options, "demo");
    REQUIRE(outcome.problems.empty());
    CHECK(outcome.exit_code() == 0);
    CHECK(announced == 2);
    const auto& r = outcome.result;
    CHECK(r.task == "demo");
    CHECK(r.status == RunStatus::succeeded);
    CHECK(r.run_id.size() == 16);
    CHECK(test::step_of(r, 2).output == json::parse(R"({"got": "alpha", "who": "me"})"));
    using P = std::pair<int, StepStatus>;
    CHECK(events == std::vector<P>{P{1, StepStatus::running}, P{1, StepStatus::succeeded}, P{2, StepStatus::running},
                                   P{2, StepStatus::succeeded}});
    auto j = to_json(r);
    CHECK(j.at("status") == "succeeded");
    CHECK(j.at("steps").as_array().size() == 2);
    CHECK(j.at("metrics").at("max_concurrent_steps") == 1);
  }
  SECTION("an invalid plan returns every problem and runs nothing") {
    auto plan = json::parse(R"([
      {"id": 1, "action": "write_file", "parameters": {"path": "x.txt", "content": "x"}},
      {"id": 2, "action": "nope", "parameters": {}},
      {"id": 3, "action": "echo", "parameters": {"v": "$input.missing"}}
    ])");
    auto outcome = runtime.run_plan(plan, {}, dir.path());
    CHECK(outcome.exit_code() == 2);
    REQUIRE(outcome.problems.size() == 2);
    CHECK(outcome.problems[0] == "step 2: unknown action 'nope'");
    CHECK_THAT(outcome.problems[1], Catch::StartsWith("step 3: reference $input.missing"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "x.txt"));
  }
  SECTION("a missing workspace is invalid input") {
    auto outcome = runtime.run_plan(json::parse(R"([{"id": 1, "action": "echo"}])"), {}, dir.path() / "nope");
    CHECK(outcome.exit_code() == 2);
    REQUIRE(outcome.problems.size() == 1);
    CHECK_THAT(outcome.problems[0], Catch::StartsWith("workspace: "));
  }
}

TEST_CASE("SIGINT interrupts a run: running steps are cancelled, the rest skipped, the result kept", "[runtime]") {
  test::TempDir dir;
  Runtime runtime = dagent::runtime::make_runtime(config::Config{});
  REQUIRE(runtime.register_tool(std::make_shared<test::SleepTool>()).has_value());
  RunOptions options;
  options.stop_on_sigint = true;
  options.on_event = [](const StepEvent& e) {
    if (e.step_id == 1 && e.status == StepStatus::running) std::raise(SIGINT);
  };
  auto outcome = runtime.run_plan(json::parse(R"([
      {"id": 1, "action": "sleep", "parameters": {"ms": 30000}},
      {"id": 2, "action": "sleep", "parameters": {"ms": 1}, "dependencies": [1]}
    ])"),
                                  {}, dir.path(), options);
  REQUIRE(outcome.problems.empty());
  const auto& r = outcome.result;
  CHECK(outcome.exit_code() == 1);
  CHECK(r.interrupted);
  CHECK(r.error == "interrupted");
  CHECK(test::step_of(r, 1).status == StepStatus::failed);
  CHECK_THAT(test::step_of(r, 1).error, Catch::Contains("cancelled"));
  CHECK(test::step_of(r, 2).status == StepStatus::skipped);
  CHECK(r.metrics.wall_ms < 10000);
}

TEST_CASE("configured tasks without a workspace use tools.workspace", "[runtime]") {
  test::TempDir dir;
  dir.write("ws/hello.txt", "hi");
  dir.write("config.yaml", "tools: {workspace: ws}\ntasks:\n  greet:\n    plan: [{id: 1, action: read_file, parameters: {path: hello.txt}}]\n");
  auto loaded = Runtime::load(dir.path() / "config.yaml");
  REQUIRE(std::holds_alternative<Runtime>(loaded));
  auto outcome = std::get<Runtime>(loaded).run_task("greet");
  INFO((outcome.problems.empty() ? outcome.result.steps[0].error : outcome.problems[0]));
  REQUIRE(outcome.exit_code() == 0);
  CHECK(outcome.result.steps[0].output.at("content") == "hi");
}

TEST_CASE("tools.read_max_bytes reaches read_file through the runtime's registry", "[runtime]") {
  test::TempDir dir;
  dir.write("big.txt", std::string(5000, 'x'));
  config::Config cfg;
  cfg.tools.read_max_bytes = 100;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto plan = json::parse(R"([{"id": 1, "action": "read_file", "parameters": {"path": "big.txt"}},
                             {"id": 2, "action": "read_file", "parameters": {"path": "big.txt", "max_bytes": 4000}}])");
  auto outcome = runtime.run_plan(plan, {}, dir.path());
  REQUIRE(outcome.exit_code() == 0);
  for (int id : {1, 2}) {
    const auto& out = test::step_of(outcome.result, id).output;
    CHECK(out.at("content").as_string().size() == 100);
    CHECK(out.at("truncated") == true);
  }
}

TEST_CASE("Runtime::load reports config and override problems", "[runtime]") {
  test::TempDir dir;
  dir.write("config.yaml", "executor:\n  step_timeout_ms: -5\n");
  auto bad = Runtime::load(dir.path() / "config.yaml");
  REQUIRE(std::holds_alternative<std::vector<std::string>>(bad));
  CHECK_THAT(std::get<std::vector<std::string>>(bad)[0], Catch::Contains(":2: executor.step_timeout_ms"));
  auto bad_set = Runtime::load("", {"planner.max_steps=0"});
  REQUIRE(std::holds_alternative<std::vector<std::string>>(bad_set));
  CHECK_THAT(std::get<std::vector<std::string>>(bad_set)[0], Catch::StartsWith("--set: planner.max_steps"));
}

TEST_CASE("record_replace: a run never replaces an existing recording unless told to", "[runtime][record]") {
  test::TempDir dir;
  dir.write("a.txt", "alpha");
  const auto recording = dir.write("run.jsonl", "previous recording\n");
  Runtime runtime = dagent::runtime::make_runtime(config::Config{});
  const auto plan = json::parse(R"([{"id": 1, "action": "write_file", "parameters": {"path": "out.txt", "content": "x"}}])");
  RunOptions options;
  options.record_file = recording;
  SECTION("by default: refused before any step runs, the file kept") {
    auto outcome = runtime.run_plan(plan, {}, dir.path(), options);
    CHECK(outcome.exit_code() == 2);
    REQUIRE(outcome.problems.size() == 1);
    CHECK_THAT(outcome.problems.front(), Catch::StartsWith("--record: " + recording.string() + " already exists"));
    CHECK(test::read_text(recording) == "previous recording\n");
    CHECK_FALSE(std::filesystem::exists(dir.path() / "out.txt"));
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
    CHECK(entries == 2);  // a.txt and run.jsonl: no temporary file left beside it
  }
  SECTION("with record_replace: the run's recording replaces it") {
    options.record_replace = true;
    auto outcome = runtime.run_plan(plan, {}, dir.path(), options);
    REQUIRE(outcome.exit_code() == 0);
    CHECK_THAT(test::read_text(recording), Catch::StartsWith(R"({"type":"header")"));
    CHECK(std::filesystem::exists(dir.path() / "out.txt"));
  }
}
