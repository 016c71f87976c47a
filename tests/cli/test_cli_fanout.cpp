// for_each end to end (issue 14, part 4): the dagent CLI against the scripted test server — the
// list_dir → read_file per entry → llm per read → one report example, a planned for_each, record
// and replay, resume after a kill in the middle of a fan-out — and the live view's progress line.

#include <catch2/catch.hpp>

#include <sys/inotify.h>
#include <poll.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "cli/live_view.hpp"
#include "support/captured_file.hpp"
#include "support/process.hpp"
#include "support/test_server_process.hpp"
#include "support/scripted_prompts.hpp"

namespace {

using dagent::test::Captured;

namespace json = boost::json;
using dagent::test::rule;
namespace fs = std::filesystem;
using dagent::test::ChildProcess;
using dagent::test::ProcessResult;
using dagent::test::read_text;
using dagent::test::run_process;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

std::vector<std::string> env_for(const std::string& base_url) {
  return {"OPENAI_BASE_URL=" + base_url, "OPENAI_API_KEY=sk-fanout-test"};
}

ProcessResult run_dagent(const TempDir& dir, const std::string& base_url, std::vector<std::string> args) {
  args.insert(args.begin(), DAGENT_BINARY);
  return run_process(args, dir.path(), env_for(base_url));
}

// The example of the issue as a fixed plan: list a folder, read each file, summarize each read,
// then one report of the summaries, written to report.md.
constexpr const char* k_example_task = R"(workspace: ws
plan:
  - {id: 1, action: list_dir, parameters: {path: docs}}
  - {id: 2, action: read_file, for_each: "$step1.entries", parameters: {path: "$item.path"}}
  - {id: 3, action: llm, for_each: "$step2", parameters: {prompt: "Summarize file $index: $item.content"}}
  - {id: 4, action: llm, parameters: {prompt: "Report on these summaries: $step3"}}
  - {id: 5, action: write_file, parameters: {path: report.md, content: "$step4.text"}}
)";

json::object example_script() {
  return json::object{{"rules", json::array{rule("Summarize file", "a summary"), rule("Report on these", "the report")}}};
}

void write_docs(const TempDir& dir, int n) {
  for (int i = 0; i < n; ++i) dir.write("ws/docs/f" + std::to_string(i) + ".txt", "notes of file " + std::to_string(i));
}

int count_of(const std::string& text, std::string_view needle) {
  int n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Requests the server received whose body holds `needle`.
int requests_with(const TestServer& server, std::string_view needle) {
  int n = 0;
  const auto stats = server.stats();  // a named copy: a range-for would not keep the temporary alive
  for (const auto& r : stats.at("recent").as_array())
    n += std::string_view(r.at("body").as_string()).find(needle) != std::string_view::npos;
  return n;
}

json::array step_digest(const json::value& result) {
  json::array out;
  for (const auto& s : result.at("steps").as_array())
    out.push_back(json::object{{"id", s.at("id")}, {"status", s.at("status")}, {"output", s.at("output")}});
  return out;
}

}  // namespace

TEST_CASE("the for_each example runs: list_dir, read_file per entry, llm per read, one report", "[cli][fanout]") {
  TestServer server(TestServerOptions{.script = example_script()});
  TempDir dir;
  write_docs(dir, 4);
  dir.write("task.yaml", k_example_task);
  auto run = run_dagent(dir, server.base_url(), {"run", "task.yaml", "--json", "--record", "run.jsonl", "--trace", "trace.json"});
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  const auto result = json::parse(run.out);
  const auto& steps = result.at("steps").as_array();
  // read_file per entry, in the listing's order.
  const auto& reads = steps[1].at("output").as_array();
  REQUIRE(reads.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) CHECK(reads[i].at("content") == json::value("notes of file " + std::to_string(i)));
  const auto& items = steps[1].at("items").as_array();
  REQUIRE(items.size() == 4);
  CHECK(items[2].at("index") == 2);
  CHECK(items[2].at("status") == "succeeded");
  CHECK(items[2].at("attempts") == 1);
  CHECK(items[2].at("duration_ms").is_number());
  CHECK_FALSE(items[2].as_object().contains("error"));
  CHECK(steps[2].at("output").as_array().size() == 4);
  CHECK(steps[2].at("output").as_array()[3].at("text") == "a summary");
  CHECK_FALSE(steps[0].as_object().contains("items"));  // only for_each steps list items
  CHECK(read_text(dir.path() / "ws/report.md") == "the report");
  // Each file's summary was asked once, with its own index and content.
  for (int i = 0; i < 4; ++i)
    CHECK(requests_with(server, "Summarize file " + std::to_string(i) + ": notes of file " + std::to_string(i)) == 1);
  CHECK(result.at("metrics").at("llm_calls") == 5);

  // The trace has a span per item; the recording a tool call per item, with its index.
  const auto trace = json::parse(read_text(dir.path() / "trace.json"));
  int item_spans = 0;
  for (const auto& e : trace.at("traceEvents").as_array())
    item_spans += e.as_object().contains("cat") && e.at("cat") == "item";
  CHECK(item_spans == 8);
  const auto recording = read_text(dir.path() / "run.jsonl");
  CHECK(count_of(recording, "\"type\":\"tool\",\"step\":2,") == 4);
  CHECK(count_of(recording, "\"item\":3,\"output\"") == 2);  // steps 2 and 3

  SECTION("replayed with --replay-tools: the items are answered from the recording") {
    fs::remove_all(dir.path() / "ws/docs");  // a re-run list_dir or read_file would fail now
    fs::remove(dir.path() / "ws/report.md");
    auto replayed = run_dagent(dir, "http://127.0.0.1:9/v1",
                               {"run", "task.yaml", "--json", "--replay", "run.jsonl", "--replay-tools"});
    INFO(replayed.err);
    REQUIRE(replayed.exit_code == 0);
    CHECK(step_digest(json::parse(replayed.out)) == step_digest(result));
    CHECK_FALSE(fs::exists(dir.path() / "ws/report.md"));  // write_file was answered, not run
  }
}

TEST_CASE("a goal is planned with for_each by the model and runs", "[cli][fanout]") {
  const char* plan = R"({"steps": [
    {"id": 1, "action": "list_dir", "parameters": {"path": "docs"}},
    {"id": 2, "action": "read_file", "for_each": "$step1.entries", "parameters": {"path": "$item.path"}},
    {"id": 3, "action": "llm", "for_each": "$step2", "parameters": {"prompt": "Summarize file $index: $item.content"}},
    {"id": 4, "action": "llm", "parameters": {"prompt": "Report on these summaries: $step3"}}]})";
  json::array rules{rule("intent analyser", R"({"intent": "summarize every file", "tools": []})"),
                    rule("Write a plan for the goal", plan), rule("Summarize file", "a summary"),
                    rule("Report on these", "the report"), rule("final answer of dagent", "Done: the report.")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", std::move(rules)}}});
  TempDir dir;
  write_docs(dir, 3);
  dir.write("task.yaml", "goal: Summarize every file under docs/ and report\nworkspace: ws\n");
  // Whole and streamed (the same reader feeds the incremental analysis: steps start as they arrive).
  const bool streamed = GENERATE(false, true);
  auto run = run_dagent(dir, server.base_url(),
                        {"run", "task.yaml", "--json", "--set", std::string("planner.stream_plan=") + (streamed ? "true" : "false")});
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  const auto result = json::parse(run.out);
  CHECK(result.at("steps").as_array()[2].at("output").as_array().size() == 3);
  CHECK(result.at("steps").as_array()[2].at("items").as_array().size() == 3);
  // The planner's prompt taught the form, and its schema admits it.
  CHECK(requests_with(server, "for_each") >= 1);
  CHECK(requests_with(server, "\\\"for_each\\\":{\\\"type\\\"") + requests_with(server, "\"for_each\":{\"type\"") >= 1);
}

TEST_CASE("resume after a kill in the middle of a fan-out re-runs only the unfinished items", "[cli][fanout][record]") {
  // SIGKILL: at once, mid-write if it so happens; SIGINT: Ctrl-C, the running items are cancelled.
  const int signal = GENERATE(SIGKILL, SIGINT);
  // Items a0..a5 answer at once; z6..z8 take 20 s, so the kill lands while they run.
  json::array slow_rules{json::object{{"path", "/v1/chat/completions"}, {"contains", "docs/z"}, {"latency_ms", 20000},
                                      {"reply", "late"}},
                         rule("item-marker", "early")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", slow_rules}}});
  TempDir dir;
  for (int i = 0; i < 6; ++i) dir.write("ws/docs/a" + std::to_string(i) + ".txt", "x");
  for (int i = 6; i < 9; ++i) dir.write("ws/docs/z" + std::to_string(i) + ".txt", "x");
  dir.write("task.yaml", R"(workspace: ws
plan:
  - {id: 1, action: list_dir, parameters: {path: docs}}
  - {id: 2, action: llm, for_each: "$step1.entries", parameters: {prompt: "item-marker $item.path #$index"}}
  - {id: 3, action: write_file, parameters: {path: out.txt, content: "all: $step2"}}
)");
  const int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  REQUIRE(watch >= 0);
  REQUIRE(inotify_add_watch(watch, dir.path().c_str(), IN_MODIFY | IN_MOVED_TO) >= 0);
  ChildProcess child({DAGENT_BINARY, "run", "task.yaml", "--record", "run.jsonl"}, dir.path(), env_for(server.base_url()));
  // Wait (on inotify, not a timer) until the six fast items are recorded, then send the signal.
  while (count_of(read_text(dir.path() / "run.jsonl"), "\"type\":\"tool\",\"step\":2,") < 6) {
    pollfd p{watch, POLLIN, 0};
    REQUIRE(poll(&p, 1, 60000) == 1);
    char buf[4096];
    while (read(watch, buf, sizeof buf) > 0) {
    }
  }
  close(watch);
  child.kill(signal);
  CHECK(child.wait().exit_code == (signal == SIGKILL ? 128 + SIGKILL : 1));
  for (int i = 0; i < 6; ++i) CHECK(requests_with(server, "docs/a" + std::to_string(i) + ".txt") == 1);

  server.set_script(json::object{{"rules", json::array{rule("item-marker", "early")}}});
  auto resumed = run_dagent(dir, server.base_url(), {"run", "--resume", "run.jsonl", "--json"});
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  const auto result = json::parse(resumed.out);
  const auto& fan = result.at("steps").as_array()[1];
  REQUIRE(fan.at("output").as_array().size() == 9);
  for (const auto& out : fan.at("output").as_array()) CHECK(out.at("text") == "early");
  // The finished items were not asked again; the unfinished ones were (once or twice: the killed
  // run's request may have reached the server).
  for (int i = 0; i < 6; ++i) CHECK(requests_with(server, "docs/a" + std::to_string(i) + ".txt") == 1);
  for (int i = 6; i < 9; ++i) {
    CHECK(requests_with(server, "docs/z" + std::to_string(i) + ".txt") >= 1);
    CHECK(requests_with(server, "docs/z" + std::to_string(i) + ".txt") <= 2);
  }
  const auto& items = fan.at("items").as_array();
  for (std::size_t i = 0; i < 6; ++i) CHECK(items[i].at("attempts") == 0);  // kept
  for (std::size_t i = 6; i < 9; ++i) CHECK(items[i].at("attempts") == 1);
  CHECK(read_text(dir.path() / "ws/out.txt").find("all: [") == 0);
  CHECK(read_text(dir.path() / "run.jsonl").find("\"type\":\"end\"") != std::string::npos);
}

TEST_CASE("the live view shows a fan-out as one progress line, not a line per item", "[cli][fanout][live_view]") {
  using dagent::cli::LiveView;
  using namespace dagent;
  auto item_event = [](int item, StepStatus status, int done, int failed, std::string_view message = {}) {
    StepEvent ev{3, "read_file", status, VerificationStatus::not_requested, 1, 10.0 + item, message};
    ev.item = item;
    ev.items = 500;
    ev.items_done = done;
    ev.items_failed = failed;
    return ev;
  };
  RunResult skeleton;
  skeleton.run_id = "r1";
  skeleton.task = "t";
  skeleton.levels = {{3}};
  for (auto mode : {LiveView::Mode::terminal, LiveView::Mode::lines}) {
    Captured out;
    REQUIRE(out.file);
    LiveView view(mode, out.file, out.file);
    view.start(skeleton);
    StepEvent started{3, "read_file", StepStatus::running, VerificationStatus::not_requested, 0, 1.0, {}};
    started.items = 500;
    view.on_event(started);
    int done = 0, failed = 0;
    for (int i = 0; i < 120; ++i) {
      view.on_event(item_event(i, StepStatus::running, done, failed));
      const bool fails = i == 7;
      failed += fails;
      view.on_event(item_event(i, fails ? StepStatus::failed : StepStatus::succeeded, ++done, failed,
                               fails ? "no such file" : ""));
    }
    // A forced redraw (the next step line) shows the progress.
    view.on_planning(PlanningEvent{PlanningPhase::replan, false, 200.0, {}});
    const auto text = out.text();
    INFO(text);
    CHECK(text.find("step 3 read_file item 7: failed: no such file") != std::string::npos);
    CHECK(count_of(text, "\n") < 20);  // no line per item
    if (mode == LiveView::Mode::terminal) {
      CHECK(text.find("step 3 read_file ×500: 120/500 done, 1 failed") != std::string::npos);
    } else {
      CHECK(text.find("step 3 read_file ×500: 100/500 done, 1 failed") != std::string::npos);
    }
  }
}
