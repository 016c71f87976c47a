// The whole loop from a goal, against the scripted test server: plan, run, answer, repair,
// keyword routes, streamed planning and replanning.

#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
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
using dagent::PlanningEvent;
using dagent::PlanningPhase;
using dagent::RunOptions;
using dagent::RunOutcome;
using dagent::Runtime;
using dagent::StepEvent;
using dagent::StepStatus;
using dagent::StepResult;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;


std::string plan_text(std::string_view steps) { return std::string("{\"steps\": ") + std::string(steps) + "}"; }

const char* k_two_reads = R"([{"id": 1, "action": "read_file", "parameters": {"path": "a.txt"}},
  {"id": 2, "action": "read_file", "parameters": {"path": "b.txt"}},
  {"id": 3, "action": "write_file", "parameters": {"path": "out.txt", "content": "$step1.content+$step2.content"}}])";

dagent::config::Config config_for(const TestServer& server, const TempDir& dir) {
  dagent::config::Config cfg;
  cfg.llm.base_url = server.base_url();
  cfg.base_dir = dir.path();
  cfg.tools.workspace = "ws";
  cfg.tasks["goal"] = dagent::config::Task{.name = "goal", .goal = "Combine a.txt and b.txt into out.txt"};
  return cfg;
}

void write_workspace(const TempDir& dir) {
  dir.write("ws/a.txt", "alpha");
  dir.write("ws/b.txt", "beta");
  dir.write("ws/c.txt", "gamma");
}

// Request bodies the server saw, in arrival order.
std::vector<std::string> bodies(const TestServer& server) {
  std::vector<std::string> out;
  const auto stats = server.stats();  // named: a range-for over a temporary's member dangles
  for (const auto& r : stats.at("recent").as_array()) out.emplace_back(r.at("body").as_string());
  return out;
}

int count_containing(const std::vector<std::string>& all, std::string_view needle) {
  int n = 0;
  for (const auto& b : all) n += b.find(needle) != std::string::npos;
  return n;
}

struct Recorder {
  std::vector<std::string>* pieces;
  void operator()(std::string_view p) const { pieces->emplace_back(p); }
};
// Raises SIGINT (Ctrl-C) when the first piece of the answer arrives.
struct RaiseOnFirstPiece {
  std::shared_ptr<bool> raised = std::make_shared<bool>(false);
  void operator()(std::string_view) const {
    if (!*raised) std::raise(SIGINT);
    *raised = true;
  }
};

struct StepLog {
  std::map<int, int>* runs;
  std::vector<std::string>* lines;
  void operator()(const StepEvent& e) const {
    if (e.status == StepStatus::running) ++(*runs)[e.step_id];
    lines->push_back(std::to_string(e.step_id) + " " + std::string(to_string(e.status)) + " " + std::string(e.message));
  }
};

}  // namespace

TEST_CASE("a goal is planned and run and the answer is streamed", "[runtime][planner]") {
  json::array rules{rule(k_intent, R"({"intent": "combine files", "tools": ["read_file", "write_file"]})"),
                    rule(k_plan, "Here is the plan:\n```json\n" + plan_text(k_two_reads) + "\n```\nDone."),
                    json::object{{"contains", k_answer}, {"stream_chunks", json::array{"out.txt now ", "holds ", "alpha+beta."}}}};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  auto cfg = config_for(server, dir);
  const bool structured = GENERATE(true, false);
  cfg.llm.structured_output = structured;
  // This test is about the narrowed catalog of a plan call that waits for the intent.
  cfg.planner.intent_mode = dagent::config::IntentMode::sequential;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  std::vector<std::string> pieces;
  RunOptions options;
  options.on_answer = Recorder{&pieces};
  auto outcome = runtime.run_task("goal", options);
  const std::string why = outcome.problems.empty() ? outcome.result.error : outcome.problems.front();
  INFO(why);
  REQUIRE(outcome.exit_code() == 0);
  const auto& r = outcome.result;
  CHECK(dagent::test::read_text(dir.path() / "ws/out.txt") == "alpha+beta");
  CHECK(r.answer == "out.txt now holds alpha+beta.");
  CHECK(pieces.size() >= 2);  // streamed, not delivered at the end in one piece
  CHECK(r.intent == "combine files");
  CHECK(r.plan_attempts == 1);
  REQUIRE(r.levels.size() == 2);
  CHECK(r.levels[0] == std::vector<int>{1, 2});
  CHECK(r.metrics.llm_calls == 3);  // intent, plan, answer
  const auto all = bodies(server);
  REQUIRE(count_containing(all, k_plan) == 1);
  const auto& plan_body = all[1];
  CHECK((plan_body.find("\"response_format\"") != std::string::npos) == structured);
  // The intent narrowed the catalog: only the chosen tools are described to the planner.
  CHECK(plan_body.find("- read_file:") != std::string::npos);
  CHECK(plan_body.find("- list_dir:") == std::string::npos);
}

TEST_CASE("an invalid plan is repaired on the second try", "[runtime][planner]") {
  json::array rules{rule(k_intent, R"({"intent": "x", "tools": []})"),
                    rule(k_plan, plan_text(R"([{"id": 1, "action": "read_fil", "parameters": {"path": "a.txt"}}])")),
                    rule(k_repair, plan_text(R"([{"id": 1, "action": "read_file", "parameters": {"path": "a.txt"}}])")),
                    rule(k_answer, "alpha")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  Runtime runtime = dagent::runtime::make_runtime(config_for(server, dir));
  auto outcome = runtime.run_task("goal");
  REQUIRE(outcome.problems.empty());
  CHECK(outcome.exit_code() == 0);
  CHECK(outcome.result.plan_attempts == 2);
  CHECK(outcome.result.steps.at(0).output.at("content") == "alpha");
  const auto all = bodies(server);
  REQUIRE(count_containing(all, k_repair) == 1);
  for (const auto& b : all)
    if (b.find(k_repair) != std::string::npos) CHECK(b.find("unknown action 'read_fil'") != std::string::npos);
}

TEST_CASE("a plan invalid twice exits 2 and lists the problems", "[runtime][planner][cli]") {
  const std::string bad = plan_text(R"([{"id": 1, "action": "frobnicate", "parameters": {}},
      {"id": 2, "action": "read_file", "parameters": {"path": "a.txt"}, "dependencies": [3]},
      {"id": 3, "action": "read_file", "parameters": {"path": "$step2.path"}}])");
  json::array rules{rule(k_intent, R"({"intent": "x", "tools": []})"), rule(k_plan, bad), rule(k_repair, bad)};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  dir.write("task.yaml", "goal: Read a.txt\nworkspace: ws\n");
  auto r = dagent::test::run_process({DAGENT_BINARY, "run", "task.yaml"}, dir.path(), {"OPENAI_BASE_URL=" + server.base_url()});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("step 1: unknown action 'frobnicate'"));
  CHECK_THAT(r.err, Catch::Contains("dependency cycle"));
  CHECK(count_containing(bodies(server), k_repair) == 1);  // one repair, no more
  CHECK_FALSE(std::filesystem::exists(dir.path() / "ws/out.txt"));
}

TEST_CASE("a keyword route skips the intent call and narrows the tools", "[runtime][planner]") {
  json::array rules{rule(k_intent, R"({"intent": "x", "tools": []})"),
                    rule(k_plan, plan_text(k_two_reads)), rule(k_answer, "done")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  auto cfg = config_for(server, dir);
  cfg.planner.routes.push_back({"files", {"combine", "merge"}, {"read_file", "write_file"}, 0});
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto outcome = runtime.run_task("goal");
  REQUIRE(outcome.exit_code() == 0);
  CHECK_THAT(outcome.result.intent, Catch::StartsWith("route files"));
  auto all = bodies(server);
  CHECK(count_containing(all, k_intent) == 0);
  CHECK(count_containing(all, k_plan) == 1);
  CHECK(all.front().find("- list_dir:") == std::string::npos);

  SECTION("without a matching keyword the intent call is made") {
    server.reset();
    server.set_script(json::object{{"rules", rules}});
    auto other = cfg;
    other.planner.routes.front().keywords = {"translate"};
    Runtime plain = dagent::runtime::make_runtime(other);
    REQUIRE(plain.run_task("goal").exit_code() == 0);
    CHECK(count_containing(bodies(server), k_intent) == 1);
  }
}

TEST_CASE("with streamed planning the first step starts before the plan stream ends", "[runtime][planner]") {
  // Five chunks 150 ms apart: the steps of the first chunk are complete 600 ms before the end.
  json::array chunks{R"({"steps": [{"id": 1, "action": "read_file", "parameters": {"path": "a.txt"}},)",
                     R"( {"id": 2, "action": "read_file", "parameters": {"path": "b.txt"}},)",
                     R"( {"id": 3, "action": "write_file", "parameters": {"path": "out.txt",)",
                     R"( "content": "$step1.content+$step2.content"}})",
                     R"(]})"};
  json::array rules{rule(k_intent, R"({"intent": "x", "tools": []})"),
                    json::object{{"contains", k_plan}, {"stream_chunks", chunks}, {"stream_interval_ms", 150}},
                    rule(k_answer, "done")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  auto cfg = config_for(server, dir);
  cfg.planner.stream_plan = true;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto outcome = runtime.run_task("goal");
  REQUIRE(outcome.exit_code() == 0);
  const auto& r = outcome.result;
  CHECK(dagent::test::read_text(dir.path() / "ws/out.txt") == "alpha+beta");
  REQUIRE(r.steps.size() == 3);
  CHECK(r.metrics.planning_ms >= 600);                         // the server paced the stream
  CHECK(r.steps[0].started_ms < r.metrics.planning_ms - 450);  // step 1 ran during it
  CHECK(r.steps[1].started_ms < r.metrics.planning_ms - 300);
  CHECK(r.levels == std::vector<std::vector<int>>{{1, 2}, {3}});

  SECTION("streamed_plan_invalid_after_steps_ran: the result keeps what ran, no repair runs over it, exit 1") {
    json::array bad_chunks{R"({"steps": [{"id": 1, "action": "sleep", "parameters": {"ms": 5000}},)",
                           R"( {"id": 2, "action": "nope", "parameters": {}}]})"};
    json::array bad_rules{rule(k_intent, R"({"intent": "x", "tools": []})"),
                          json::object{{"contains", k_plan}, {"stream_chunks", bad_chunks}, {"stream_interval_ms", 200}},
                          rule(k_repair, plan_text(R"([{"id": 1, "action": "sleep", "parameters": {"ms": 1}}])")),
                          rule(k_answer, "done")};
    server.reset();
    server.set_script(json::object{{"rules", bad_rules}});
    auto no_replans = cfg;
    no_replans.planner.max_replans = 0;  // with a replan allowed the plan is replanned (see below)
    Runtime with_sleep = dagent::runtime::make_runtime(no_replans);
    REQUIRE(with_sleep.register_tool(std::make_shared<dagent::test::SleepTool>()).has_value());
    std::map<int, int> runs;
    std::vector<std::string> lines;
    RunOptions options;
    options.on_event = StepLog{&runs, &lines};
    auto ran = with_sleep.run_task("goal", options);
    std::string all_lines;
    for (const auto& l : lines) all_lines += l + "\n";
    INFO(all_lines);
    // Before: repaired and run again, exit 0 (or "invalid input, nothing was run" after a failed
    // repair) although step 1 had run.
    REQUIRE(ran.problems.empty());
    CHECK(ran.exit_code() == 1);
    const auto& r = ran.result;
    CHECK(r.status == dagent::RunStatus::failed);
    CHECK_THAT(r.error, Catch::Contains("invalid after its first steps ran") && Catch::Contains("nope"));
    REQUIRE(r.steps.size() == 1);
    CHECK(r.steps[0].id == 1);
    CHECK_THAT(r.steps[0].error, Catch::Contains("cancelled"));  // started from the stream, then cancelled
    CHECK(runs[1] == 1);
    CHECK(r.metrics.wall_ms < 4000);  // the 5 s sleep did not run out
    CHECK(count_containing(bodies(server), k_repair) == 0);
    CHECK(count_containing(bodies(server), k_replan) == 0);
  }
}

namespace {

// Steps 1 and 2 are llm steps (each call is a side effect the server counts) streamed first;
// step 3 calls write_file, which tools.enabled leaves out: the plan is invalid once step 3 arrives.
json::array invalid_third_step() {
  return json::array{
      R"({"steps": [{"id": 1, "action": "llm", "parameters": {"prompt": "first-marker"}},)",
      R"( {"id": 2, "action": "llm", "parameters": {"prompt": "second-marker"}},)",
      R"( {"id": 3, "action": "write_file", "parameters": {"path": "out.txt", "content": "$step1.text"}}]})"};
}

constexpr const char* k_disabled_problem = "is disabled (tools.enabled)";

// Requests made by a step's llm call: the body holds its marker and is no planner call.
int step_calls(const std::vector<std::string>& all, std::string_view marker) {
  int n = 0;
  for (const auto& b : all)
    n += b.find(marker) != std::string::npos && b.find(k_replan) == std::string::npos &&
         b.find(k_answer) == std::string::npos && b.find(k_plan) == std::string::npos;
  return n;
}

std::vector<int> ids_of(const std::vector<StepResult>& steps) {
  std::vector<int> out;
  for (const auto& s : steps) out.push_back(s.id);
  return out;
}

}  // namespace

TEST_CASE("streamed_invalid_replanned: a streamed plan found invalid after steps ran is replanned over them",
          "[runtime][planner][streamfix]") {
  // Before: the run failed with "the streamed plan was found invalid after its first steps ran",
  // where the same plan, whole, would have been repaired.
  json::array rules{rule(k_intent, R"({"intent": "x", "tools": []})"),
                    json::object{{"contains", k_plan}, {"stream_chunks", invalid_third_step()}, {"stream_interval_ms", 50}},
                    rule(k_replan, plan_text(R"([{"id": 3, "action": "read_file", "parameters": {"path": "$step1.text"},
                                                  "dependencies": [1, 2]}])")),
                    rule(k_answer, "gamma"),
                    rule("first-marker", "c.txt"),
                    rule("second-marker", "two")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  auto cfg = config_for(server, dir);
  cfg.planner.stream_plan = true;
  cfg.tools.enabled = {"read_file", "llm"};
  std::map<int, int> runs;
  std::vector<std::string> lines;
  RunOptions options;
  options.on_event = StepLog{&runs, &lines};

  SECTION("the steps that ran are kept, the replan adds the rest, the run succeeds") {
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto outcome = runtime.run_task("goal", options);
    std::string all_lines;
    for (const auto& l : lines) all_lines += l + "\n";
    INFO(all_lines << outcome.result.error);
    REQUIRE(outcome.problems.empty());
    CHECK(outcome.exit_code() == 0);
    const auto& r = outcome.result;
    CHECK(r.status == dagent::RunStatus::succeeded);
    CHECK(r.error.empty());
    CHECK(r.replans == 1);
    CHECK(r.answer == "gamma");
    CHECK(ids_of(r.steps) == std::vector<int>{1, 2, 3});
    for (const auto& s : r.steps) CHECK(s.status == StepStatus::succeeded);
    CHECK(r.steps[2].action == "read_file");
    CHECK(r.steps[2].output.at("content") == "gamma");  // $step1.text from the kept result
    CHECK(runs == std::map<int, int>{{1, 1}, {2, 1}, {3, 1}});
    const auto all = bodies(server);
    CHECK(step_calls(all, "first-marker") == 1);  // the side effects of steps 1 and 2 happened once
    CHECK(step_calls(all, "second-marker") == 1);
    CHECK(count_containing(all, k_repair) == 0);
    REQUIRE(count_containing(all, k_replan) == 1);
    for (const auto& b : all)
      if (b.find(k_replan) != std::string::npos) {
        CHECK(b.find(k_disabled_problem) != std::string::npos);  // the reason quotes the problem
        CHECK(b.find("found invalid after its first steps ran") != std::string::npos);
        CHECK(b.find("Number them from 3") != std::string::npos);
        CHECK(b.find("c.txt") != std::string::npos);  // step 1's result
      }
    // The final plan: the kept steps as streamed, then the new one.
    REQUIRE(r.plan.is_array());
    REQUIRE(r.plan.as_array().size() == 3);
    CHECK(r.plan.as_array()[0].at("action") == "llm");
    CHECK(r.plan.as_array()[2].at("action") == "read_file");
    CHECK(dagent::test::read_text(dir.path() / "ws/c.txt") == "gamma");
  }

  SECTION("with planner.max_replans 0 the run fails, names the problem and lists what ran") {
    cfg.planner.max_replans = 0;
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto outcome = runtime.run_task("goal", options);
    REQUIRE(outcome.problems.empty());
    CHECK(outcome.exit_code() == 1);
    const auto& r = outcome.result;
    CHECK(r.status == dagent::RunStatus::failed);
    CHECK_THAT(r.error, Catch::Contains("the streamed plan was found invalid after its first steps ran") &&
                            Catch::Contains(k_disabled_problem));
    CHECK(r.replans == 0);
    CHECK(ids_of(r.steps) == std::vector<int>{1, 2});
    CHECK(runs.size() == 2);
    CHECK(count_containing(bodies(server), k_replan) == 0);
    CHECK(count_containing(bodies(server), k_repair) == 0);
  }

  SECTION("a replan reply that is invalid too fails the run with both problems") {
    json::array bad = rules;
    bad[2] = rule(k_replan, plan_text(R"([{"id": 3, "action": "write_file", "parameters": {"path": "out.txt",
                                          "content": "$step1.text"}}])"));
    server.set_script(json::object{{"rules", bad}});
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto outcome = runtime.run_task("goal", options);
    REQUIRE(outcome.problems.empty());
    CHECK(outcome.exit_code() == 1);
    const auto& r = outcome.result;
    CHECK(r.status == dagent::RunStatus::failed);
    CHECK_THAT(r.error, Catch::Contains("the streamed plan was found invalid after its first steps ran") &&
                            Catch::Contains("replanning failed") && Catch::Contains(k_disabled_problem));
    CHECK(r.replans == 1);
    CHECK(ids_of(r.steps) == std::vector<int>{1, 2});
    for (const auto& s : r.steps) CHECK(s.status == StepStatus::succeeded);
    CHECK(runs == std::map<int, int>{{1, 1}, {2, 1}});  // nothing of the replan ran
    CHECK(count_containing(bodies(server), k_replan) == 1);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "ws/out.txt"));
  }

  SECTION("limits.max_llm_calls counts the replan call: spent, the run fails") {
    // intent, plan, steps 1 and 2: four calls; the replan would be the fifth.
    cfg.limits.max_llm_calls = 4;
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto outcome = runtime.run_task("goal", options);
    CHECK(outcome.exit_code() == 1);
    const auto& r = outcome.result;
    CHECK_THAT(r.error, Catch::StartsWith("budget exceeded: limits.max_llm_calls") &&
                            Catch::Contains("invalid after its first steps ran") && Catch::Contains(k_disabled_problem));
    CHECK(ids_of(r.steps) == std::vector<int>{1, 2});
    CHECK(count_containing(bodies(server), k_replan) == 0);
  }

  SECTION("a streamed step that failed is not kept: the replan numbers after it, as after an answer's REPLAN") {
    json::array chunks{R"({"steps": [{"id": 1, "action": "llm", "parameters": {"prompt": "first-marker"}},)",
                       R"( {"id": 2, "action": "read_file", "parameters": {"path": "missing.txt"}},)",
                       R"( {"id": 3, "action": "write_file", "parameters": {"path": "out.txt", "content": "x"}}]})"};
    json::array failing = rules;
    failing[1] = json::object{{"contains", k_plan}, {"stream_chunks", chunks}, {"stream_interval_ms", 50}};
    failing[2] = rule(k_replan, plan_text(R"([{"id": 3, "action": "read_file", "parameters": {"path": "$step1.text"}}])"));
    server.set_script(json::object{{"rules", failing}});
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto outcome = runtime.run_task("goal", options);
    INFO(outcome.result.error);
    CHECK(outcome.exit_code() == 0);
    const auto& r = outcome.result;
    CHECK(ids_of(r.steps) == std::vector<int>{1, 3});
    CHECK(runs == std::map<int, int>{{1, 1}, {2, 1}, {3, 1}});
    for (const auto& b : bodies(server))
      if (b.find(k_replan) != std::string::npos) {
        CHECK(b.find("missing.txt") != std::string::npos);  // the failure is in the results shown
        CHECK(b.find("Number them from 3") != std::string::npos);
      }
  }
}

namespace {

// Throws from the planner's observer when the plan stream has ended: the planning branch fails
// while step 1 is running.
struct ThrowWhenPlanned {
  void operator()(const PlanningEvent& e) const {
    if (e.phase == PlanningPhase::planning && e.finished) throw std::runtime_error("observer failed");
  }
};

}  // namespace

TEST_CASE("planning_failure_outlived_by_steps: a streamed planning that throws joins the running steps",
          "[runtime][planner]") {
  // Before: the scheduler's run() was cancelled and its frame went away while step 1 still ran
  // (a use after free under ASan), and the exception left run_task() with no result.
  json::array chunks{R"({"steps": [{"id": 1, "action": "sleep", "parameters": {"ms": 20000}},)",
                     R"( {"id": 2, "action": "read_file", "parameters": {"path": "a.txt"}}]})"};
  json::array rules{rule(k_intent, R"({"intent": "x", "tools": []})"),
                    json::object{{"contains", k_plan}, {"stream_chunks", chunks}, {"stream_interval_ms", 100}},
                    rule(k_answer, "done")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  auto cfg = config_for(server, dir);
  cfg.planner.stream_plan = true;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  REQUIRE(runtime.register_tool(std::make_shared<dagent::test::SleepTool>()).has_value());
  RunOptions options;
  options.on_planning = ThrowWhenPlanned{};
  std::map<int, int> runs;
  std::vector<std::string> lines;
  options.on_event = StepLog{&runs, &lines};
  RunOutcome outcome;
  REQUIRE_NOTHROW(outcome = runtime.run_task("goal", options));
  REQUIRE(outcome.problems.empty());
  CHECK(outcome.exit_code() == 1);
  CHECK_THAT(outcome.result.error, Catch::Contains("internal error: observer failed"));
  // Step 1 was cancelled and finished before run_task() returned (joined, not abandoned).
  std::string all_lines;
  for (const auto& l : lines) all_lines += l + "\n";
  CHECK_THAT(all_lines, Catch::Contains("1 failed sleep cancelled"));
  CHECK(outcome.result.metrics.wall_ms < 15000);
}

TEST_CASE("answer_missing_reported_success: a goal run whose answer was never produced fails", "[runtime][planner]") {
  json::array rules{rule(k_intent, R"({"intent": "x", "tools": []})"), rule(k_plan, plan_text(k_two_reads))};
  std::string expected;
  int exit_code = 1;
  SECTION("the answer call fails") {
    rules.push_back(json::object{{"contains", k_answer}, {"status", 500}});
    expected = "answer synthesis failed";
  }
  SECTION("the provider refuses the answer call (400): its refusal, exit 3") {
    rules.push_back(json::object{{"contains", k_answer}, {"status", 400}});
    expected = "provider refused the request (400)";
    exit_code = 3;
  }
  SECTION("the answer is empty") {
    rules.push_back(rule(k_answer, ""));
    expected = "answer synthesis failed";
  }
  SECTION("the replan reply is not a plan") {
    rules.push_back(json::object{{"contains", k_answer}, {"nth", 1}, {"reply", "REPLAN: c.txt was not read"}});
    rules.push_back(rule(k_replan, "I cannot write a plan."));
    expected = "replanning failed";
  }
  SECTION("the provider refuses us for the answer (401, as unreachable): exit 3") {
    rules.push_back(json::object{{"contains", k_answer}, {"status", 401}});
    expected = "answer synthesis failed";
    exit_code = 3;
  }
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  auto cfg = config_for(server, dir);
  cfg.llm.max_retries = 0;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto outcome = runtime.run_task("goal");
  REQUIRE(outcome.problems.empty());
  const auto& r = outcome.result;
  INFO(r.error);
  CHECK(outcome.exit_code() == exit_code);
  CHECK(r.status == dagent::RunStatus::failed);
  CHECK_THAT(r.error, Catch::Contains(expected));
  CHECK(r.answer.empty());
  CHECK(r.steps.size() >= 3);  // the steps ran and are reported
  CHECK(dagent::test::read_text(dir.path() / "ws/out.txt") == "alpha+beta");
}

TEST_CASE("interrupted_answer_lost: Ctrl-C while the answer streams keeps what arrived and fails the run",
          "[runtime][planner]") {
  json::array rules{rule(k_intent, R"({"intent": "x", "tools": []})"), rule(k_plan, plan_text(k_two_reads)),
                    json::object{{"contains", k_answer},
                                 {"stream_events", json::array{"data: {\"choices\": [{\"index\": 0, \"delta\": "
                                                               "{\"content\": \"Half an \"}}]}\n\n",
                                                               "data: {\"choices\": [{\"index\": 0, \"delta\": "
                                                               "{\"content\": \"answer\"}}]}\n\n",
                                                               "data: [DONE]\n\n"}},
                                 {"fault", "stall"}}};  // the first piece, then nothing until Ctrl-C
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  Runtime runtime = dagent::runtime::make_runtime(config_for(server, dir));
  RunOptions options;
  options.stop_on_sigint = true;
  options.on_answer = RaiseOnFirstPiece{};  // Ctrl-C once the first piece has arrived (the rest never comes)
  auto outcome = runtime.run_task("goal", options);
  REQUIRE(outcome.problems.empty());
  const auto& r = outcome.result;
  CHECK(outcome.exit_code() == 1);
  CHECK(r.interrupted);
  CHECK(r.error == "interrupted");
  CHECK(r.answer == "Half an ");
  REQUIRE(r.steps.size() == 3);
  for (const auto& s : r.steps) CHECK(s.status == StepStatus::succeeded);
}

TEST_CASE("run_state_outlives_failed_setup: a failing replay, then a live run, on one Runtime", "[runtime][record]") {
  json::array rules{rule(k_intent, R"({"intent": "x", "tools": []})"), rule(k_plan, plan_text(k_two_reads)),
                    rule(k_answer, "done")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  dir.write("empty.jsonl", R"({"type":"header","format":1,"run_id":"0","task":"goal"})" "\n");
  Runtime runtime = dagent::runtime::make_runtime(config_for(server, dir));
  RunOptions replay;
  replay.replay_file = dir.path() / "empty.jsonl";
  replay.replay_instant = true;
  SECTION("a replay whose recording holds no call") {}
  SECTION("a replay that cannot set up: its --record file cannot be opened") {
    replay.record_file = dir.path() / "no" / "such" / "folder" / "run.jsonl";
  }
  auto failed = runtime.run_task("goal", replay);
  CHECK(failed.exit_code() != 0);
  CHECK(bodies(server).empty());  // the replay reached no server
  auto live = runtime.run_task("goal");
  INFO((live.problems.empty() ? live.result.error : live.problems.front()));
  REQUIRE(live.exit_code() == 0);
  CHECK(live.result.answer == "done");
  CHECK(count_containing(bodies(server), k_plan) == 1);
  CHECK(live.result.metrics.llm_calls == 3);
}

TEST_CASE("judge_unknown_counted_as_pass: a verdict the judge could not give is an error, never a pass",
          "[runtime][verify]") {
  TempDir dir;
  write_workspace(dir);
  const bool critical = GENERATE(true, false);
  const auto plan = json::parse(std::string(R"([{"id": 1, "action": "read_file", "parameters": {"path": "a.txt"},
      "verify": "It mentions alpha", "critical": )") + (critical ? "true" : "false") + R"(},
      {"id": 2, "action": "read_file", "parameters": {"path": "b.txt"}, "dependencies": [1]}])");
  auto check = [&](const RunOutcome& outcome, int exit_code) {
    REQUIRE(outcome.problems.empty());
    const auto& r = outcome.result;
    CHECK(outcome.exit_code() == exit_code);
    CHECK(r.status == dagent::RunStatus::failed);
    REQUIRE(r.steps.size() == 2);
    CHECK(r.steps[0].verification == dagent::VerificationStatus::error);
    CHECK(to_json(r).at("steps").at(0).at("verification").at("status") == "error");
    if (critical) {
      CHECK(r.steps[0].status == StepStatus::failed);
      CHECK(r.steps[1].status == StepStatus::skipped);  // its dependents do not run
    } else {
      CHECK(r.steps[0].status == StepStatus::succeeded);
      CHECK(r.steps[1].status == StepStatus::succeeded);
    }
  };
  SECTION("the judge's reply is not a verdict") {
    TestServer server(TestServerOptions{.script = json::object{{"rules", json::array{rule("\"verdict\"", "no idea")}}}});
    auto cfg = config_for(server, dir);
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto outcome = runtime.run_plan(plan, {}, dir.path() / "ws");
    check(outcome, 1);
    CHECK_THAT(outcome.result.steps[0].verification_reason, Catch::Contains("not a verdict"));
  }
  SECTION("the judge cannot be reached: exit 3 when the step is critical") {
    dagent::config::Config cfg;
    cfg.llm.base_url = "http://127.0.0.1:9/v1";
    cfg.llm.max_retries = 0;
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    check(runtime.run_plan(plan, {}, dir.path() / "ws"), critical ? 3 : 1);
  }
}
TEST_CASE("replanning keeps completed steps and runs only the new ones", "[runtime][planner]") {
  json::array rules{
      rule(k_intent, R"({"intent": "x", "tools": []})"),
      rule(k_plan, plan_text(R"([{"id": 1, "action": "read_file", "parameters": {"path": "a.txt"}},
                                  {"id": 2, "action": "read_file", "parameters": {"path": "b.txt"}}])")),
      json::object{{"contains", k_answer}, {"nth", 1}, {"reply", "REPLAN: c.txt was not read"}},
      rule(k_replan, plan_text(R"([{"id": 3, "action": "read_file", "parameters": {"path": "c.txt"}},
                                   {"id": 4, "action": "write_file", "parameters": {"path": "out.txt",
                                    "content": "$step1.content+$step3.content"}}])")),
      rule(k_answer, "alpha and gamma")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  Runtime runtime = dagent::runtime::make_runtime(config_for(server, dir));
  std::map<int, int> runs;
  std::vector<std::string> lines;
  RunOptions options;
  options.on_event = StepLog{&runs, &lines};
  auto outcome = runtime.run_task("goal", options);
  REQUIRE(outcome.exit_code() == 0);
  const auto& r = outcome.result;
  CHECK(r.replans == 1);
  CHECK(r.answer == "alpha and gamma");
  REQUIRE(r.steps.size() == 4);
  for (const auto& s : r.steps) CHECK(s.status == StepStatus::succeeded);
  CHECK(runs == std::map<int, int>{{1, 1}, {2, 1}, {3, 1}, {4, 1}});  // 1 and 2 were not re-run
  CHECK(r.steps[0].output.at("content") == "alpha");
  CHECK(r.steps[0].finished_ms <= r.steps[2].started_ms);
  CHECK(dagent::test::read_text(dir.path() / "ws/out.txt") == "alpha+gamma");
  // The replan call saw the completed results and the reason.
  for (const auto& b : bodies(server))
    if (b.find(k_replan) != std::string::npos) {
      CHECK(b.find("c.txt was not read") != std::string::npos);
      CHECK(b.find("alpha") != std::string::npos);
      CHECK(b.find("Number them from 3") != std::string::npos);
    }

  SECTION("planner.max_replans bounds the loop and the last call may not ask again") {
    server.reset();
    server.set_script(json::object{{"rules", rules}});
    auto cfg = config_for(server, dir);
    cfg.planner.max_replans = 0;
    Runtime no_replans = dagent::runtime::make_runtime(cfg);
    auto once = no_replans.run_task("goal");
    CHECK(once.result.replans == 0);
    CHECK(count_containing(bodies(server), k_replan) == 0);
    CHECK(count_containing(bodies(server), "REPLAN: <what is missing>") == 0);  // not offered
  }
}

TEST_CASE("planning_refused_is_invalid_input: a provider's 4xx to the planning call exits 3 with its message",
          "[runtime][planner]") {
  json::array rules{rule(k_intent, R"({"intent": "x", "tools": []})"),
                    json::object{{"contains", k_plan},
                                 {"status", 400},
                                 {"body", json::object{{"error", json::object{{"message", "model 'nope' does not exist"},
                                                                               {"type", "invalid_request_error"}}}}}}};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_workspace(dir);
  Runtime runtime = dagent::runtime::make_runtime(config_for(server, dir));
  auto outcome = runtime.run_task("goal");
  REQUIRE_FALSE(outcome.problems.empty());
  INFO(outcome.problems.front());
  CHECK(outcome.exit_code() == 3);
  CHECK_THAT(outcome.problems.front(),
             Catch::Contains("provider refused the request (400)") && Catch::Contains("model 'nope' does not exist"));
  CHECK(count_containing(bodies(server), k_repair) == 0);  // a refusal is not the plan's fault: no repair
}

TEST_CASE("retry budget: each run on one Runtime starts with a fresh budget", "[runtime]") {
  // Every llm call fails with a 500; the budget allows one retry per run (min 1, ratio 0).
  TestServer server(TestServerOptions{.script = json::object{
                                          {"rules", json::array{json::object{{"path", "/v1/chat/completions"},
                                                                             {"status", 500}}}}}});
  TempDir dir;
  auto cfg = config_for(server, dir);
  cfg.llm.max_retries = 3;
  cfg.llm.retry_budget = 0;
  cfg.llm.retry_budget_min = 1;
  cfg.performance.circuit_breaker.enabled = false;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto plan = json::parse(R"([{"id": 1, "action": "llm", "parameters": {"prompt": "one"}},
                             {"id": 2, "action": "llm", "parameters": {"prompt": "two"}}])");
  for (int run = 0; run < 2; ++run) {
    auto outcome = runtime.run_plan(plan, {}, dir.path());
    REQUIRE(outcome.problems.empty());
    INFO("run " << run);
    CHECK(outcome.result.metrics.retries == 1);          // the budget's one retry, in each run
    CHECK(outcome.result.metrics.retries_refused >= 1);  // the rest were refused, not made
  }
}
