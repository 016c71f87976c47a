// Record, replay and resume end to end: the dagent CLI against the scripted test server, then
// offline from the recording, and a run killed with SIGKILL finished with --resume.

#include <catch2/catch.hpp>

#include <sys/inotify.h>
#include <poll.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <chrono>
#include <fstream>
#include <thread>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "support/process.hpp"
#include "support/test_server_process.hpp"
#include "support/scripted_prompts.hpp"

namespace {

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

constexpr const char* k_key = "sk-RECORD-SENTINEL-4242";

std::vector<std::string> env_for(const std::string& base_url) {
  return {"OPENAI_BASE_URL=" + base_url, std::string("OPENAI_API_KEY=") + k_key};
}

ProcessResult run_dagent(const TempDir& dir, const std::string& base_url, std::vector<std::string> args) {
  args.insert(args.begin(), DAGENT_BINARY);
  return run_process(args, dir.path(), env_for(base_url));
}

// A goal run: intent, a plan of parallel reads and llm steps, a verified step, a streamed answer.
json::object goal_script() {
  const char* plan = R"({"steps": [
    {"id": 1, "action": "read_file", "parameters": {"path": "a.txt"}},
    {"id": 2, "action": "read_file", "parameters": {"path": "b.txt"}},
    {"id": 3, "action": "llm", "parameters": {"prompt": "Summarize: $step1.content"}, "verify": "It is a summary"},
    {"id": 4, "action": "llm", "parameters": {"prompt": "Summarize: $step2.content"}},
    {"id": 5, "action": "write_file", "parameters": {"path": "out.md", "content": "$step3.text / $step4.text"}}]})";
  json::array rules{rule("intent analyser", R"({"intent": "summarize two files", "tools": []})"),
                    rule("Write a plan for the goal", plan),
                    rule("\"verdict\"", R"({"passed": true, "reason": "a summary"})"),
                    json::object{{"contains", "final answer of dagent"},
                                 {"stream_chunks", json::array{"Both files ", "were summarized ", "into out.md."}},
                                 {"stream_interval_ms", 40}}};
  return json::object{{"rules", std::move(rules)}};
}

void write_goal_task(const TempDir& dir) {
  dir.write("ws/a.txt", "alpha notes");
  dir.write("ws/b.txt", "beta notes");
  dir.write("task.yaml", "goal: Summarize a.txt and b.txt into out.md\nworkspace: ws\n");
}

// What must be equal between a run and its replay: per step, status, verification and output.
json::array step_digest(const json::value& result) {
  json::array out;
  for (const auto& s : result.at("steps").as_array())
    out.push_back(json::object{{"id", s.at("id")},
                               {"status", s.at("status")},
                               {"verification", s.at("verification").at("status")},
                               {"output", s.at("output")}});
  return out;
}

// Waits until the server has received a request whose body holds `needle` (the observable event
// a signal is sent on); polls the server's log, fails after a minute.
void wait_for_request(const TestServer& server, std::string_view needle) {
  for (int i = 0; i < 12000; ++i) {
    const auto stats = server.stats();
    for (const auto& r : stats.at("recent").as_array())
      if (std::string_view(r.at("body").as_string()).find(needle) != std::string_view::npos) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  FAIL("the server never received a request containing " << needle);
}

std::int64_t connections(const TestServer& server) {
  return server.stats().at("connections_accepted").to_number<std::int64_t>();
}

}  // namespace

TEST_CASE("a recorded goal run replays offline with identical steps and answer", "[cli][record]") {
  TestServer server(TestServerOptions{.script = goal_script()});
  TempDir dir;
  write_goal_task(dir);
  auto live = run_dagent(dir, server.base_url(), {"run", "task.yaml", "--json", "--record", "run.jsonl"});
  INFO(live.err);
  REQUIRE(live.exit_code == 0);
  const auto recorded = json::parse(live.out);
  const auto recording = read_text(dir.path() / "run.jsonl");
  // The key never reaches the recording, nor any header that carries it.
  CHECK(recording.find(k_key) == std::string::npos);
  CHECK(recording.find("Bearer") == std::string::npos);
  CHECK(recording.find("uthorization") == std::string::npos);
  CHECK(recording.rfind("{\"type\":\"header\"", 0) == 0);
  CHECK(recording.find("\"type\":\"end\"") != std::string::npos);

  const auto before = connections(server);
  fs::remove(dir.path() / "ws/out.md");
  SECTION("dagent replay, tools re-run, the model unreachable") {
    auto replayed = run_dagent(dir, "http://127.0.0.1:9/v1", {"replay", "run.jsonl", "--json", "--replay-timing", "instant"});
    INFO(replayed.err);
    REQUIRE(replayed.exit_code == 0);
    const auto result = json::parse(replayed.out);
    CHECK(step_digest(result) == step_digest(recorded));
    CHECK(result.at("answer") == recorded.at("answer"));
    CHECK(result.at("metrics").at("llm_calls") == recorded.at("metrics").at("llm_calls"));
    CHECK(result.at("metrics").at("connections_opened") == 0);
    CHECK(fs::exists(dir.path() / "ws/out.md"));  // the write_file tool ran again
    CHECK(connections(server) == before);          // nothing reached the server
  }
  SECTION("run --replay with --replay-tools serves the tools from the recording") {
    fs::remove(dir.path() / "ws/a.txt");  // a re-run read_file would fail now
    auto replayed = run_dagent(dir, server.base_url(),
                           {"run", "task.yaml", "--json", "--replay", "run.jsonl", "--replay-tools"});
    INFO(replayed.err);
    REQUIRE(replayed.exit_code == 0);
    CHECK(step_digest(json::parse(replayed.out)) == step_digest(recorded));
    CHECK_FALSE(fs::exists(dir.path() / "ws/out.md"));  // write_file was answered, not run
    CHECK(connections(server) == before);
  }
  SECTION("a request the recording does not hold names the closest one and the difference") {
    dir.write("task.yaml", "goal: Summarize a.txt and c.txt into out.md\nworkspace: ws\n");
    auto replayed = run_dagent(dir, server.base_url(), {"run", "task.yaml", "--replay", "run.jsonl"});
    CHECK(replayed.exit_code != 0);
    CHECK_THAT(replayed.err, Catch::Contains("no recorded") && Catch::Contains("closest recorded request") &&
                                 Catch::Contains("b.txt") && Catch::Contains("c.txt"));
    CHECK(connections(server) == before);
  }
}

TEST_CASE("a speculative planning, plan discarded and redone, replays offline", "[cli][record][intent]") {
  // The intent allows only read_file; the plan call offered every tool (its body describes
  // list_dir) plans with list_dir, streamed, then stalls: the intent discards it mid-stream.
  const bool streamed = GENERATE(true, false);
  INFO("streamed " << streamed);
  const char* reads = R"({"steps": [{"id": 1, "action": "read_file", "parameters": {"path": "a.txt"}},
    {"id": 2, "action": "read_file", "parameters": {"path": "b.txt"}}]})";
  json::object guess{{"path", "/v1/chat/completions"}, {"contains", "- list_dir: "}};
  if (streamed) {  // one event with the first step, then nothing until the client gives up the call
    guess["stream_events"] = json::array{
        R"(data: {"choices": [{"index": 0, "delta": {"content": "{\"steps\": [{\"id\": 1, \"action\": \"list_dir\", \"parameters\": {}},"}}]})"
        "\n\n"};
    guess["fault"] = "stall";
  } else {
    guess["reply"] = R"({"steps": [{"id": 1, "action": "list_dir", "parameters": {"path": "."}}]})";
  }
  json::array rules{rule("intent analyser", R"({"intent": "read two files", "tools": ["read_file"]})"), guess,
                    rule("Write a plan for the goal", reads), rule("final answer of dagent", "alpha and beta")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_goal_task(dir);
  dir.write("config.yaml", std::string("planner:\n  intent_mode: speculative\n  stream_plan: ") +
                               (streamed ? "true" : "false") + "\n");
  auto live = run_dagent(dir, server.base_url(), {"run", "task.yaml", "--json", "--record", "run.jsonl"});
  INFO(live.err);
  REQUIRE(live.exit_code == 0);
  const auto recorded = json::parse(live.out);
  CHECK(recorded.at("planning").at("intent") == "read two files");
  auto replayed = run_dagent(dir, "http://127.0.0.1:9/v1", {"replay", "run.jsonl", "--json", "--replay-timing", "instant"});
  INFO(replayed.err);
  REQUIRE(replayed.exit_code == 0);
  const auto result = json::parse(replayed.out);
  CHECK(step_digest(result) == step_digest(recorded));
  CHECK(result.at("planning") == recorded.at("planning"));
  CHECK(result.at("plan") == recorded.at("plan"));
  CHECK(result.at("answer") == recorded.at("answer"));
}

TEST_CASE("a recording without planner.intent_mode replays with the intent call before the plan call",
          "[cli][record][intent]") {
  // Recorded before the key existed: the plan request names the intent, so a speculative replay
  // (plan call without it) would find no recorded match.
  TestServer server(TestServerOptions{.script = goal_script()});
  TempDir dir;
  write_goal_task(dir);
  dir.write("config.yaml", "planner:\n  intent_mode: sequential\n  stream_plan: false\n");
  auto live = run_dagent(dir, server.base_url(), {"run", "task.yaml", "--json", "--record", "run.jsonl"});
  INFO(live.err);
  REQUIRE(live.exit_code == 0);
  // The recording as an older dagent wrote it: no intent_mode in its effective config.
  std::string recording = read_text(dir.path() / "run.jsonl");
  const std::string key = "\"intent_mode\":\"sequential\",";
  const auto at = recording.find(key);
  REQUIRE(at != std::string::npos);
  recording.erase(at, key.size());
  dir.write("run.jsonl", recording);
  dir.write("config.yaml", "planner:\n  stream_plan: false\n");  // today's default mode
  auto replayed = run_dagent(dir, "http://127.0.0.1:9/v1", {"replay", "run.jsonl", "--json", "--replay-timing", "instant"});
  INFO(replayed.err);
  REQUIRE(replayed.exit_code == 0);
  CHECK(step_digest(json::parse(replayed.out)) == step_digest(json::parse(live.out)));
}

TEST_CASE("a run killed or interrupted is finished by --resume without re-running finished steps", "[cli][record]") {
  const int signal = GENERATE(SIGKILL, SIGINT);
  // Steps 1-3 answer at once; step 4 takes 20 s on the server, so the kill lands while it runs.
  json::array rules{rule("first-marker", "one"), rule("second-marker", "two"), rule("third-marker", "three"),
                    json::object{{"path", "/v1/chat/completions"}, {"contains", "slow-marker"}, {"latency_ms", 20000},
                                 {"reply", "four"}}};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: llm, parameters: {prompt: "first-marker"}}
  - {id: 2, action: llm, parameters: {prompt: "second-marker"}}
  - {id: 3, action: llm, parameters: {prompt: "third-marker $step1.text $step2.text"}}
  - {id: 4, action: llm, parameters: {prompt: "slow-marker $step3.text"}}
  - {id: 5, action: write_file, parameters: {path: out.txt, content: "$step3.text $step4.text"}}
)");
  // The folder is watched: the recording appears there (renamed into place) once the run starts.
  const int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  REQUIRE(watch >= 0);
  REQUIRE(inotify_add_watch(watch, dir.path().c_str(), IN_MODIFY | IN_MOVED_TO) >= 0);
  ChildProcess child({DAGENT_BINARY, "run", "task.yaml", "--record", "run.jsonl"}, dir.path(), env_for(server.base_url()));
  // Wait (on inotify, not a timer) until step 4 has started, then kill the process (SIGKILL: at
  // once, mid-write if it so happens; SIGINT: Ctrl-C, the run stops cleanly and says so).
  while (read_text(dir.path() / "run.jsonl").find("\"step\":4,\"action\":\"llm\",\"status\":\"running\"") ==
         std::string::npos) {
    pollfd p{watch, POLLIN, 0};
    REQUIRE(poll(&p, 1, 60000) == 1);
    char buf[4096];
    while (read(watch, buf, sizeof buf) > 0) {
    }
  }
  close(watch);
  child.kill(signal);
  CHECK(child.wait().exit_code == (signal == SIGKILL ? 128 + SIGKILL : 1));
  // A torn last line, as a crash in the middle of a write would leave.
  {
    std::ofstream out(dir.path() / "run.jsonl", std::ios::app);
    out << R"({"type":"tool","step":4,"act)";
  }

  server.set_script(json::object{{"rules", json::array{rule("first-marker", "one"), rule("second-marker", "two"),
                                                        rule("third-marker", "three"), rule("slow-marker", "four")}}});
  auto resumed = run_dagent(dir, server.base_url(), {"run", "--resume", "run.jsonl", "--json"});
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  const auto result = json::parse(resumed.out);
  CHECK(read_text(dir.path() / "out.txt") == "three four");
  // Steps 1-3 were asked of the model once, in the killed run; step 4 again by the resumed run
  // (the killed run's request may or may not have left the process before the kill).
  const auto stats = server.stats();
  int first = 0, third = 0, slow = 0;
  for (const auto& r : stats.at("recent").as_array()) {
    const std::string body(r.at("body").as_string());
    first += body.find("first-marker") != std::string::npos;
    third += body.find("third-marker") != std::string::npos && body.find("slow-marker") == std::string::npos;
    slow += body.find("slow-marker") != std::string::npos;
  }
  CHECK(first == 1);
  CHECK(third == 1);
  CHECK(slow >= 1);
  CHECK(slow <= 2);
  CHECK(result.at("steps").as_array()[3].at("output").at("text") == "four");

  // The result equals an uninterrupted run's.
  TempDir fresh;
  fresh.write("task.yaml", read_text(dir.path() / "task.yaml"));
  auto whole = run_dagent(fresh, server.base_url(), {"run", "task.yaml", "--json"});
  REQUIRE(whole.exit_code == 0);
  CHECK(step_digest(result) == step_digest(json::parse(whole.out)));
  // The resumed run kept recording into the same file, and it now ends.
  const auto recording = read_text(dir.path() / "run.jsonl");
  CHECK(recording.find("\"type\":\"resume\"") != std::string::npos);
  CHECK(recording.find("\"type\":\"end\"") != std::string::npos);
  // Resuming a finished run is refused.
  auto again = run_dagent(dir, server.base_url(), {"run", "--resume", "run.jsonl"});
  CHECK(again.exit_code == 2);
  CHECK_THAT(again.err, Catch::Contains("nothing to resume"));
}

TEST_CASE("the bundled example recording replays offline", "[cli][record]") {
  // A copy, so the run writes its report outside the source tree. A failure here means a prompt,
  // a tool description or the example changed: re-record with scripts/record-example.sh.
  TempDir dir;
  fs::copy(fs::path(DAGENT_SOURCE_DIR) / "examples/review", dir.path() / "review", fs::copy_options::recursive);
  fs::remove_all(dir.path() / "review/.dagent");
  fs::remove(dir.path() / "review/out/report.md");
  auto r = run_process({DAGENT_BINARY, "replay", "review/recording.jsonl", "--replay-timing", "instant", "--json"},
                       dir.path(), {"OPENAI_BASE_URL=http://127.0.0.1:9/v1", "OPENAI_API_KEY="});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto result = json::parse(r.out);
  CHECK(result.at("steps").as_array().size() == 13);
  for (const auto& s : result.at("steps").as_array()) CHECK(s.at("status") == "succeeded");
  CHECK(result.at("metrics").at("connections_opened") == 0);
  CHECK_THAT(read_text(dir.path() / "review/out/report.md"), Catch::Contains("## Cross-cutting risks"));
  CHECK_FALSE(fs::exists(dir.path() / "review/.dagent"));  // the replay left no memory behind
}

TEST_CASE("interrupt_exits_130_without_result: Ctrl-C during planning prints the result, exits 1, ends the recording",
          "[cli][record]") {
  // The planning call never gets its reply; Ctrl-C lands once the server has it. Before: _Exit(130),
  // no result, no end line.
  json::array rules{rule("intent analyser", R"({"intent": "x", "tools": []})"),
                    json::object{{"path", "/v1/chat/completions"}, {"contains", "Write a plan for the goal"},
                                 {"fault", "stall"}}};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_goal_task(dir);
  ChildProcess child({DAGENT_BINARY, "run", "task.yaml", "--json", "--record", "run.jsonl"}, dir.path(),
                     env_for(server.base_url()));
  wait_for_request(server, "Write a plan for the goal");
  child.kill(SIGINT);
  auto done = child.wait();
  INFO(done.err);
  CHECK(done.exit_code == 1);
  const auto result = json::parse(done.out);
  CHECK(result.at("status") == "failed");
  CHECK(result.at("error") == "interrupted");
  CHECK(result.at("steps").as_array().empty());
  CHECK(read_text(dir.path() / "run.jsonl").find("\"type\":\"end\"") != std::string::npos);
}

TEST_CASE("streamed_plan_invalid_after_steps_ran: the result lists what ran, exit 1, the recording ends",
          "[cli][record]") {
  // Step 1 writes a file as soon as it streams in; step 2 names no tool. Before: exit 2 "invalid
  // input, nothing was run" although out.txt was written, no result, no end line.
  json::array chunks{R"({"steps": [{"id": 1, "action": "write_file", "parameters": {"path": "out.txt", "content": "x"}},)",
                     R"( {"id": 2, "action": "nope", "parameters": {}}]})"};
  json::array rules{rule("intent analyser", R"({"intent": "x", "tools": []})"),
                    json::object{{"path", "/v1/chat/completions"}, {"contains", "Write a plan for the goal"},
                                 {"stream_chunks", chunks}, {"stream_interval_ms", 50}},
                    rule("cannot run. Fix every problem", R"({"steps": [{"id": 1, "action": "read_file", "parameters": {"path": "a.txt"}}]})"),
                    rule("final answer of dagent", "done")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_goal_task(dir);
  // With a replan allowed the plan is replanned over step 1 (see the next test).
  auto r = run_dagent(dir, server.base_url(),
                      {"run", "task.yaml", "--json", "--record", "run.jsonl", "--set", "planner.stream_plan=true",
                       "--set", "planner.max_replans=0"});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  const auto result = json::parse(r.out);
  CHECK(result.at("status") == "failed");
  CHECK_THAT(std::string(result.at("error").as_string()),
             Catch::Contains("invalid after its first steps ran") && Catch::Contains("nope"));
  REQUIRE(result.at("steps").as_array().size() == 1);
  CHECK(result.at("steps").as_array()[0].at("id") == 1);
  CHECK(fs::exists(dir.path() / "ws/out.txt"));
  CHECK(read_text(dir.path() / "run.jsonl").find("\"type\":\"end\"") != std::string::npos);
}

TEST_CASE("streamed_invalid_replanned_replays: a streamed plan replanned over its first steps replays offline",
          "[cli][record][streamfix]") {
  // Step 1 writes a file as soon as it streams in; step 2 names no tool: the plan is replanned
  // over step 1, whose result the new step reads.
  json::array chunks{R"({"steps": [{"id": 1, "action": "write_file", "parameters": {"path": "out.txt", "content": "x1"}},)",
                     R"( {"id": 2, "action": "nope", "parameters": {}}]})"};
  json::array rules{rule("intent analyser", R"({"intent": "x", "tools": []})"),
                    json::object{{"path", "/v1/chat/completions"}, {"contains", "Write a plan for the goal"},
                                 {"stream_chunks", chunks}, {"stream_interval_ms", 50}},
                    rule("Write only the NEW steps",
                         R"({"steps": [{"id": 2, "action": "read_file", "parameters": {"path": "out.txt"}, "dependencies": [1]}]})"),
                    rule("final answer of dagent", "out.txt holds x1")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  write_goal_task(dir);
  auto live = run_dagent(dir, server.base_url(), {"run", "task.yaml", "--json", "--record", "run.jsonl"});
  INFO(live.err);
  REQUIRE(live.exit_code == 0);
  const auto recorded = json::parse(live.out);
  CHECK(recorded.at("planning").at("replans") == 1);
  REQUIRE(recorded.at("steps").as_array().size() == 2);
  CHECK(recorded.at("steps").as_array()[1].at("output").at("content") == "x1");
  CHECK(recorded.at("plan").as_array().size() == 2);
  const auto recording = read_text(dir.path() / "run.jsonl");
  CHECK(recording.find("\"type\":\"plan\"") != std::string::npos);  // the replanned plan
  CHECK(recording.find("\"type\":\"end\"") != std::string::npos);

  fs::remove(dir.path() / "ws/out.txt");
  auto replayed = run_dagent(dir, "http://127.0.0.1:9/v1", {"replay", "run.jsonl", "--json", "--replay-timing", "instant"});
  INFO(replayed.err);
  REQUIRE(replayed.exit_code == 0);
  const auto result = json::parse(replayed.out);
  CHECK(step_digest(result) == step_digest(recorded));
  CHECK(result.at("answer") == recorded.at("answer"));
  CHECK(result.at("planning").at("replans") == 1);
  CHECK(result.at("metrics").at("connections_opened") == 0);
  CHECK(read_text(dir.path() / "ws/out.txt") == "x1");
}

TEST_CASE("replay_ignores_set_overrides: a replay runs with the recorded effective config", "[cli][record]") {
  // planner.max_replans=0 changes the answer prompt; a replay that ran the default config asked for
  // a request the recording does not hold.
  TestServer server(TestServerOptions{.script = goal_script()});
  TempDir dir;
  write_goal_task(dir);
  auto live = run_dagent(dir, server.base_url(),
                         {"run", "task.yaml", "--json", "--record", "run.jsonl", "--set", "planner.max_replans=0"});
  INFO(live.err);
  REQUIRE(live.exit_code == 0);
  const auto recorded = json::parse(live.out);
  CHECK(read_text(dir.path() / "run.jsonl").find("\"effective_config\"") != std::string::npos);
  auto replayed = run_dagent(dir, "http://127.0.0.1:9/v1", {"replay", "run.jsonl", "--json", "--replay-timing", "instant"});
  INFO(replayed.err);
  REQUIRE(replayed.exit_code == 0);
  const auto result = json::parse(replayed.out);
  CHECK(step_digest(result) == step_digest(recorded));
  CHECK(result.at("answer") == recorded.at("answer"));
}

TEST_CASE("resume_reuses_stale_outputs: --resume refuses another task, a changed plan or a changed config",
          "[cli][record]") {
  TestServer server(TestServerOptions{.script = json::object{{"rules", json::array{rule("first-marker", "one")}}}});
  TempDir dir;
  const std::string plan = R"(workspace: .
plan:
  - {id: 1, action: llm, parameters: {prompt: "first-marker"}}
  - {id: 2, action: read_file, parameters: {path: later.txt}, dependencies: [1]}
)";
  dir.write("task.yaml", plan);
  auto first = run_dagent(dir, server.base_url(), {"run", "task.yaml", "--record", "run.jsonl"});
  REQUIRE(first.exit_code == 1);  // later.txt does not exist yet
  const auto recording = read_text(dir.path() / "run.jsonl");
  std::vector<std::string> args{"run", "--resume", "run.jsonl"};
  std::vector<std::string> expected;
  SECTION("a changed plan: another prompt for step 1") {
    dir.write("task.yaml", std::string(R"(workspace: .
plan:
  - {id: 1, action: llm, parameters: {prompt: "other-marker"}}
  - {id: 2, action: read_file, parameters: {path: later.txt}, dependencies: [1]}
)"));
    expected = {"plan changed", "step 1: parameters"};
  }
  SECTION("another action for the same id") {
    dir.write("task.yaml", std::string(R"(workspace: .
plan:
  - {id: 1, action: read_file, parameters: {path: task.yaml}}
  - {id: 2, action: read_file, parameters: {path: later.txt}, dependencies: [1]}
)"));
    expected = {"plan changed", "step 1: action \"llm\" -> \"read_file\""};
  }
  SECTION("another task") {
    dir.write("other.yaml", plan);
    args = {"run", "other.yaml", "--resume", "run.jsonl"};
    expected = {"another task"};
  }
  SECTION("a changed config") {
    args.insert(args.end(), {"--set", "executor.step_retries=1"});
    expected = {"config changed", "executor.step_retries (0 -> 1)"};
  }
  dir.write("later.txt", "now here");
  auto resumed = run_dagent(dir, server.base_url(), args);
  INFO(resumed.err);
  CHECK(resumed.exit_code == 2);
  for (const auto& e : expected) CHECK_THAT(resumed.err, Catch::Contains(e));
  CHECK(read_text(dir.path() / "run.jsonl") == recording);  // refused before anything was appended
}

TEST_CASE("resume of an unchanged task keeps its finished steps", "[cli][record]") {
  TestServer server(TestServerOptions{.script = json::object{{"rules", json::array{rule("first-marker", "one")}}}});
  TempDir dir;
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: llm, parameters: {prompt: "first-marker"}}
  - {id: 2, action: read_file, parameters: {path: later.txt}, dependencies: [1]}
)");
  REQUIRE(run_dagent(dir, server.base_url(), {"run", "task.yaml", "--record", "run.jsonl"}).exit_code == 1);
  dir.write("later.txt", "now here");
  auto resumed = run_dagent(dir, server.base_url(), {"run", "--resume", "run.jsonl", "--json"});
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK(server.requests_to("/v1/chat/completions") == 1);  // step 1 was not asked again
}
