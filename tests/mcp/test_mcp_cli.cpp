// MCP end to end: `dagent run` plans against the real MCP servers from npm (server-everything,
// server-filesystem), faulty servers from tests/mcp/faulty_server.mjs, a goal planned by the
// scripted model server, record and replay, and `dagent mcp list`.

#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "support/node_server_process.hpp"
#include "support/process.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using dagent::test::ChildProcess;
using dagent::test::ProcessResult;
using dagent::test::read_text;
using dagent::test::run_process;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

const std::string k_everything = DAGENT_SOURCE_DIR "/tests/mcp/node_modules/.bin/mcp-server-everything";
const std::string k_filesystem = DAGENT_SOURCE_DIR "/tests/mcp/node_modules/.bin/mcp-server-filesystem";
const std::string k_faulty = DAGENT_SOURCE_DIR "/tests/mcp/faulty_server.mjs";
const std::string k_tee = DAGENT_SOURCE_DIR "/tests/mcp/tee_server.sh";

// `everything` is server-everything over stdio; `extra` adds server entries (YAML lines).
void write_config(const TempDir& dir, const std::string& extra = {}, const std::string& more_yaml = {}) {
  dir.write("config.yaml", "mcp:\n  servers:\n    everything: {command: [\"" + k_everything + "\", stdio]}\n" +
                               extra + more_yaml);
}

ProcessResult run_dagent(const TempDir& dir, std::vector<std::string> args, std::vector<std::string> env = {}) {
  args.insert(args.begin(), DAGENT_BINARY);
  return run_process(args, dir.path(), env);
}

const json::object& step(const json::value& result, int index) { return result.at("steps").as_array().at(index).as_object(); }

std::size_t count(const std::string& text, std::string_view needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Waits (on inotify, not a timer) until `file` in `dir` holds `needle`; fails after a minute
// without any change.
void wait_for_text(const fs::path& dir, const fs::path& file, std::string_view needle) {
  const int watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  REQUIRE(watch >= 0);
  REQUIRE(inotify_add_watch(watch, dir.c_str(), IN_MODIFY | IN_MOVED_TO | IN_CREATE | IN_CLOSE_WRITE) >= 0);
  while (!fs::exists(file) || read_text(file).find(needle) == std::string::npos) {
    pollfd p{watch, POLLIN, 0};
    if (poll(&p, 1, 60000) != 1) {
      close(watch);
      FAIL("no '" << needle << "' in " << file << " after a minute");
    }
    char buf[4096];
    while (read(watch, buf, sizeof buf) > 0) {
    }
  }
  close(watch);
}

// True once process `pid` is gone (waits on a pidfd, at most a minute).
bool gone(pid_t pid) {
  const int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  pollfd p{fd, POLLIN, 0};
  const bool exited = poll(&p, 1, 60000) == 1;
  close(fd);
  return exited;
}

// The processes of group `pgid` still running (zombies, which only wait for a parent to reap
// them, do not count).
std::vector<pid_t> running_in_group(pid_t pgid) {
  std::vector<pid_t> out;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat;
    try {
      stat = read_text(entry.path() / "stat");
    } catch (...) {
      continue;  // gone meanwhile
    }
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0, pgrp = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d %d", &state, &ppid, &pgrp) != 3) continue;
    if (pgrp == pgid && state != 'Z' && state != 'X') out.push_back(std::stoi(name));
  }
  return out;
}

// True once group `pgid` has nothing left running: a group killed at once still takes a moment
// to die member by member, so each member still running is waited for (pidfd, a minute at most).
bool group_ends(pid_t pgid) {
  for (;;) {
    const auto left = running_in_group(pgid);
    if (left.empty()) return true;
    for (const pid_t pid : left)
      if (!gone(pid)) return false;
  }
}

pid_t pid_in(const fs::path& file) { return static_cast<pid_t>(std::stol(read_text(file))); }

}  // namespace

TEST_CASE("server-everything's tools run as plan steps: echo, get-sum, structured content", "[mcp][cli]") {
  TempDir dir;
  write_config(dir);
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: everything.echo, parameters: {message: "hello mcp"}}
  - {id: 2, action: everything.get-sum, parameters: {a: 2, b: 3.5}}
  - {id: 3, action: everything.get-structured-content, parameters: {location: Chicago}}
  - {id: 4, action: write_file, parameters: {path: out.txt, content: "$step1.text | $step2.text | $step3.structured.conditions"}}
)");
  auto r = run_dagent(dir, {"run", "task.yaml", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto result = json::parse(r.out);
  CHECK(step(result, 0).at("output").at("text") == "Echo: hello mcp");
  CHECK(step(result, 0).at("output").at("content") ==
        json::parse(R"([{"type": "text", "text": "Echo: hello mcp"}])"));
  CHECK(step(result, 0).at("output").at("structured").is_null());
  CHECK(step(result, 1).at("output").at("text") == "The sum of 2 and 3.5 is 5.5.");
  const auto& structured = step(result, 2).at("output").at("structured").as_object();
  CHECK(structured.contains("temperature"));
  CHECK(structured.contains("humidity"));
  CHECK(read_text(dir.path() / "out.txt").find("Echo: hello mcp | The sum of 2 and 3.5 is 5.5. | ") == 0);
  // The server's stderr went to its log, not to the result or dagent's output.
  const auto log = read_text(dir.path() / ".dagent/logs/mcp-everything.log");
  CHECK_THAT(log, Catch::Contains("Starting default (STDIO) server"));
  CHECK_THAT(log, Catch::Contains("[dagent: stopped]"));
  CHECK(r.out.find("Starting default") == std::string::npos);
  CHECK(r.err.find("Starting default") == std::string::npos);
}

TEST_CASE("a server does not inherit the API key variable, a key in its output is masked", "[mcp][cli]") {
  constexpr const char* k_key = "sk-MCP-SENTINEL-5150-never-print";
  TempDir dir;
  write_config(dir);
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: everything.get-env, parameters: {}}
  - {id: 2, action: everything.echo, parameters: {message: "$input.text"}}
inputs: {text: "k"}
)");
  const std::vector<std::string> env{std::string("OPENAI_API_KEY=") + k_key, "OPENAI_BASE_URL=http://127.0.0.1:9/v1",
                                     "DAGENT_MCP_TEST_MARKER=visible"};
  auto r = run_dagent(dir, {"run", "task.yaml", "--json"}, env);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto result = json::parse(r.out);
  const std::string environment(step(result, 0).at("output").at("text").as_string());
  CHECK_THAT(environment, Catch::Contains("DAGENT_MCP_TEST_MARKER"));  // the rest of the environment is inherited
  CHECK(environment.find("OPENAI_API_KEY") == std::string::npos);
  CHECK(r.out.find(k_key) == std::string::npos);

  SECTION("the key a server returns anyway is masked") {
    dir.write("task.yaml", std::string("workspace: .\nplan:\n  - {id: 1, action: everything.echo, parameters: {message: \"") +
                               k_key + "\"}}\n");
    auto echoed = run_dagent(dir, {"run", "task.yaml", "--json"}, env);
    REQUIRE(echoed.exit_code == 0);
    const auto o = json::parse(echoed.out);
    CHECK(step(o, 0).at("output").at("text") == "Echo: [redacted API key]");
    CHECK(json::serialize(step(o, 0).at("output")).find(k_key) == std::string::npos);
  }
}

TEST_CASE("an isError result fails the step with the server's text", "[mcp][cli]") {
  TempDir dir;
  write_config(dir);
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: everything.get-resource-reference, parameters: {resourceType: Text, resourceId: 1.5}}
  - {id: 2, action: everything.echo, parameters: {message: still fine}}
)");
  auto r = run_dagent(dir, {"run", "task.yaml", "--json"});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  const auto result = json::parse(r.out);
  CHECK(step(result, 0).at("status") == "failed");
  CHECK(step(result, 0).at("error") ==
        "MCP server 'everything': get-resource-reference failed: Invalid resourceId: 1.5. Must be a finite positive "
        "integer.");
  CHECK(step(result, 1).at("status") == "succeeded");
}

TEST_CASE("parameters are checked against the tool's input schema, before the call and after references", "[mcp][cli]") {
  TempDir dir;
  write_config(dir);
  SECTION("at validation: nothing runs") {
    dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: everything.get-sum, parameters: {a: "two", b: 3}}
  - {id: 2, action: everything.get-structured-content, parameters: {location: Paris}}
  - {id: 3, action: everything.echo, parameters: {}}
)");
    auto r = run_dagent(dir, {"run", "task.yaml"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("step 1") && Catch::Contains("a: expected number, got string"));
    CHECK_THAT(r.err, Catch::Contains("step 2") && Catch::Contains("location"));
    CHECK_THAT(r.err, Catch::Contains("step 3") && Catch::Contains("message"));
  }
  SECTION("after references are resolved: the step fails, the server is not called with it") {
    dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: everything.echo, parameters: {message: "x"}}
  - {id: 2, action: everything.get-sum, parameters: {a: "$step1.text", b: 1}, dependencies: [1]}
)");
    auto r = run_dagent(dir, {"run", "task.yaml", "--json"});
    CHECK(r.exit_code == 1);
    const auto result = json::parse(r.out);
    CHECK_THAT(std::string(step(result, 1).at("error").as_string()),
               Catch::Contains("after resolving references") && Catch::Contains("expected number, got string"));
  }
  SECTION("an unknown tool of a configured server is an unknown action") {
    dir.write("task.yaml", "workspace: .\nplan:\n  - {id: 1, action: everything.no-such-tool, parameters: {}}\n");
    auto r = run_dagent(dir, {"run", "task.yaml"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("unknown action 'everything.no-such-tool'"));
  }
}

TEST_CASE("a step timeout sends notifications/cancelled to the server, progress shows in the live view", "[mcp][cli]") {
  TempDir dir;
  const auto sent = dir.path() / "sent.jsonl";
  write_config(dir, "    slow: {command: [\"" + k_tee + "\", \"" + sent.string() + "\", \"" + k_everything + "\", stdio]}\n");
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: everything.trigger-long-running-operation, parameters: {duration: 0.2, steps: 4}}
  - {id: 2, action: slow.trigger-long-running-operation, parameters: {duration: 600, steps: 2}}
)");
  auto r = run_dagent(dir, {"run", "task.yaml", "--json", "--set", "executor.step_timeout_ms=3000"});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  const auto result = json::parse(r.out);
  CHECK(step(result, 0).at("status") == "succeeded");
  CHECK(step(result, 0).at("output").at("text") == "Long running operation completed. Duration: 0.2 seconds, Steps: 4.");
  for (const char* p : {"progress 1/4", "progress 2/4", "progress 3/4", "progress 4/4"}) CHECK_THAT(r.err, Catch::Contains(p));
  CHECK(step(result, 1).at("status") == "failed");
  CHECK_THAT(std::string(step(result, 1).at("error").as_string()), Catch::Contains("timed out after 3000 ms"));
  // What dagent sent the slow server: the call with a progress token, then its cancellation.
  const auto lines = read_text(sent);
  const auto call_at = lines.find("\"method\":\"tools/call\"");
  REQUIRE(call_at != std::string::npos);
  const auto cancel_at = lines.find("\"method\":\"notifications/cancelled\"");
  REQUIRE(cancel_at != std::string::npos);
  CHECK(call_at < cancel_at);
  json::object call, cancel;
  for (auto& line : {lines.substr(lines.rfind('\n', call_at) + 1), lines.substr(lines.rfind('\n', cancel_at) + 1)}) {
    auto o = json::parse(line.substr(0, line.find('\n'))).as_object();
    (o.at("method") == "tools/call" ? call : cancel) = o;
  }
  CHECK(cancel.at("params").at("requestId") == call.at("id"));
  CHECK(call.at("params").at("_meta").at("progressToken") == call.at("id"));
  CHECK(lines.find("\"method\":\"notifications/initialized\"") < call_at);
}

TEST_CASE("a server killed mid-call fails that call naming it, is restarted for later calls, others go on", "[mcp][cli]") {
  TempDir dir;
  const auto pid_file = dir.path() / "victim.pid";
  write_config(dir, "    victim: {command: [sh, -c, 'echo $$ > victim.pid; exec \"$0\" stdio', \"" + k_everything + "\"]}\n");
  // One step at a time, in id order: the call that is killed, then a later call of the same
  // server (restarted), then another server's.
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: victim.trigger-long-running-operation, parameters: {duration: 600, steps: 6000}}
  - {id: 2, action: victim.echo, parameters: {message: "after the restart"}}
  - {id: 3, action: everything.echo, parameters: {message: "unaffected"}}
)");
  ChildProcess child({DAGENT_BINARY, "run", "task.yaml", "--json", "--record", "run.jsonl", "--set",
                      "performance.parallel_execution.max_parallel_steps=1"},
                     dir.path());
  wait_for_text(dir.path(), dir.path() / "run.jsonl", "progress 1/6000");  // the call is underway on the server
  const pid_t victim = pid_in(pid_file);
  REQUIRE(kill(victim, SIGKILL) == 0);
  auto r = child.wait();
  INFO(r.err);
  CHECK(r.exit_code != 0);
  const auto result = json::parse(r.out);
  CHECK(step(result, 0).at("status") == "failed");
  CHECK_THAT(std::string(step(result, 0).at("error").as_string()),
             Catch::Contains("MCP server 'victim' was killed by signal") &&
                 Catch::Contains(".dagent/logs/mcp-victim.log"));
  CHECK(step(result, 1).at("status") == "succeeded");
  CHECK(step(result, 1).at("output").at("text") == "Echo: after the restart");
  CHECK(step(result, 2).at("output").at("text") == "Echo: unaffected");
  CHECK(pid_in(pid_file) != victim);  // a new process answered step 2
  CHECK(count(read_text(dir.path() / ".dagent/logs/mcp-victim.log"), "[dagent: starting") == 2);
}

TEST_CASE("a server that writes garbage, exits or never answers fails its pending call with a clear error", "[mcp][cli]") {
  const std::string mode = GENERATE("garbage", "exit", "hang");
  TempDir dir;
  write_config(dir, "    faulty: {command: [node, \"" + k_faulty + "\", " + mode + "], timeout_ms: 4000}\n");
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: faulty.work, parameters: {}}
  - {id: 2, action: everything.echo, parameters: {message: "unaffected"}}
)");
  auto r = run_dagent(dir, {"run", "task.yaml", "--json"});
  INFO(r.err);
  CHECK(r.exit_code != 0);
  const auto result = json::parse(r.out);
  const std::string error(step(result, 0).at("error").as_string());
  CHECK(step(result, 0).at("status") == "failed");
  if (mode == "garbage") {
    CHECK_THAT(error, Catch::Contains("MCP server 'faulty' wrote a line that is not a JSON-RPC message: \"Traceback"));
  } else if (mode == "exit") {
    CHECK_THAT(error, Catch::Contains("MCP server 'faulty' exited with status 3"));
  } else {
    CHECK_THAT(error, Catch::Contains("MCP server 'faulty': tools/call: no answer within 4000 ms"));
  }
  CHECK(error.find("faulty: tools/call in mode") == std::string::npos);  // its stderr stays in the log
  CHECK_THAT(read_text(dir.path() / ".dagent/logs/mcp-faulty.log"), Catch::Contains("faulty: tools/call in mode " + mode));
  CHECK(step(result, 1).at("status") == "succeeded");
}

TEST_CASE("no MCP server outlives kill -9 of dagent", "[mcp][cli]") {
  TempDir dir;
  write_config(dir, "    victim: {command: [sh, -c, 'echo $$ > victim.pid; exec \"$0\" stdio', \"" + k_everything + "\"]}\n");
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: victim.trigger-long-running-operation, parameters: {duration: 600, steps: 6000}}
)");
  ChildProcess child({DAGENT_BINARY, "run", "task.yaml", "--record", "run.jsonl"}, dir.path());
  wait_for_text(dir.path(), dir.path() / "run.jsonl", "progress 1/6000");
  const pid_t server = pid_in(dir.path() / "victim.pid");
  child.kill(SIGKILL);
  CHECK(child.wait().exit_code == 128 + SIGKILL);
  CHECK(gone(server));
  CHECK(group_ends(server));  // nothing is left running in its process group either
}

TEST_CASE("no grandchild of a launcher outlives kill -9 of dagent", "[mcp][cli]") {
  // A launcher in the manner of npx: the shell stays and the real server is its child; a helper
  // process (`sleep`, reading nothing) was started beside it. PR_SET_PDEATHSIG reaches only the
  // launcher, and only the server notices its stdin end; the keeper process kills the whole group
  // when dagent's lifeline to it ends.
  TempDir dir;
  write_config(dir, "    victim: {command: [sh, -c, 'sleep 600 & echo $! > helper.pid; exec 3<&0; \"$0\" stdio <&3 3<&- & echo $! > victim.pid; wait', \"" +
                        k_everything + "\"]}\n");
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: victim.trigger-long-running-operation, parameters: {duration: 600, steps: 6000}}
)");
  ChildProcess child({DAGENT_BINARY, "run", "task.yaml", "--record", "run.jsonl"}, dir.path());
  wait_for_text(dir.path(), dir.path() / "run.jsonl", "progress 1/6000");
  const pid_t server = pid_in(dir.path() / "victim.pid");
  const pid_t group = getpgid(server);
  REQUIRE(group > 0);
  CHECK(group != server);  // the server is not the group's leader: the launcher's child
  const pid_t helper = pid_in(dir.path() / "helper.pid");
  child.kill(SIGKILL);
  CHECK(child.wait().exit_code == 128 + SIGKILL);
  CHECK(gone(server));
  CHECK(gone(helper));
  CHECK(group_ends(group));
}

TEST_CASE("Ctrl-C cancels a running MCP call on its server and shuts the server down", "[mcp][cli]") {
  TempDir dir;
  const auto sent = dir.path() / "sent.jsonl";
  write_config(dir, "    slow: {command: [\"" + k_tee + "\", \"" + sent.string() + "\", \"" + k_everything + "\", stdio]}\n");
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: slow.trigger-long-running-operation, parameters: {duration: 600, steps: 6000}}
)");
  ChildProcess child({DAGENT_BINARY, "run", "task.yaml", "--json", "--record", "run.jsonl"}, dir.path());
  wait_for_text(dir.path(), dir.path() / "run.jsonl", "progress 1/6000");
  child.kill(SIGINT);
  auto r = child.wait();
  INFO(r.err);
  CHECK(r.exit_code == 1);
  const auto result = json::parse(r.out);
  CHECK(result.at("error") == "interrupted");
  CHECK(step(result, 0).at("status") == "failed");
  const auto lines = read_text(sent);
  CHECK(lines.find("\"method\":\"notifications/cancelled\"") != std::string::npos);
  CHECK_THAT(read_text(dir.path() / ".dagent/logs/mcp-slow.log"), Catch::Contains("[dagent: stopped]"));
}

TEST_CASE("MCP calls are recorded, --replay-tools answers them without a server, a plain replay starts it again", "[mcp][cli][record]") {
  TempDir dir;
  write_config(dir);
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: everything.echo, parameters: {message: "recorded"}}
  - {id: 2, action: everything.get-sum, parameters: {a: 40, b: 2}}
)");
  auto live = run_dagent(dir, {"run", "task.yaml", "--json", "--record", "run.jsonl"});
  INFO(live.err);
  REQUIRE(live.exit_code == 0);
  const auto recording = read_text(dir.path() / "run.jsonl");
  CHECK_THAT(recording, Catch::Contains("\"mcp_tools\":[") && Catch::Contains("\"name\":\"everything.get-sum\""));
  CHECK_THAT(recording, Catch::Contains("\"type\":\"tool\",\"step\":1,\"action\":\"everything.echo\""));
  const auto log = dir.path() / ".dagent/logs/mcp-everything.log";
  REQUIRE(count(read_text(log), "[dagent: starting") == 1);

  SECTION("--replay-tools: answered from the recording, no server started") {
    auto replayed = run_dagent(dir, {"replay", "run.jsonl", "--json", "--replay-tools"});
    INFO(replayed.err);
    REQUIRE(replayed.exit_code == 0);
    CHECK(step(json::parse(replayed.out), 0).at("output") == step(json::parse(live.out), 0).at("output"));
    CHECK(step(json::parse(replayed.out), 1).at("output").at("text") == "The sum of 40 and 2 is 42.");
    CHECK(count(read_text(log), "[dagent: starting") == 1);
  }
  SECTION("--replay-tools with the server's command gone: still answered") {
    write_config(dir, {}, "");
    dir.write("config.yaml", "mcp:\n  servers:\n    everything: {command: [/nonexistent/server]}\n");
    auto replayed = run_dagent(dir, {"run", "task.yaml", "--json", "--replay", "run.jsonl", "--replay-tools"});
    INFO(replayed.err);
    CHECK(replayed.exit_code == 0);
  }
  SECTION("a replay without --replay-tools runs the calls again on a started server") {
    auto replayed = run_dagent(dir, {"replay", "run.jsonl", "--json"});
    INFO(replayed.err);
    REQUIRE(replayed.exit_code == 0);
    CHECK(step(json::parse(replayed.out), 1).at("output").at("text") == "The sum of 40 and 2 is 42.");
    CHECK(count(read_text(log), "[dagent: starting") == 2);
  }
}

TEST_CASE("server-filesystem lists and reads a folder through MCP", "[mcp][cli]") {
  TempDir dir;
  dir.write("docs/guide.md", "# Guide\nsecond line\n");
  dir.write("docs/notes.txt", "notes");
  const auto docs = (dir.path() / "docs").string();
  write_config(dir, "    fs: {command: [\"" + k_filesystem + "\", ./docs]}\n");
  dir.write("task.yaml", "workspace: .\nplan:\n  - {id: 1, action: fs.list_directory, parameters: {path: \"" + docs +
                             "\"}}\n  - {id: 2, action: fs.read_text_file, parameters: {path: \"" + docs +
                             "/guide.md\"}}\n  - {id: 3, action: fs.read_text_file, parameters: {path: /etc/passwd}}\n");
  auto r = run_dagent(dir, {"run", "task.yaml", "--json"});
  INFO(r.err);
  CHECK(r.exit_code == 1);  // step 3 is outside the server's allowed folder
  const auto result = json::parse(r.out);
  const std::string listing(step(result, 0).at("output").at("text").as_string());
  CHECK_THAT(listing, Catch::Contains("[FILE] guide.md") && Catch::Contains("[FILE] notes.txt"));
  CHECK(step(result, 1).at("output").at("text") == "# Guide\nsecond line\n");
  CHECK(step(result, 2).at("status") == "failed");
  CHECK_THAT(std::string(step(result, 2).at("error").as_string()), Catch::Contains("MCP server 'fs'") &&
                                                                       Catch::Contains("outside allowed directories"));
}

TEST_CASE("a goal planned by the model calls MCP tools from the catalog", "[mcp][cli][llm]") {
  const char* plan = R"({"steps": [
    {"id": 1, "action": "everything.get-sum", "parameters": {"a": 19, "b": 23}},
    {"id": 2, "action": "everything.echo", "parameters": {"message": "$step1.text"}}]})";
  auto rule = [](std::string contains, std::string reply) {
    return json::object{{"path", "/v1/chat/completions"}, {"contains", std::move(contains)}, {"reply", std::move(reply)}};
  };
  json::array rules{rule("intent analyser", R"({"intent": "add two numbers", "tools": ["everything.get-sum", "everything.echo"]})"),
                    rule("Write a plan for the goal", plan),
                    rule("final answer of dagent", "19 + 23 = 42")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", std::move(rules)}}});
  TempDir dir;
  write_config(dir);
  dir.write("task.yaml", "goal: Add 19 and 23 with the MCP tools\nworkspace: .\n");
  auto r = run_dagent(dir, {"run", "task.yaml", "--json", "--record", "run.jsonl"},
                      {"OPENAI_BASE_URL=" + server.base_url(), "OPENAI_API_KEY=sk-MCP-TEST-0000"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto result = json::parse(r.out);
  CHECK(step(result, 1).at("output").at("text") == "Echo: The sum of 19 and 23 is 42.");
  CHECK(result.at("answer") == "19 + 23 = 42");
  // The planner's catalog named the MCP tools with their descriptions and input schemas.
  bool catalog_seen = false;
  const auto stats = server.stats();
  for (const auto& req : stats.at("recent").as_array()) {
    const std::string body(req.at("body").as_string());
    if (body.find("Write a plan for the goal") != std::string::npos)
      catalog_seen = body.find("everything.get-sum: Returns the sum of two numbers") != std::string::npos &&
                     body.find("First number") != std::string::npos;
  }
  CHECK(catalog_seen);

  // Replayed offline with --replay-tools: the planner sees the recorded MCP tools (the same
  // catalog, so the recorded planning request matches), and no server is started.
  const auto log = dir.path() / ".dagent/logs/mcp-everything.log";
  REQUIRE(count(read_text(log), "[dagent: starting") == 1);
  auto replayed = run_dagent(dir, {"replay", "run.jsonl", "--json", "--replay-tools", "--replay-timing", "instant"},
                             {"OPENAI_BASE_URL=http://127.0.0.1:9/v1", "OPENAI_API_KEY=sk-MCP-TEST-0000"});
  INFO(replayed.err);
  REQUIRE(replayed.exit_code == 0);
  CHECK(step(json::parse(replayed.out), 1).at("output").at("text") == "Echo: The sum of 19 and 23 is 42.");
  CHECK(count(read_text(log), "[dagent: starting") == 1);
}

TEST_CASE("tools.approval globs guard MCP tools", "[mcp][cli]") {
  TempDir dir;
  write_config(dir, {}, "tools:\n  approval: [\"everything.*\"]\n");
  dir.write("task.yaml", "workspace: .\nplan:\n  - {id: 1, action: everything.echo, parameters: {message: hi}}\n");
  auto refused = run_dagent(dir, {"run", "task.yaml", "--json"});
  CHECK(refused.exit_code == 1);
  CHECK_THAT(std::string(step(json::parse(refused.out), 0).at("error").as_string()),
             Catch::Contains("needs approval (tools.approval: everything.*)"));
  auto approved = run_dagent(dir, {"run", "task.yaml", "--json", "--approve", "everything.echo"});
  CHECK(approved.exit_code == 0);
}

TEST_CASE("dagent mcp list prints each server's tools and parameters, a broken server is named", "[mcp][cli]") {
  TempDir dir;
  write_config(dir, "    broken: {command: [node, \"" + k_faulty + "-missing.mjs\"]}\n");
  SECTION("text") {
    auto r = run_dagent(dir, {"mcp", "list", "everything"});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("everything.get-sum: Returns the sum of two numbers\n"
                                      "    a: number, required — First number\n"
                                      "    b: number, required — Second number\n"));
    CHECK_THAT(r.out, Catch::Contains("    count: number, optional, default 3"));
  }
  SECTION("--json, every server: the broken one named, the others listed") {
    auto r = run_dagent(dir, {"mcp", "list", "--json"});
    CHECK(r.exit_code == 3);
    const auto o = json::parse(r.out).as_object();
    bool echo = false;
    for (const auto& t : o.at("tools").as_array())
      echo = echo || (t.at("name") == "everything.echo" && t.at("input_schema").at("required") == json::array{"message"});
    CHECK(echo);
    REQUIRE(o.at("problems").as_array().size() == 1);
    CHECK_THAT(std::string(o.at("problems").as_array()[0].as_string()), Catch::Contains("MCP server 'broken'"));
  }
  SECTION("tools/list pages are followed; a tool name no plan could use is left out") {
    write_config(dir, "    faulty: {command: [node, \"" + k_faulty + "\", ok]}\n");
    auto r = run_dagent(dir, {"mcp", "list", "faulty"});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out == "faulty.work: Works, or not\n    (no parameters)\nfaulty.spare: On the second page\n    (no parameters)\n");
  }
  SECTION("a url server goes through the Streamable HTTP transport; one that cannot be reached is named") {
    write_config(dir, "    remote: {url: \"http://127.0.0.1:9/mcp\", headers: {X-Test: \"${HOME}\"}}\n");
    auto r = run_dagent(dir, {"mcp", "list", "remote"});
    CHECK(r.exit_code == 3);
    CHECK_THAT(r.err, Catch::Contains("MCP server 'remote'"));
  }
  SECTION("an unknown server") {
    auto r = run_dagent(dir, {"mcp", "list", "nope"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("no server 'nope'"));
  }
}

TEST_CASE("a Streamable HTTP server's tools run as plan steps, a step timeout cancels its call", "[mcp][cli][http]") {
  dagent::test::NodeServer server{dagent::test::server_everything_script(), {"streamableHttp"}};
  TempDir dir;
  dir.write("config.yaml", "mcp:\n  servers:\n    web: {url: \"http://127.0.0.1:" + std::to_string(server.port()) +
                               "/mcp\", headers: {X-Run: \"${RUN_TAG}\"}}\n"
                               "executor: {step_timeout_ms: 3000, step_retries: 0}\n");
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: web.echo, parameters: {message: "over http"}}
  - {id: 2, action: web.get-sum, parameters: {a: 40, b: 2}}
  - {id: 3, action: web.get-structured-content, parameters: {location: "New York"}}
  - {id: 4, action: web.trigger-long-running-operation, parameters: {duration: 600, steps: 600}}
  - {id: 5, action: web.echo, parameters: {message: "$step1.text and $step2.text"}, dependencies: [1, 2]}
)");
  auto r = run_dagent(dir, {"run", "task.yaml", "--json"}, {"RUN_TAG=t1"});
  INFO(r.err);
  CHECK(r.exit_code == 1);  // step 4 timed out
  const auto result = json::parse(r.out);
  CHECK(step(result, 0).at("output").at("text") == "Echo: over http");
  CHECK(step(result, 1).at("output").at("text") == "The sum of 40 and 2 is 42.");
  CHECK(step(result, 2).at("output").at("structured").at("humidity").is_number());
  CHECK(step(result, 3).at("status") == "failed");
  CHECK_THAT(json::value_to<std::string>(step(result, 3).at("error")), Catch::Contains("timed out"));
  CHECK(step(result, 4).at("output").at("text") == "Echo: Echo: over http and The sum of 40 and 2 is 42.");
  // The server got initialize, initialized, tools/list, five calls and the cancellation of step 4
  // (sent while its answer was streaming back), then the DELETE that ends the session.
  const auto log = server.log();
  INFO(log);
  CHECK(count(log, "Received MCP POST request") == 9);
  CHECK(count(log, "Received session termination request") == 1);
}

TEST_CASE("for_each fans out over an MCP tool: one tools/call per item and outputs in item order", "[mcp][cli][fanout]") {
  TempDir dir;
  write_config(dir, {}, "performance: {parallel_execution: {max_parallel_steps: 8}}\n");
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: everything.get-structured-content, parameters: {location: Chicago}}
  - id: 2
    action: everything.get-sum
    for_each: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    parameters: {a: "$item", b: "$index"}
  - id: 3
    action: everything.echo
    for_each: "$step2"
    parameters: {message: "$item.text / $step1.structured.conditions"}
  - {id: 4, action: write_file, parameters: {path: out.json, content: "all: $step3"}}
)");
  auto r = run_dagent(dir, {"run", "task.yaml", "--json", "--record", "run.jsonl"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto result = json::parse(r.out);
  const auto& sums = step(result, 1).at("output").as_array();
  REQUIRE(sums.size() == 12);
  for (std::size_t k = 0; k < sums.size(); ++k) {
    const auto a = k + 1;
    CHECK(json::value_to<std::string>(sums[k].at("text")) == "The sum of " + std::to_string(a) + " and " + std::to_string(k) + " is " +
                                    std::to_string(a + k) + ".");
  }
  const auto& echoes = step(result, 2).at("output").as_array();
  REQUIRE(echoes.size() == 12);
  const std::string conditions(step(result, 0).at("output").at("structured").at("conditions").as_string());
  CHECK(json::value_to<std::string>(echoes[11].at("text")) == "Echo: The sum of 12 and 11 is 23. / " + conditions);
  CHECK(step(result, 2).at("items").as_array().size() == 12);
  // Each item is its own recorded tools/call; --replay-tools answers all 24 without a server.
  const auto recording = read_text(dir.path() / "run.jsonl");
  CHECK(count(recording, "\"action\":\"everything.get-sum\"") >= 12);
  auto replay = run_dagent(dir, {"replay", "run.jsonl", "--replay-tools", "--json"},
                           {"PATH=/nonexistent"});  // no server could start
  INFO(replay.err);
  REQUIRE(replay.exit_code == 0);
  CHECK(json::parse(replay.out).at("steps").as_array().at(2).at("output") == step(result, 2).at("output"));
}
