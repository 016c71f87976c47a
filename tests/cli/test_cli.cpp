// End-to-end tests of the dagent executable: exit codes, --json, --set, plan, validate, trace.

#include <catch2/catch.hpp>

#include <filesystem>

#include <boost/json.hpp>

#include "support/process.hpp"

namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using dagent::test::read_text;
using dagent::test::run_process;
using dagent::test::TempDir;

dagent::test::ProcessResult dagent_cli(const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), DAGENT_BINARY);
  return run_process(args, dir.path());
}

// A task whose plan reads four files at level 0 and writes a summary at level 1.
void write_fan_in_task(const TempDir& dir) {
  for (int i = 1; i <= 4; ++i) dir.write("ws/in" + std::to_string(i) + ".txt", "file " + std::to_string(i) + "\n");
  dir.write("task.yaml", "goal: gather\nworkspace: ws\ninputs: {who: tester}\nplan: plan.json\n");
  dir.write("plan.json", R"([
    {"id": 1, "action": "read_file", "parameters": {"path": "in1.txt"}},
    {"id": 2, "action": "read_file", "parameters": {"path": "in2.txt"}},
    {"id": 3, "action": "read_file", "parameters": {"path": "in3.txt"}},
    {"id": 4, "action": "read_file", "parameters": {"path": "in4.txt"}},
    {"id": 5, "action": "write_file", "parameters": {"path": "out/all.txt",
      "content": "$input.who: $step1.content$step2.content$step3.content$step4.content"}}
  ])");
}

json::object parse_object(const std::string& text) {
  auto v = json::parse(text);
  REQUIRE(v.is_object());
  return v.as_object();
}

}  // namespace

TEST_CASE("dagent --version and --help exit 0, bad usage exits 2", "[cli]") {
  TempDir dir;
  auto v = dagent_cli(dir, {"--version"});
  CHECK(v.exit_code == 0);
  CHECK_THAT(v.out, Catch::StartsWith("dagent "));
  auto h = dagent_cli(dir, {"--help"});
  CHECK(h.exit_code == 0);
  CHECK_THAT(h.out, Catch::Contains("\n  run ") && Catch::Contains("\n  runs "));  // the commands; their options:
  auto run_help = dagent_cli(dir, {"run", "--help"});
  CHECK(run_help.exit_code == 0);
  CHECK_THAT(run_help.out, Catch::Contains("dagent run [OPTIONS] [TASK]"));
  auto bad = dagent_cli(dir, {"frobnicate"});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("unknown command 'frobnicate'"));
  auto opt = dagent_cli(dir, {"run", "task.yaml", "--bogus"});
  CHECK(opt.exit_code == 2);
  CHECK_THAT(opt.err, Catch::Contains("unknown option --bogus"));
}

TEST_CASE("dagent run executes a fixed plan and prints the SPEC result JSON", "[cli]") {
  TempDir dir;
  write_fan_in_task(dir);
  auto r = dagent_cli(dir, {"run", "task.yaml", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(read_text(dir.path() / "ws/out/all.txt") == "tester: file 1\nfile 2\nfile 3\nfile 4\n");

  auto o = parse_object(r.out);
  for (auto key : {"run_id", "task", "status", "plan", "levels", "steps", "answer", "metrics"}) CHECK(o.contains(key));
  CHECK(o.at("task") == "task");
  CHECK(o.at("status") == "succeeded");
  CHECK(o.at("levels") == json::parse("[[1,2,3,4],[5]]"));
  const auto& steps = o.at("steps").as_array();
  REQUIRE(steps.size() == 5);
  for (const auto& s : steps) {
    const auto& step = s.as_object();
    for (auto key : {"id", "action", "level", "status", "attempts", "started_ms", "finished_ms", "output", "error",
                     "verification"})
      CHECK(step.contains(key));
    CHECK(step.at("status") == "succeeded");
    CHECK(step.at("error").is_null());
    CHECK(step.at("started_ms").to_number<double>() <= step.at("finished_ms").to_number<double>());
    CHECK(step.at("verification").at("status") == "not_requested");
  }
  CHECK(steps[4].at("level") == 1);
  CHECK(steps[4].at("output").at("path") == "out/all.txt");
  const auto& m = o.at("metrics").as_object();
  for (auto key : {"wall_ms", "llm_calls", "prompt_tokens", "completion_tokens", "embedding_calls", "retries",
                   "rate_limit_wait_ms", "cache_hits", "cache_l2_hits", "cache_l2_errors", "connections_opened",
                   "max_concurrent_steps"})
    CHECK(m.contains(key));
  CHECK(m.at("max_concurrent_steps") == 4);
  // Human progress goes to stderr, never into the JSON on stdout.
  CHECK_THAT(r.err, Catch::Contains("step 5 write_file"));
}

TEST_CASE("the CLI applies --set overrides with validation", "[cli]") {
  TempDir dir;
  write_fan_in_task(dir);
  SECTION("parallel execution off runs one step at a time") {
    auto r = dagent_cli(dir, {"run", "task.yaml", "--json", "--set", "performance.parallel_execution.enabled=false"});
    REQUIRE(r.exit_code == 0);
    CHECK(parse_object(r.out).at("metrics").at("max_concurrent_steps") == 1);
  }
  SECTION("max_parallel_steps caps concurrency") {
    auto r = dagent_cli(dir, {"run", "task.yaml", "--json", "--set=performance.parallel_execution.max_parallel_steps=2"});
    REQUIRE(r.exit_code == 0);
    CHECK(parse_object(r.out).at("metrics").at("max_concurrent_steps") == 2);
  }
  SECTION("without dependency analysis a reference alone does not order steps") {
    dir.write("refs.yaml", R"(workspace: ws
plan:
  - {id: 1, action: read_file, parameters: {path: in1.txt}}
  - {id: 2, action: write_file, parameters: {path: copy.txt, content: "$step1.content"}}
)");
    auto with = dagent_cli(dir, {"run", "refs.yaml", "--json"});
    CHECK(with.exit_code == 0);
    CHECK(parse_object(with.out).at("levels") == json::parse("[[1],[2]]"));
    auto without = dagent_cli(dir, {"run", "refs.yaml", "--json", "--set",
                                     "performance.parallel_execution.dependency_analysis=false"});
    CHECK(without.exit_code == 1);
    auto o = parse_object(without.out);
    CHECK(o.at("levels") == json::parse("[[1,2]]"));
    CHECK_THAT(std::string(o.at("steps").as_array()[1].at("error").as_string()), Catch::Contains("step 1 has no output"));
  }
  SECTION("levels scheduling is accepted and reported steps keep their levels") {
    auto r = dagent_cli(dir, {"run", "task.yaml", "--json", "--set", "performance.parallel_execution.scheduling=levels"});
    REQUIRE(r.exit_code == 0);
    auto o = parse_object(r.out);
    const auto& steps = o.at("steps").as_array();
    double level0_done = 0;
    for (int i = 0; i < 4; ++i) level0_done = std::max(level0_done, steps[i].at("finished_ms").to_number<double>());
    CHECK(steps[4].at("started_ms").to_number<double>() >= level0_done);
  }
  SECTION("a bad value is an error naming --set and the key; nothing runs") {
    auto r = dagent_cli(dir, {"run", "task.yaml", "--set", "performance.parallel_execution.max_parallel_steps=zero"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("--set") && Catch::Contains("performance.parallel_execution.max_parallel_steps"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "ws/out/all.txt"));
  }
}

TEST_CASE("a failed step exits 1 and still reports every step", "[cli]") {
  TempDir dir;
  dir.write("ws/a.txt", "a");
  dir.write("task.yaml", R"(workspace: ws
plan:
  - {id: 1, action: read_file, parameters: {path: missing.txt}}
  - {id: 2, action: write_file, parameters: {path: b.txt, content: "$step1.content"}}
  - {id: 3, action: read_file, parameters: {path: a.txt}}
)");
  auto r = dagent_cli(dir, {"run", "task.yaml", "--json"});
  CHECK(r.exit_code == 1);
  auto o = parse_object(r.out);
  CHECK(o.at("status") == "failed");
  const auto& steps = o.at("steps").as_array();
  CHECK(steps[0].at("status") == "failed");
  CHECK_THAT(std::string(steps[0].at("error").as_string()), Catch::Contains("missing.txt"));
  CHECK(steps[1].at("status") == "skipped");
  CHECK(steps[2].at("status") == "succeeded");
  CHECK_THAT(r.err, Catch::Contains("step 1 read_file failed"));
}

TEST_CASE("an invalid plan exits 2, lists every problem and runs nothing", "[cli]") {
  TempDir dir;
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: write_file, parameters: {path: made.txt, content: x}}
  - {id: 2, action: read_file, parameters: {path: "$step3.path"}}
  - {id: 3, action: read_file, parameters: {path: "$step2.path"}}
  - {id: 4, action: teleport, parameters: {}}
  - {id: 5, action: read_file, parameters: {}}
)");
  auto r = dagent_cli(dir, {"run", "task.yaml"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("2 -> 3 -> 2"));
  CHECK_THAT(r.err, Catch::Contains("step 4: unknown action 'teleport'"));
  CHECK_THAT(r.err, Catch::Contains("step 5:") && Catch::Contains("path"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "made.txt"));
}

TEST_CASE("config problems exit 2 with file, line and key", "[cli]") {
  TempDir dir;
  write_fan_in_task(dir);
  dir.write("config.yaml", "performance:\n  parallel_execution:\n    max_parallel_stepz: 3\n");
  auto r = dagent_cli(dir, {"run", "task.yaml"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("config.yaml:3") &&
                        Catch::Contains("performance.parallel_execution.max_parallel_stepz"));
  auto missing = dagent_cli(dir, {"run", "task.yaml", "--config", "nope.yaml"});
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.err, Catch::Contains("nope.yaml"));
}

TEST_CASE("config_dir_does_not_exist: --config naming a folder says it is a folder", "[cli]") {
  TempDir dir;
  write_fan_in_task(dir);
  dir.write("conf.d/keep.txt", "");
  auto r = dagent_cli(dir, {"validate", "--config", "conf.d"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("conf.d") && Catch::Contains("is a folder"));
  CHECK_THAT(r.err, !Catch::Contains("does not exist"));
}

TEST_CASE("dagent plan prints levels and the critical path without running", "[cli]") {
  TempDir dir;
  write_fan_in_task(dir);
  auto text = dagent_cli(dir, {"plan", "task.yaml"});
  REQUIRE(text.exit_code == 0);
  CHECK_THAT(text.out, Catch::Contains("level 0: 1, 2, 3, 4") && Catch::Contains("level 1: 5"));
  CHECK_THAT(text.out, Catch::Contains("critical path: 1 -> 5"));
  auto j = dagent_cli(dir, {"plan", "task.yaml", "--json"});
  REQUIRE(j.exit_code == 0);
  auto o = parse_object(j.out);
  CHECK(o.at("levels") == json::parse("[[1,2,3,4],[5]]"));
  CHECK(o.at("critical_path") == json::parse("[1,5]"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "ws/out/all.txt"));
}

TEST_CASE("dagent validate checks config, tasks and plan files", "[cli]") {
  TempDir dir;
  write_fan_in_task(dir);
  CHECK(dagent_cli(dir, {"validate"}).exit_code == 0);
  CHECK(dagent_cli(dir, {"validate", "task.yaml"}).exit_code == 0);
  dir.write("bad.json", R"([{"id": 1, "action": "read_file", "parameters": {"path": 7}},
                            {"id": 1, "action": "list_dir"}])");
  auto bad = dagent_cli(dir, {"validate", "bad.json"});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("duplicate step id 1"));
  CHECK_THAT(bad.err, Catch::Contains("step 1:") && Catch::Contains("path"));
  dir.write("broken.json", "[\n  {\"id\": 1,\n  oops\n]");
  auto broken = dagent_cli(dir, {"validate", "broken.json"});
  CHECK(broken.exit_code == 2);
  CHECK_THAT(broken.err, Catch::Contains("line 3"));
}

TEST_CASE("tasks can be named from config.yaml, a goal without a key for a remote model is refused", "[cli]") {
  TempDir dir;
  write_fan_in_task(dir);
  dir.write("config.yaml", R"(tasks:
  gather:
    workspace: ws
    inputs: {who: named}
    plan: plan.json
  dream:
    goal: "Write a poem"
)");
  auto r = dagent_cli(dir, {"run", "gather", "--json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(parse_object(r.out).at("task") == "gather");
  CHECK_THAT(read_text(dir.path() / "ws/out/all.txt"), Catch::StartsWith("named: "));
  auto dream = dagent_cli(dir, {"run", "dream"});
  CHECK(dream.exit_code == 2);
  CHECK_THAT(dream.err, Catch::Contains("planning a goal needs the model"));
  auto unknown = dagent_cli(dir, {"run", "nosuch"});
  CHECK(unknown.exit_code == 2);
  CHECK_THAT(unknown.err, Catch::Contains("gather"));
}

TEST_CASE("the CLI writes a Chrome trace with --trace, one span per step", "[cli]") {
  TempDir dir;
  write_fan_in_task(dir);
  auto r = dagent_cli(dir, {"run", "task.yaml", "--trace", "trace.json", "-q"});
  REQUIRE(r.exit_code == 0);
  auto trace = parse_object(read_text(dir.path() / "trace.json"));
  int spans = 0;
  for (const auto& e : trace.at("traceEvents").as_array()) {
    if (e.at("ph") != "X") continue;
    ++spans;
    CHECK(e.at("tid").to_number<int>() >= 1);
    CHECK(e.at("dur").to_number<double>() >= 0);
  }
  CHECK(spans == 5);
}

TEST_CASE("tools cannot escape the workspace from a plan", "[cli]") {
  TempDir dir;
  dir.write("secret.txt", "top secret");
  dir.write("task.yaml", R"(workspace: ws
plan:
  - {id: 1, action: read_file, parameters: {path: ../secret.txt}}
  - {id: 2, action: write_file, parameters: {path: ../escaped.txt, content: x}}
)");
  std::filesystem::create_directories(dir.path() / "ws");
  auto r = dagent_cli(dir, {"run", "task.yaml", "--json"});
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("top secret") == std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.path() / "escaped.txt"));
}

TEST_CASE("the example program embeds the runtime with a tool of its own", "[cli][embed]") {
  TempDir dir;
  dir.write("notes.txt", "one two three\nfour five\n");
  auto r = run_process({DAGENT_EMBED_EXAMPLE, dir.path().string()}, dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(read_text(dir.path() / "out/count.json") == "{\"words\": 5}");
  CHECK_THAT(r.out, Catch::Contains("event step=2 action=word_count status=running"));
  CHECK_THAT(r.out, Catch::Contains("event step=2 action=word_count status=succeeded"));
}

TEST_CASE("cli: --record empties an existing file even when nothing runs", "[cli][record]") {
  TempDir dir;
  write_fan_in_task(dir);
  const std::string previous = "{\"type\":\"header\",\"format\":1}\n{\"type\":\"end\",\"status\":\"succeeded\"}\n";

  SECTION("an existing recording is refused without --force, and kept") {
    dir.write("run.jsonl", previous);
    auto r = dagent_cli(dir, {"run", "task.yaml", "--record", "run.jsonl", "-q"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("run.jsonl already exists") != std::string::npos);
    CHECK(r.err.find("--force") != std::string::npos);
    CHECK(read_text(dir.path() / "run.jsonl") == previous);
    CHECK_FALSE(fs::exists(dir.path() / "ws/out/all.txt"));
  }
  SECTION("with --force, a run that fails validation leaves the file and no temporary beside it") {
    dir.write("run.jsonl", previous);
    dir.write("bad.json", R"([{"id": 1, "action": "no_such_tool", "parameters": {}}])");
    dir.write("bad.yaml", "goal: bad\nworkspace: ws\nplan: bad.json\n");
    auto invalid = dagent_cli(dir, {"run", "bad.yaml", "--record", "run.jsonl", "--force", "-q"});
    CHECK(invalid.exit_code == 2);
    auto missing = dagent_cli(dir, {"run", "missing.yaml", "--record", "run.jsonl", "--force", "-q"});
    CHECK(missing.exit_code == 2);
    dir.write("config.yaml", "llm: {temperature: 9}\n");
    auto config = dagent_cli(dir, {"run", "task.yaml", "--record", "run.jsonl", "--force", "-q"});
    CHECK(config.exit_code == 2);
    CHECK(read_text(dir.path() / "run.jsonl") == previous);
    std::size_t entries = 0;
    for (const auto& e : fs::directory_iterator(dir.path())) entries += e.path().filename().string().starts_with("run.jsonl");
    CHECK(entries == 1);
  }
  SECTION("with --force, a run that starts replaces the file") {
    dir.write("run.jsonl", previous);
    auto r = dagent_cli(dir, {"run", "task.yaml", "--record", "run.jsonl", "--force", "-q"});
    CHECK(r.exit_code == 0);
    const auto text = read_text(dir.path() / "run.jsonl");
    CHECK(text != previous);
    CHECK(text.find("\"task_ref\"") != std::string::npos);
  }
  SECTION("a new file is created when the run starts") {
    auto r = dagent_cli(dir, {"run", "task.yaml", "--record", "new.jsonl", "-q"});
    CHECK(r.exit_code == 0);
    CHECK(read_text(dir.path() / "new.jsonl").find("\"type\":\"end\"") != std::string::npos);
  }
}

TEST_CASE("failed output writes are silent", "[cli][record]") {
  TempDir dir;
  write_fan_in_task(dir);

  SECTION("--json to a full device") {
    auto r = run_process({"/bin/sh", "-c", std::string("exec '") + DAGENT_BINARY + "' run task.yaml --json -q >/dev/full"},
                         dir.path());
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("cannot write the result JSON to stdout: No space left on device") != std::string::npos);
  }
  SECTION("--trace to a full device") {
    auto r = dagent_cli(dir, {"run", "task.yaml", "--trace", "/dev/full", "--json", "-q"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("cannot write trace file '/dev/full': No space left on device") != std::string::npos);
    CHECK(parse_object(r.out).at("status") == "failed");
    CHECK(fs::is_character_file("/dev/full"));  // written in place, never replaced
  }
  SECTION("--record to a full device") {
    // The header is the first write: a recording that cannot be written stops the run before
    // any step, as an unusable --record FILE (exit 2).
    auto r = dagent_cli(dir, {"run", "task.yaml", "--record", "/dev/full", "-q"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--record: cannot write recording /dev/full: No space left on device") != std::string::npos);
    CHECK(fs::is_character_file("/dev/full"));
  }
}
