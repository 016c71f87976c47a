#include "observe/metrics.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "config/config.hpp"
#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"
#include "net/http_client.hpp"
#include "net/url.hpp"
#include "support/process.hpp"
#include "support/run_on.hpp"
#include "support/scripted_prompts.hpp"
#include "support/test_server_process.hpp"
#include "support/test_tools.hpp"

namespace {

namespace json = boost::json;
namespace observe = dagent::observe;
using dagent::executor::RunResult;  // record_run takes the executor's result
using dagent::RunStatus;
using dagent::executor::StepResult;
using dagent::StepStatus;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

// Every counter and gauge of observe::metrics() at one moment; the tests compare two of them,
// since many test cases share the process-wide registry.
struct Snapshot {
  std::map<std::string, std::int64_t> v;

  static Snapshot take() {
    const auto& m = observe::metrics();
    auto req = [&](const char* endpoint, const char* cls) {
      return static_cast<std::int64_t>(m.model_requests.counter({endpoint, cls}).value());
    };
    Snapshot s;
    for (const char* e : {"chat", "embeddings"})
      for (const char* c : {"2xx", "4xx", "5xx", "error"}) s.v[std::string(e) + "_" + c] = req(e, c);
    auto n = [](observe::Counter c) { return static_cast<std::int64_t>(c.value()); };
    s.v["429"] = n(m.rate_limited);
    s.v["chat_calls"] = n(m.chat_calls);
    s.v["embedding_calls"] = n(m.embedding_calls);
    s.v["prompt_tokens"] = n(m.prompt_tokens);
    s.v["completion_tokens"] = n(m.completion_tokens);
    s.v["embedding_tokens"] = n(m.embedding_tokens);
    s.v["model_retries"] = n(m.model_retries);
    s.v["step_retries"] = n(m.step_retries);
    s.v["limiter_waits"] = static_cast<std::int64_t>(m.rate_limiter_wait.count());
    const auto model = observe::connection_meters("model");
    s.v["connections_opened"] = n(model.opened);
    s.v["connections_open"] = model.open.value();
    s.v["connections_idle"] = model.idle.value();
    s.v["cache_hits"] = n(m.cache_hits_memory) + n(m.cache_hits_redis);
    s.v["cache_misses"] = n(m.cache_misses);
    s.v["batches"] = static_cast<std::int64_t>(m.embedding_batch.count());
    s.v["batch_inputs"] = static_cast<std::int64_t>(m.embedding_batch.sum());
    s.v["runs_succeeded"] = n(m.runs_succeeded);
    s.v["runs_failed"] = n(m.runs_failed);
    return s;
  }

  std::int64_t delta(const Snapshot& before, const std::string& key) const { return v.at(key) - before.v.at(key); }
};

std::uint64_t step_count(std::string_view action, StepStatus status) {
  return observe::metrics().step_duration.histogram({action, to_string(status)}).count();
}

dagent::config::Config config_for(const TestServer& server, const TempDir& dir) {
  dagent::config::Config cfg;
  cfg.llm.base_url = server.base_url();
  cfg.base_dir = dir.path();
  cfg.tools.workspace = "ws";
  cfg.performance.caching.llm_responses = true;
  return cfg;
}

json::object status_rule(const char* contains, int status) {
  return json::object{{"path", dagent::test::k_chat},
                      {"contains", contains},
                      {"nth", 1},
                      {"status", status},
                      {"headers", json::object{{"retry-after-ms", "1"}}}};
}

}  // namespace

TEST_CASE("A run's metric deltas equal its result JSON metrics: calls, tokens, retries, 429s, cache, connections",
          "[metrics][runtime]") {
  // alpha meets a 429 and beta a 500 on their first try; the second alpha is a cache hit; gamma
  // is stored in memory (one embeddings request); the missing file fails its step.
  json::array rules{status_rule("alpha question", 429), status_rule("beta question", 500)};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  dir.write("ws/.keep", "");
  auto plan = json::parse(R"([
    {"id": 1, "action": "llm", "parameters": {"prompt": "alpha question"}},
    {"id": 2, "action": "llm", "parameters": {"prompt": "beta question"}},
    {"id": 3, "action": "llm", "parameters": {"prompt": "alpha question"}, "dependencies": [1]},
    {"id": 4, "action": "memory_add", "parameters": {"text": "gamma note"}},
    {"id": 5, "action": "read_file", "parameters": {"path": "missing.txt"}}
  ])");
  const std::pair<std::string, StepStatus> kinds[] = {
      {"llm", StepStatus::succeeded},        {"llm", StepStatus::failed},
      {"memory_add", StepStatus::succeeded}, {"memory_add", StepStatus::failed},
      {"read_file", StepStatus::succeeded},  {"read_file", StepStatus::failed}};
  std::map<std::pair<std::string, StepStatus>, std::uint64_t> steps_before;
  for (const auto& k : kinds) steps_before[k] = step_count(k.first, k.second);

  const auto before = Snapshot::take();
  RunResult r;
  {
    dagent::Runtime runtime = dagent::runtime::make_runtime(config_for(server, dir));
    auto outcome = dagent::runtime::run_plan(runtime, plan, {}, dir.path());
    INFO((outcome.problems.empty() ? outcome.result.error : outcome.problems.front()));
    REQUIRE(outcome.problems.empty());
    r = outcome.result;
    const auto during = Snapshot::take();
    // Every connection still open lives idle in the runtime's pool once the run is over.
    CHECK(during.delta(before, "connections_open") >= 1);
    CHECK(during.delta(before, "connections_open") == during.delta(before, "connections_idle"));
  }
  const auto after = Snapshot::take();
  auto d = [&](const char* key) { return after.delta(before, key); };
  const auto& m = r.metrics;
  REQUIRE(r.status == RunStatus::failed);
  REQUIRE(dagent::test::step_of(r, 1).status == StepStatus::succeeded);
  REQUIRE(dagent::test::step_of(r, 2).status == StepStatus::succeeded);
  REQUIRE(dagent::test::step_of(r, 4).status == StepStatus::succeeded);
  REQUIRE(dagent::test::step_of(r, 5).status == StepStatus::failed);

  // What the result JSON says, and what was scripted.
  CHECK(m.llm_calls == 2);
  CHECK(m.cache_hits == 1);
  CHECK(m.embedding_calls == 1);
  CHECK(d("chat_calls") == m.llm_calls);
  CHECK(d("embedding_calls") == m.embedding_calls);
  CHECK(d("prompt_tokens") + d("embedding_tokens") == m.prompt_tokens);
  CHECK(d("completion_tokens") == m.completion_tokens);
  CHECK(d("completion_tokens") > 0);
  CHECK(d("embedding_tokens") > 0);
  CHECK(d("model_retries") == 2);
  CHECK(d("model_retries") + d("step_retries") == m.retries);
  CHECK(d("cache_hits") == m.cache_hits);
  CHECK(d("cache_misses") == 3);  // alpha and beta once, the embedding
  CHECK(d("connections_opened") == m.connections_opened);
  CHECK(d("429") == 1);
  CHECK(d("chat_4xx") == 1);
  CHECK(d("chat_5xx") == 1);
  CHECK(d("chat_2xx") == 2);
  CHECK(d("chat_error") == 0);
  CHECK(d("embeddings_2xx") == 1);
  CHECK(d("chat_2xx") + d("chat_4xx") + d("chat_5xx") == server.requests_to(dagent::test::k_chat));
  CHECK(d("embeddings_2xx") == server.requests_to("/v1/embeddings"));
  // Each attempt passed the rate limiter once.
  CHECK(d("limiter_waits") == d("chat_2xx") + d("chat_4xx") + d("chat_5xx") + d("embeddings_2xx"));
  CHECK(d("batches") == 1);
  CHECK(d("batch_inputs") >= 1);
  CHECK(d("runs_failed") == 1);
  CHECK(d("runs_succeeded") == 0);
  // The runtime is gone, and its connections with it.
  CHECK(d("connections_open") == 0);
  CHECK(d("connections_idle") == 0);

  std::map<std::pair<std::string, StepStatus>, std::uint64_t> ran;
  for (const StepResult& s : r.steps)
    if (s.attempts > 0) ++ran[{s.action, s.status}];
  for (const auto& k : kinds) {
    INFO(k.first << " " << to_string(k.second));
    CHECK(step_count(k.first, k.second) - steps_before[k] == ran[k]);
  }
}

TEST_CASE("record_run counts runs by status and the steps and items that ran", "[metrics]") {
  RunResult r;
  r.status = RunStatus::succeeded;
  StepResult ran;
  ran.action = "metrics_test_tool";
  ran.status = StepStatus::succeeded;
  ran.attempts = 1;
  ran.started_ms = 10;
  ran.finished_ms = 1510;
  StepResult skipped = ran;
  skipped.status = StepStatus::skipped;
  skipped.attempts = 0;
  StepResult fanned = ran;
  fanned.action = "metrics_test_fan";
  fanned.fan_out = true;
  fanned.items = {{.index = 0, .status = StepStatus::succeeded, .attempts = 1, .started_ms = 0, .finished_ms = 20},
                  {.index = 1, .status = StepStatus::failed, .attempts = 2, .started_ms = 0, .finished_ms = 40},
                  {.index = 2, .status = StepStatus::skipped, .attempts = 0}};
  r.steps = {ran, skipped, fanned};

  const auto& m = observe::metrics();
  const auto runs = m.runs_succeeded.value();
  const auto tool = m.step_duration.histogram({"metrics_test_tool", "succeeded"});
  const auto tool_skipped = m.step_duration.histogram({"metrics_test_tool", "skipped"});
  const auto item_ok = m.item_duration.histogram({"metrics_test_fan", "succeeded"});
  const auto item_failed = m.item_duration.histogram({"metrics_test_fan", "failed"});
  const auto tool_count = tool.count();
  const double tool_sum = tool.sum();
  observe::record_run(r);
  CHECK(m.runs_succeeded.value() == runs + 1);
  CHECK(tool.count() == tool_count + 1);
  CHECK(tool.sum() - tool_sum == Approx(1.5));
  CHECK(tool_skipped.count() == 0);
  CHECK(item_ok.count() == 1);
  CHECK(item_failed.count() == 1);
  CHECK(item_failed.sum() == Approx(0.04));
  const auto text = observe::render();
  CHECK(text.find("dagent_step_duration_seconds_bucket{action=\"metrics_test_tool\",status=\"succeeded\",le=\"2.5\"} ") !=
        std::string::npos);
}

TEST_CASE("write_metrics_file writes the exposition, and names the path it cannot write", "[metrics]") {
  TempDir dir;
  const auto path = dir.path() / "metrics.prom";
  REQUIRE(observe::write_metrics_file(path));
  const auto text = dagent::test::read_text(path);
  CHECK(text.starts_with("# HELP dagent_"));
  CHECK(text.find("# TYPE dagent_runs_total counter\n") != std::string::npos);
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator{}) == 1);

  SECTION("an existing file is replaced") {
    dir.write("metrics.prom", "old");
    REQUIRE(observe::write_metrics_file(path));
    CHECK(dagent::test::read_text(path).starts_with("# HELP"));
  }
  SECTION("a folder that does not exist") {
    const auto bad = dir.path() / "no" / "such" / "metrics.prom";
    auto written = observe::write_metrics_file(bad);
    REQUIRE_FALSE(written);
    CHECK_THAT(written.error(), Catch::StartsWith("cannot write metrics file '" + bad.string() + "': "));
    CHECK_THAT(written.error(), Catch::Contains("No such file or directory"));
  }
}

TEST_CASE("A replayed run counts as a run and its steps, but sends no model request", "[metrics][record]") {
  TestServer server;
  TempDir dir;
  dir.write("ws/.keep", "");
  auto cfg = config_for(server, dir);
  cfg.performance.caching.llm_responses = false;
  dagent::Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto plan = json::parse(R"([{"id": 1, "action": "llm", "parameters": {"prompt": "recorded question"}}])");
  dagent::RunOptions record;
  record.record_file = dir.path() / "run.jsonl";
  auto recorded = runtime.run_plan(plan, {}, dir.path(), record);
  REQUIRE(recorded.exit_code() == 0);
  REQUIRE(server.requests_to(dagent::test::k_chat) == 1);

  const auto before = Snapshot::take();
  const auto llm_steps = step_count("llm", StepStatus::succeeded);
  dagent::RunOptions replay;
  replay.replay_file = record.record_file;
  auto again = runtime.run_plan(plan, {}, dir.path(), replay);
  REQUIRE(again.exit_code() == 0);
  const auto after = Snapshot::take();
  CHECK(again.result.metrics.llm_calls == 1);  // the recorded call, in the result
  CHECK(server.requests_to(dagent::test::k_chat) == 1);
  for (const char* key : {"chat_2xx", "chat_calls", "prompt_tokens", "completion_tokens", "connections_opened",
                          "limiter_waits", "cache_misses"}) {
    INFO(key);
    CHECK(after.delta(before, key) == 0);
  }
  CHECK(after.delta(before, "runs_succeeded") == 1);
  CHECK(step_count("llm", StepStatus::succeeded) == llm_steps + 1);
}

TEST_CASE("An HttpClient counts its connections under its peer: opened, open and idle while it lives",
          "[metrics][net]") {
  TestServer server;
  boost::asio::io_context io;
  const auto mcp = observe::connection_meters("mcp");
  const auto model = observe::connection_meters("model");
  const auto opened = mcp.opened.value(), model_opened = model.opened.value();
  const auto open = mcp.open.value(), idle = mcp.idle.value();
  dagent::net::HttpRequest request;
  request.target = "/v1/chat/completions";
  request.headers.push_back({"content-type", "application/json"});
  request.body = R"({"model": "m", "messages": [{"role": "user", "content": "hi"}]})";
  const auto origin = dagent::net::parse_base_url(server.base_url())->origin;
  {
    dagent::net::HttpOptions options;
    options.peer = "mcp";
    dagent::net::HttpClient http(io.get_executor(), nullptr, options);
    for (int i = 0; i < 2; ++i) {
      auto got = dagent::test::run_on(io, http.send(origin, request));
      REQUIRE(got.has_value());
      CHECK(mcp.opened.value() == opened + 1);  // the second request reuses the pooled connection
      CHECK(mcp.open.value() == open + 1);
      CHECK(mcp.idle.value() == idle + 1);
    }
  }
  CHECK(mcp.opened.value() == opened + 1);
  CHECK(mcp.open.value() == open);
  CHECK(mcp.idle.value() == idle);
  CHECK(model.opened.value() == model_opened);
}
