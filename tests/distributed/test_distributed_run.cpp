// Distributed steps end to end (issue 16 parts 4 and 5): a real redis-server, `dagent run
// --distributed` and dagent_test_worker processes (the library worker with the test tools
// `gate` and `sleep`). gate.log in the workspace says which worker ran which call and how
// often; the tests wait on its lines and on files, never on durations.

#include <algorithm>
#include <csignal>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include "support/process.hpp"
#include "support/loopback_port.hpp"
#include "support/redis_process.hpp"
#include "support/scripted_prompts.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace json = boost::json;
using dagent::test::ChildProcess;
using dagent::test::ProcessResult;
using dagent::test::RedisServer;
using dagent::test::run_process;
using dagent::test::TempDir;

// A redis-server, a workspace with config.yaml and task.yaml, and the workers started on it.
class Cluster {
 public:
  explicit Cluster(std::string extra_config = "") {
    dir_.write("config.yaml", "redis: {url: \"" + redis_.url() +
                                  "\"}\n"
                                  "execution: {visibility_timeout_ms: 1000}\n"
                                  "memory: {enabled: false}\n"
                                  "tools: {enabled: [read_file, write_file, list_dir, search_files, llm]}\n" +
                                  extra_config);
  }

  const std::filesystem::path& path() const { return dir_.path(); }
  const TempDir& dir() const { return dir_; }
  const RedisServer& redis() const { return redis_; }
  RedisServer& redis() { return redis_; }

  /// Starts dagent_test_worker NAME with `concurrency` slots; `config` defaults to config.yaml,
  /// `roots` to the workspace.
  ChildProcess& start_worker(const std::string& name, int concurrency, std::vector<std::string> roots = {},
                             const std::string& config = "config.yaml") {
    std::vector<std::string> argv{DAGENT_TEST_WORKER, config, name, std::to_string(concurrency)};
    if (roots.empty()) roots.push_back(dir_.path().string());
    for (auto& r : roots) argv.push_back(std::move(r));
    workers_.push_back(std::make_unique<ChildProcess>(argv, dir_.path()));
    return *workers_.back();
  }

  std::string redis_cli(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"/usr/bin/redis-cli", "-p", std::to_string(redis_.port())};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, dir_.path()).out;
  }

  /// Returns once `n` workers have announced themselves.
  void wait_for_workers(int n) const {
    wait_until([&] { return redis_cli({"SCARD", "dagent:v1:workers"}) == std::to_string(n) + "\n"; },
               "workers announced");
  }

  std::vector<std::string> gate_log() const {
    std::vector<std::string> lines;
    std::istringstream in(dagent::test::read_text(dir_.path() / "gate.log"));
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

  /// Lines of gate.log starting with `prefix` ("start a", "done ").
  std::vector<std::string> lines_with(const std::string& prefix) const {
    std::vector<std::string> out;
    for (auto& l : gate_log())
      if (l.starts_with(prefix)) out.push_back(l);
    return out;
  }

  void wait_for_lines(const std::string& prefix, std::size_t n) const {
    wait_until([&] { return lines_with(prefix).size() >= n; }, std::to_string(n) + " lines '" + prefix + "'");
  }

  void release() const { dir_.write("release", ""); }

  /// worker.yaml: this Redis, `execution` (a YAML map) and `more` (whole lines).
  void write_worker_config(const std::string& more, const std::string& execution = "{visibility_timeout_ms: 1000}") const {
    dir_.write("worker.yaml", "redis: {url: \"" + redis_.url() + "\"}\nexecution: " + execution + "\n" + more);
  }

  /// task.yaml: a fixed plan of `steps` (YAML list lines) in this workspace.
  void write_plan(const std::string& steps) const { dir_.write("task.yaml", "workspace: .\nplan:\n" + steps); }

  template <class Ready>
  static void wait_until(Ready ready, const std::string& what) {
    // Polls an event (a file's line, a Redis key), 10 ms apart, for at most 30 s.
    for (int i = 0; i < 3000; ++i) {
      if (ready()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL("gave up waiting for " << what);
  }

 private:
  RedisServer redis_;
  TempDir dir_;
  std::vector<std::unique_ptr<ChildProcess>> workers_;
};

std::vector<std::string> coordinator_argv(std::vector<std::string> extra = {}) {
  std::vector<std::string> argv{DAGENT_BINARY, "run", "task.yaml", "--distributed", "--config", "config.yaml", "--json"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

json::object result_of(const ProcessResult& r) {
  INFO(r.err);
  REQUIRE_FALSE(r.out.empty());
  return json::parse(r.out).as_object();
}

std::string worker_of(const std::string& line) { return line.substr(line.rfind(' ') + 1); }

}  // namespace

TEST_CASE("Distributed run with 3 workers survives a worker killed with SIGKILL mid-step", "[distributed][cli]") {
  Cluster cluster;
  cluster.write_plan(R"(  - {id: 1, action: gate, parameters: {key: a}}
  - {id: 2, action: gate, parameters: {key: b}}
  - {id: 3, action: gate, parameters: {key: c}}
  - {id: 4, action: gate, parameters: {key: d}}
)");
  std::vector<ChildProcess*> workers{&cluster.start_worker("w1", 1), &cluster.start_worker("w2", 1),
                                     &cluster.start_worker("w3", 1)};
  cluster.wait_for_workers(3);
  ChildProcess coordinator(coordinator_argv(), cluster.path());
  cluster.wait_for_lines("start ", 3);  // each worker holds one step

  const std::string first = cluster.lines_with("start ").front();  // "start KEY WORKER"
  const std::string victim = worker_of(first);
  const std::string key = first.substr(6, first.find(' ', 6) - 6);
  const auto index = static_cast<std::size_t>(victim.back() - '1');
  workers[index]->kill(SIGKILL);
  CHECK(workers[index]->wait().exit_code == 128 + SIGKILL);
  cluster.release();

  auto run = coordinator.wait();
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  const auto result = result_of(run);
  CHECK(result.at("status") == "succeeded");
  for (const auto& step : result.at("steps").as_array()) CHECK(step.at("status") == "succeeded");
  // Every call's result was accepted once: one "done" per key, none by the killed worker.
  for (std::string k : {"a", "b", "c", "d"}) {
    INFO("key " << k);
    CHECK(cluster.lines_with("done " + k + " ").size() == 1);
  }
  // The killed worker's call ran again elsewhere (reclaimed after the visibility timeout).
  const auto starts = cluster.lines_with("start " + key + " ");
  REQUIRE(starts.size() == 2);
  CHECK(worker_of(starts[0]) == victim);
  CHECK(worker_of(starts[1]) != victim);
  CHECK(worker_of(cluster.lines_with("done " + key + " ").front()) != victim);
}

TEST_CASE("A distributed coordinator killed while workers hold steps resumes without running them again",
          "[distributed][cli]") {
  Cluster cluster;
  cluster.write_plan(R"(  - {id: 1, action: gate, parameters: {key: a}}
  - {id: 2, action: gate, parameters: {key: b}}
  - {id: 3, action: gate, parameters: {key: c}, dependencies: [1, 2]}
)");
  cluster.start_worker("w1", 1);
  cluster.start_worker("w2", 1);
  cluster.wait_for_workers(2);
  {
    ChildProcess coordinator(coordinator_argv({"--record", "run.jsonl"}), cluster.path());
    cluster.wait_for_lines("start ", 2);
    coordinator.kill(SIGKILL);
    CHECK(coordinator.wait().exit_code == 128 + SIGKILL);
  }
  // The workers finish steps 1 and 2 while no coordinator waits for them.
  cluster.release();
  cluster.wait_for_lines("done ", 2);

  auto resumed = run_process(coordinator_argv({"--resume", "run.jsonl"}), cluster.path());
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  const auto result = result_of(resumed);
  CHECK(result.at("status") == "succeeded");
  for (const auto& step : result.at("steps").as_array()) CHECK(step.at("status") == "succeeded");
  CHECK(cluster.lines_with("start a ").size() == 1);
  CHECK(cluster.lines_with("start b ").size() == 1);
  CHECK(cluster.lines_with("start c ").size() == 1);
  CHECK(cluster.lines_with("done ").size() == 3);
}

TEST_CASE("A remote step times out and is retried like a local one, and its calls are cancelled",
          "[distributed][cli]") {
  Cluster cluster("executor: {step_timeout_ms: 300, step_retries: 1}\n");
  cluster.write_plan(R"(  - {id: 1, action: gate, parameters: {key: never}}
)");
  cluster.start_worker("w1", 2);
  cluster.wait_for_workers(1);
  auto run = run_process(coordinator_argv(), cluster.path());
  INFO(run.err);
  CHECK(run.exit_code == 1);
  const auto result = result_of(run);
  const auto& step = result.at("steps").as_array().at(0).as_object();
  CHECK(step.at("status") == "failed");
  CHECK(step.at("attempts").as_int64() == 2);
  CHECK_THAT(std::string(step.at("error").as_string()), Catch::Contains("timed out after 300 ms"));
  // Both given-up calls (two keys: a retry is a new call) are marked cancelled for the worker.
  const std::string cancels = cluster.redis_cli({"KEYS", "dagent:v1:cancel:*"});
  CHECK(std::count(cancels.begin(), cancels.end(), '\n') == 2);
}

TEST_CASE("A step whose tool no worker offers runs in the coordinator", "[distributed][cli]") {
  Cluster cluster;
  cluster.write_worker_config("tools: {enabled: [write_file]}\n");
  cluster.write_plan(R"(  - {id: 1, action: write_file, parameters: {path: out/a.txt, content: remote}}
  - {id: 2, action: list_dir, parameters: {path: out}, dependencies: [1]}
)");
  cluster.start_worker("w1", 1, {}, "worker.yaml");
  cluster.wait_for_workers(1);
  auto run = run_process(coordinator_argv(), cluster.path());
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.err, Catch::Contains("on workers: crash, gate, sleep, write_file\n"));
  const auto result = result_of(run);
  const auto& listed = result.at("steps").as_array().at(1).at("output").at("entries").as_array();
  REQUIRE(listed.size() == 1);
  CHECK(dagent::test::read_text(cluster.path() / "out/a.txt") == "remote");
}

TEST_CASE("Malformed jobs and worker announcements in Redis are rejected without a crash", "[distributed][cli]") {
  Cluster cluster;
  cluster.write_plan(R"(  - {id: 1, action: gate, parameters: {key: a}}
)");
  cluster.release();
  auto& worker = cluster.start_worker("w1", 1);
  cluster.wait_for_workers(1);
  (void)cluster.redis_cli({"XADD", "dagent:v1:steps", "*", "key", "bad key!", "run", "r"});
  (void)cluster.redis_cli({"XADD", "dagent:v1:steps", "*", "key", "k1", "run", "r", "step", "1", "action", "gate",
                           "params", "{not json", "timeout_ms", "1000", "workspace", cluster.path().string()});
  (void)cluster.redis_cli({"SET", "dagent:v1:worker:bogus", "not json"});
  (void)cluster.redis_cli({"SADD", "dagent:v1:workers", "bogus"});
  auto run = run_process(coordinator_argv(), cluster.path());
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.err, Catch::Contains("ignored worker announcement dagent:v1:worker:bogus"));
  worker.kill(SIGTERM);  // a clean stop: the worker withdraws and exits 0
  auto stopped = worker.wait();
  INFO(stopped.err);
  CHECK(stopped.exit_code == 0);
  CHECK_THAT(stopped.err, Catch::Contains("rejected job") && Catch::Contains("key must be 1 to 200"));
  CHECK_THAT(stopped.err, Catch::Contains("params is not a JSON object"));
  CHECK(cluster.redis_cli({"SISMEMBER", "dagent:v1:workers", "w1"}) == "0\n");
}

TEST_CASE("A worker refuses a workspace outside its workspace roots", "[distributed][cli]") {
  Cluster cluster;
  TempDir elsewhere;
  cluster.write_plan(R"(  - {id: 1, action: write_file, parameters: {path: a.txt, content: x}}
)");
  cluster.start_worker("w1", 1, {elsewhere.path().string()});
  cluster.wait_for_workers(1);
  auto run = run_process(coordinator_argv(), cluster.path());
  INFO(run.err);
  CHECK(run.exit_code == 1);
  const auto result = result_of(run);
  CHECK_THAT(std::string(result.at("steps").as_array().at(0).at("error").as_string()),
             Catch::Contains("refuses the workspace") && Catch::Contains("--workspace-root"));
  CHECK_FALSE(std::filesystem::exists(cluster.path() / "a.txt"));
}

TEST_CASE("Distributed run with no live worker warns once and runs every step here", "[distributed][cli]") {
  Cluster cluster;
  cluster.write_plan(R"(  - {id: 1, action: write_file, parameters: {path: a.txt, content: here}}
)");
  auto run = run_process(coordinator_argv(), cluster.path());
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.err, Catch::Contains("no live worker"));
  CHECK(dagent::test::read_text(cluster.path() / "a.txt") == "here");
}

TEST_CASE("Distributed run with Redis unreachable does not start", "[distributed][cli]") {
  TempDir dir;
  dir.write("config.yaml", "redis: {url: \"redis://127.0.0.1:" + std::to_string(dagent::test::free_loopback_port()) +
                               "\"}\nmemory: {enabled: false}\n");
  dir.write("task.yaml", "workspace: .\nplan:\n  - {id: 1, action: write_file, parameters: {path: a.txt, content: x}}\n");
  auto run = run_process(coordinator_argv(), dir.path());
  CHECK(run.exit_code == 2);
  CHECK_THAT(run.err, Catch::Contains("cannot reach Redis to find the workers"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "a.txt"));
}

TEST_CASE("Ctrl-C on a distributed run cancels the call a worker is running", "[distributed][cli]") {
  Cluster cluster;
  cluster.write_plan(R"(  - {id: 1, action: gate, parameters: {key: held}}
)");
  auto& worker = cluster.start_worker("w1", 1);
  cluster.wait_for_workers(1);
  ChildProcess coordinator(coordinator_argv(), cluster.path());
  cluster.wait_for_lines("start held ", 1);
  coordinator.kill(SIGINT);
  auto run = coordinator.wait();
  INFO(run.err);
  CHECK(run.exit_code == 1);
  CHECK(result_of(run).at("error") == "interrupted");
  // The gate is never released: the worker stops it because the coordinator gave the call up
  // (at its next refresh), so SIGTERM then finds nothing running.
  Cluster::wait_until([&] { return cluster.redis_cli({"KEYS", "dagent:v1:cancel:*"}).size() > 1; }, "the cancel key");
  worker.kill(SIGTERM);
  auto stopped = worker.wait();
  INFO(stopped.err);
  CHECK(stopped.exit_code == 0);
  CHECK_THAT(stopped.err, Catch::Contains("(the coordinator gave it up)"));
  CHECK(cluster.lines_with("done ").empty());
}

TEST_CASE("A worker offers the tools of its MCP servers and the coordinator runs them there", "[distributed][cli][mcp]") {
  Cluster cluster;
  const std::string everything = DAGENT_SOURCE_DIR "/tests/mcp/node_modules/.bin/mcp-server-everything";
  cluster.write_worker_config("tools: {enabled: []}\nmcp:\n  servers:\n    everything: {command: [\"" + everything +
                              "\", stdio]}\n");
  cluster.write_plan("  - {id: 1, action: everything.echo, parameters: {message: \"from a worker\"}}\n");
  auto& worker = cluster.start_worker("w1", 1, {}, "worker.yaml");
  cluster.wait_for_workers(1);  // announced once its servers are up
  auto run = run_process(coordinator_argv(), cluster.path());
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  const auto result = result_of(run);
  CHECK_THAT(std::string(result.at("steps").as_array().at(0).at("output").at("text").as_string()),
             Catch::Contains("from a worker"));
  worker.kill(SIGTERM);
  auto stopped = worker.wait();
  INFO(stopped.err);
  CHECK(stopped.exit_code == 0);
  CHECK_THAT(stopped.err, Catch::Contains("running everything.echo"));
}

TEST_CASE("A worker outlives a Redis restart: it backs off, announces itself again and takes jobs", "[distributed][cli]") {
  Cluster cluster;
  cluster.write_plan("  - {id: 1, action: write_file, parameters: {path: a.txt, content: again}}\n");
  auto& worker = cluster.start_worker("w1", 1);
  cluster.wait_for_workers(1);
  cluster.redis().kill();  // no persistence: the group, the announcement and the stream are gone
  cluster.redis().start();
  cluster.wait_for_workers(1);
  auto run = run_process(coordinator_argv(), cluster.path());
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK_THAT(run.err, Catch::Contains("on workers:"));
  CHECK(dagent::test::read_text(cluster.path() / "a.txt") == "again");
  worker.kill(SIGTERM);
  auto stopped = worker.wait();
  INFO(stopped.err);
  CHECK(stopped.exit_code == 0);
  CHECK_THAT(stopped.err, Catch::Contains("(retrying)"));
  CHECK_THAT(stopped.err, Catch::Contains("running write_file"));
}

TEST_CASE("A job that kills every worker taking it fails after execution.max_deliveries", "[distributed][cli]") {
  Cluster cluster;
  cluster.write_worker_config("", "{visibility_timeout_ms: 1000, max_deliveries: 1}");
  cluster.write_plan("  - {id: 1, action: crash, parameters: {}}\n");
  cluster.start_worker("w1", 1, {}, "worker.yaml");
  cluster.start_worker("w2", 1, {}, "worker.yaml");
  cluster.wait_for_workers(2);
  auto run = run_process(coordinator_argv(), cluster.path());
  INFO(run.err);
  CHECK(run.exit_code == 1);
  const auto result = result_of(run);
  CHECK_THAT(std::string(result.at("steps").as_array().at(0).at("error").as_string()),
             Catch::Contains("the job was taken 2 times") && Catch::Contains("execution.max_deliveries"));
  CHECK(cluster.lines_with("crash").size() == 1);  // the second worker did not run it
}

TEST_CASE("dagent worker refuses a config without redis.url and a name that is not a plain word", "[distributed][cli]") {
  TempDir dir;
  dir.write("config.yaml", "memory: {enabled: false}\n");
  auto no_url = run_process({DAGENT_BINARY, "worker", "--config", "config.yaml"}, dir.path());
  CHECK(no_url.exit_code == 2);
  CHECK_THAT(no_url.err, Catch::Contains("redis.url is not set"));
  auto bad_name = run_process({DAGENT_BINARY, "worker", "--config", "config.yaml", "--set", "redis.url=redis://127.0.0.1:1",
                               "--name", "a b"},
                              dir.path());
  CHECK(bad_name.exit_code == 2);
  CHECK_THAT(bad_name.err, Catch::Contains("--name: use up to 100 letters"));
}

TEST_CASE("A goal is planned with the workers' tools, and its llm step runs in the coordinator", "[distributed][cli]") {
  using dagent::test::k_answer;
  using dagent::test::k_intent;
  using dagent::test::k_plan;
  using dagent::test::rule;
  const char* plan = R"({"steps": [
    {"id": 1, "action": "gate", "parameters": {"key": "g"}},
    {"id": 2, "action": "llm", "parameters": {"prompt": "Say who ran it: $step1.worker"}}]})";
  json::array rules{rule(k_intent, R"({"intent": "run the gate", "tools": []})"), rule(k_plan, plan),
                    rule("Say who ran it", "w1 ran it"), rule(k_answer, "Done.")};
  dagent::test::TestServer server(dagent::test::TestServerOptions{.script = json::object{{"rules", std::move(rules)}}});
  Cluster cluster;
  cluster.dir().write("task.yaml", "goal: Run the gate and say who ran it\nworkspace: .\n");
  cluster.release();
  cluster.start_worker("w1", 1);
  cluster.wait_for_workers(1);
  auto run = run_process(coordinator_argv(), cluster.path(),
                         {"OPENAI_BASE_URL=" + server.base_url(), "OPENAI_API_KEY=sk-distributed-test"});
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  const auto result = result_of(run);
  CHECK(result.at("steps").as_array().at(1).at("output").at("text") == "w1 ran it");
  CHECK(cluster.lines_with("done g w1").size() == 1);
  // The planner was shown the tool only the worker has, with its description.
  int shown = 0;
  const auto stats = server.stats();
  for (const auto& r : stats.at("recent").as_array())
    shown += std::string_view(r.at("body").as_string()).find("waits for the release file") != std::string_view::npos;
  CHECK(shown >= 1);
}
