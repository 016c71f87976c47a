// `dagent serve` over real HTTP: routes, auth, limits, bad input, runs and their event streams,
// cancellation, metrics, drain on SIGTERM and the run history.

#include <catch2/catch.hpp>

#include <csignal>
#include <future>
#include <map>
#include <thread>

#include <boost/json.hpp>

#include "net/sse_parser.hpp"
#include "support/process.hpp"
#include "support/serve_process.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace json = boost::json;
using dagent::test::get;
using dagent::test::HttpReply;
using dagent::test::HttpRequest;
using dagent::test::post_json;
using dagent::test::run_process;
using dagent::test::ServeProcess;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

// A config in `dir`: the history in h.db, no memory, the model at `server` (if any), and `extra` YAML.
void write_config(const TempDir& dir, const std::string& extra = {}) {
  dir.write("in.txt", "hello from the workspace\n");
  dir.write("config.yaml", "history:\n  path: h.db\nmemory:\n  enabled: false\n" + extra);
}

std::vector<std::string> model_env(const TestServer* server) {
  std::vector<std::string> env{"OPENAI_API_KEY=sk-test"};
  if (server) env.push_back("OPENAI_BASE_URL=" + server->base_url());
  return env;
}

// A fixed plan of `steps` read_file steps: no model needed.
json::object read_task(int steps = 2) {
  json::array plan;
  for (int i = 1; i <= steps; ++i)
    plan.push_back(json::object{{"id", i}, {"action", "read_file"}, {"parameters", {{"path", "in.txt"}}}});
  return json::object{{"goal", "read the file"}, {"plan", plan}};
}

// A fixed plan with one llm step whose prompt carries `marker` (the test server's rules match it).
json::object llm_task(const std::string& marker) {
  json::array plan{json::object{{"id", 1}, {"action", "llm"}, {"parameters", {{"prompt", "Say hello " + marker}, {"max_tokens", 20}}}},
                   json::object{{"id", 2}, {"action", "read_file"}, {"parameters", {{"path", "in.txt"}}}}};
  return json::object{{"goal", "greet"}, {"plan", plan}};
}

std::vector<dagent::net::SseEvent> events_of(const HttpReply& reply) {
  dagent::net::SseParser parser;
  std::vector<dagent::net::SseEvent> out;
  REQUIRE(parser.feed(reply.body, out));
  CHECK_FALSE(parser.mid_event());
  return out;
}

std::string error_message(const HttpReply& reply) {
  return std::string(reply.json().at("error").at("message").as_string());
}

std::vector<std::string> error_problems(const HttpReply& reply) {
  std::vector<std::string> out;
  const auto body = reply.json();  // kept: the loop below walks into it
  for (const auto& p : body.at("error").at("problems").as_array()) out.emplace_back(p.as_string());
  return out;
}

HttpRequest del(std::string target) {
  HttpRequest r;
  r.method = "DELETE";
  r.target = std::move(target);
  return r;
}

// One sample of a Prometheus text exposition, by its full name with labels.
std::int64_t metric(const std::string& text, const std::string& name) {
  const auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) FAIL("no metric " << name << " in:\n" << text);
  return std::stoll(text.substr(at + name.size() + 2));
}

// The sum of the samples whose line starts with `prefix` and holds `label` (e.g. every action's
// step-duration count with status="succeeded").
std::int64_t sum_of(const std::string& text, const std::string& prefix, const std::string& label) {
  std::int64_t sum = 0;
  std::size_t at = 0;
  while ((at = text.find("\n" + prefix, at)) != std::string::npos) {
    const auto end = text.find('\n', at + 1);
    const std::string line = text.substr(at + 1, end - at - 1);
    const auto space = line.rfind(' ');
    if (line.find(label) != std::string::npos && space != std::string::npos) sum += std::stoll(line.substr(space + 1));
    at = end;
  }
  return sum;
}

// Waits for `condition` (an event elsewhere: a request the model server saw, a state the service
// reports), at most 20 s; fails the test when it never holds.
template <class Condition>
void wait_until(Condition condition, const char* what) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) FAIL("never happened: " << what);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

TEST_CASE("dagent serve answers healthz and 404 and 405 with JSON errors", "[serve]") {
  TempDir dir;
  write_config(dir);
  ServeProcess serve({}, dir.path(), model_env(nullptr));
  auto health = serve.request(get("/healthz"));
  CHECK(health.status == 200);
  CHECK(health.json().at("status") == "ok");
  auto unknown = serve.request(get("/nope"));
  CHECK(unknown.status == 404);
  CHECK(unknown.header("content-type") == "application/json");
  CHECK_FALSE(error_message(unknown).empty());
  auto missing = serve.request(get("/v1/runs/0123456789abcdef"));
  CHECK(missing.status == 404);
  CHECK_THAT(error_message(missing), Catch::Contains("0123456789abcdef"));
  CHECK(serve.request(get("/v1/runs/nope/events")).status == 404);
  CHECK(serve.request(del("/v1/runs/nope")).status == 404);
  HttpRequest put = get("/v1/runs");
  put.method = "PUT";
  auto bad_method = serve.request(put);
  CHECK(bad_method.status == 405);
  CHECK(bad_method.header("allow") == "GET, POST");
  auto report = serve.request(get("/runs/nope"));
  CHECK(report.status == 404);
  auto listed = serve.request(get("/v1/runs"));
  CHECK(listed.status == 200);
  CHECK(listed.json().at("runs").as_array().empty());
}

TEST_CASE("dagent serve with a token refuses requests without it except healthz", "[serve]") {
  TempDir dir;
  write_config(dir, "serve:\n  token_env: DAGENT_SERVE_TOKEN\n");
  const std::string secret = "tok-7f3a9c2e55d1";
  auto env = model_env(nullptr);
  env.push_back("DAGENT_SERVE_TOKEN=" + secret);
  ServeProcess serve({}, dir.path(), env);
  CHECK(serve.request(get("/healthz")).status == 200);
  for (const char* target : {"/v1/runs", "/metrics", "/v1/runs/abc", "/v1/runs/abc/events"}) {
    INFO(target);
    auto none = serve.request(get(target));
    CHECK(none.status == 401);
    CHECK(none.header("www-authenticate") == "Bearer");
  }
  HttpRequest wrong = get("/v1/runs");
  wrong.headers.emplace_back("Authorization", "Bearer " + secret + "x");
  CHECK(serve.request(wrong).status == 401);
  auto refused_post = serve.request(post_json("/v1/runs", read_task()));
  CHECK(refused_post.status == 401);
  serve.token = secret;
  CHECK(serve.request(get("/v1/runs")).status == 200);
  CHECK(serve.request(get("/metrics")).status == 200);
  serve.kill(SIGTERM);
  auto ended = serve.wait();
  CHECK(ended.exit_code == 0);
  CHECK(ended.err.find(secret) == std::string::npos);
}

TEST_CASE("dagent serve refuses to listen beyond loopback without a token", "[serve]") {
  TempDir dir;
  write_config(dir);
  auto r = run_process({DAGENT_BINARY, "serve", "--listen", "0.0.0.0:0"}, dir.path(), model_env(nullptr));
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("without a token"));
  auto bad = run_process({DAGENT_BINARY, "serve", "--listen", "nowhere"}, dir.path(), model_env(nullptr));
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("HOST:PORT"));
  write_config(dir, "serve:\n  token_env: DAGENT_SERVE_TOKEN_UNSET\n");
  auto unset = run_process({DAGENT_BINARY, "serve", "--listen", "127.0.0.1:0"}, dir.path(), model_env(nullptr));
  CHECK(unset.exit_code == 2);
  CHECK_THAT(unset.err, Catch::Contains("DAGENT_SERVE_TOKEN_UNSET"));
}

TEST_CASE("dagent serve answers bad requests with 4xx and the problems of dagent validate", "[serve]") {
  TempDir dir;
  write_config(dir, "serve:\n  max_body_bytes: 4096\n");
  ServeProcess serve({}, dir.path(), model_env(nullptr));

  HttpRequest big = post_json("/v1/runs", json::object{{"goal", std::string(8000, 'x')}});
  auto too_large = serve.request(big);
  CHECK(too_large.status == 413);
  CHECK_THAT(error_message(too_large), Catch::Contains("max_body_bytes"));

  HttpRequest malformed;
  malformed.method = "POST";
  malformed.target = "/v1/runs";
  malformed.body = "{\"goal\": ";
  auto not_json = serve.request(malformed);
  CHECK(not_json.status == 400);
  CHECK_THAT(error_message(not_json), Catch::Contains("not JSON"));

  // The same task as a file: `dagent validate` prints the same problem after its location.
  const json::object unknown_key{{"goal", "x"}, {"plna", json::array{}}};
  dir.write("bad.yaml", json::serialize(unknown_key));
  auto validate = run_process({DAGENT_BINARY, "validate", "bad.yaml"}, dir.path(), model_env(nullptr));
  REQUIRE(validate.exit_code == 2);
  auto bad_task = serve.request(post_json("/v1/runs", unknown_key));
  CHECK(bad_task.status == 400);
  const auto problems = error_problems(bad_task);
  REQUIRE(problems.size() == 1);
  CHECK_THAT(problems[0], Catch::StartsWith("request:1: "));
  const std::string message = problems[0].substr(problems[0].find(": ") + 2);
  CHECK_THAT(message, Catch::Contains("plna"));
  CHECK_THAT(validate.err, Catch::Contains(message));

  auto host_file = serve.request(post_json("/v1/runs", json::object{{"goal", "x"}, {"workspace", "/etc"}}));
  CHECK(host_file.status == 400);
  CHECK_THAT(error_problems(host_file).at(0), Catch::Contains("workspace"));

  auto no_such_task = serve.request(post_json("/v1/runs", json::object{{"task", "../../etc/passwd"}}));
  CHECK(no_such_task.status == 400);
  CHECK_THAT(error_problems(no_such_task).at(0), Catch::Contains("no configured task"));

  auto array = serve.request(post_json("/v1/runs", json::array{1, 2}));
  CHECK(array.status == 400);
  CHECK(serve.request(get("/healthz")).status == 200);  // still serving
}

TEST_CASE("dagent serve exits 0 on SIGTERM when idle", "[serve]") {
  TempDir dir;
  write_config(dir);
  ServeProcess serve({}, dir.path(), model_env(nullptr));
  CHECK(serve.request(get("/healthz")).status == 200);
  serve.kill(SIGTERM);
  auto ended = serve.wait();
  INFO(ended.err);
  CHECK(ended.exit_code == 0);
}

TEST_CASE("dagent serve runs a task and streams its events to a late subscriber", "[serve][runs]") {
  TempDir dir;
  write_config(dir);
  ServeProcess serve({}, dir.path(), model_env(nullptr));
  auto created = serve.request(post_json("/v1/runs", read_task(3)));
  INFO(created.body);
  REQUIRE(created.status == 201);
  const std::string id(created.json().at("id").as_string());
  // Read until the end: the stream closes after `end`.
  auto stream = serve.request(get("/v1/runs/" + id + "/events"));
  REQUIRE(stream.status == 200);
  CHECK_THAT(stream.header("content-type"), Catch::StartsWith("text/event-stream"));
  const auto events = events_of(stream);
  REQUIRE(events.size() >= 3);
  CHECK(events.front().event == "queued");
  CHECK(events.back().event == "end");
  std::uint64_t previous = 0;
  int finished_steps = 0;
  for (const auto& e : events) {
    CHECK(std::stoull(e.id) == previous + 1);
    previous = std::stoull(e.id);
    const auto data = json::parse(e.data);
    CHECK(data.at("at").as_int64() > 0);
    if (e.event == "step" && data.at("status") == "succeeded") ++finished_steps;
  }
  CHECK(finished_steps == 3);
  const auto end = json::parse(events.back().data);
  CHECK(end.at("status") == "succeeded");
  CHECK(end.at("exit_code") == 0);

  auto result = serve.request(get("/v1/runs/" + id));
  REQUIRE(result.status == 200);
  CHECK(result.json().at("status") == "succeeded");
  CHECK(result.json().at("steps").as_array().size() == 3);
  const std::string run_id(result.json().at("run_id").as_string());
  CHECK(serve.request(get("/v1/runs/" + run_id)).json().at("run_id").as_string() == run_id);  // its own id works too

  HttpRequest resume = get("/v1/runs/" + id + "/events");
  resume.headers.emplace_back("Last-Event-ID", std::to_string(previous - 1));
  const auto tail = events_of(serve.request(resume));
  REQUIRE(tail.size() == 1);
  CHECK(tail.front().event == "end");
  CHECK(serve.request(del("/v1/runs/" + id)).status == 409);  // already ended

  auto report = serve.request(get("/runs/" + id));
  CHECK(report.status == 200);
  CHECK_THAT(report.header("content-type"), Catch::StartsWith("text/html"));
  CHECK_THAT(report.body, Catch::Contains(run_id));
}

TEST_CASE("dagent serve takes 50 runs at once, cancels some and its metrics add up", "[serve][runs]") {
  TestServer server(TestServerOptions{
      .script = json::parse(R"({"rules": [{"path": "/v1/chat/completions", "contains": "STALL", "fault": "stall"}]})")});
  TempDir dir;
  write_config(dir, "serve:\n  max_concurrent_runs: 8\nllm:\n  timeout_ms: 60000\n  max_retries: 0\n");
  ServeProcess serve({}, dir.path(), model_env(&server));

  constexpr int k_stalled = 5, k_runs = 50;
  std::vector<HttpRequest> posts;
  for (int i = 0; i < k_runs; ++i) posts.push_back(post_json("/v1/runs", llm_task(i < k_stalled ? "STALL" : "ok")));
  const auto created = serve.requests(posts);
  std::vector<std::string> ids;
  for (const auto& c : created) {
    INFO(c.body);
    REQUIRE(c.status == 201);
    ids.emplace_back(c.json().at("id").as_string());
  }
  // The event streams of all 50, followed while the runs go and the stalled ones are cancelled.
  std::vector<HttpRequest> streams;
  for (const auto& id : ids) streams.push_back(get("/v1/runs/" + id + "/events"));
  auto followed = std::async(std::launch::async, [&serve, streams] { return serve.requests(streams, std::chrono::seconds(60)); });
  // The stalled runs are cancelled in their llm step, or before it (still queued): either way interrupted.
  wait_until([&] { return server.requests_to("/v1/chat/completions") >= k_stalled; }, "the stalled calls reached the model");
  for (int i = 0; i < k_stalled; ++i) {
    auto cancelled = serve.request(del("/v1/runs/" + ids[i]));
    CHECK((cancelled.status == 202 || cancelled.status == 200));
  }
  const auto replies = followed.get();

  std::map<std::string, int> outcomes;
  std::int64_t llm_calls = 0, prompt_tokens = 0, completion_tokens = 0, steps_succeeded = 0;
  for (int i = 0; i < k_runs; ++i) {
    INFO("run " << i);
    const auto events = events_of(replies[i]);
    REQUIRE_FALSE(events.empty());
    CHECK(events.back().event == "end");
    const auto end = json::parse(events.back().data);
    const auto result = serve.request(get("/v1/runs/" + ids[i])).json();
    CHECK(result.at("status") == end.at("status"));
    if (i < k_stalled) {
      CHECK(end.at("interrupted") == true);
      CHECK_THAT(std::string(result.at("error").as_string()), Catch::StartsWith("interrupted"));
      ++outcomes["interrupted"];
    } else {
      CHECK(end.at("status") == "succeeded");
      ++outcomes[std::string(result.at("status").as_string())];
    }
    if (const auto* m = result.as_object().if_contains("metrics")) {
      llm_calls += m->at("llm_calls").as_int64();
      prompt_tokens += m->at("prompt_tokens").as_int64();
      completion_tokens += m->at("completion_tokens").as_int64();
    }
    for (const auto& step : result.at("steps").as_array()) steps_succeeded += step.at("status") == "succeeded";
  }
  CHECK(outcomes["interrupted"] == k_stalled);
  CHECK(outcomes["succeeded"] == k_runs - k_stalled);

  const auto metrics = serve.request(get("/metrics")).body;
  CHECK(metric(metrics, "dagent_serve_runs_submitted_total") == k_runs);
  CHECK(metric(metrics, "dagent_serve_runs_finished_total{outcome=\"succeeded\"}") == k_runs - k_stalled);
  CHECK(metric(metrics, "dagent_serve_runs_finished_total{outcome=\"interrupted\"}") == k_stalled);
  CHECK(metric(metrics, "dagent_serve_runs_finished_total{outcome=\"failed\"}") == 0);
  CHECK(metric(metrics, "dagent_runs_in_flight") == 0);
  CHECK(metric(metrics, "dagent_runs_queued") == 0);
  CHECK(metric(metrics, "dagent_runs_total{status=\"succeeded\"}") == k_runs - k_stalled);
  CHECK(metric(metrics, "dagent_runs_total{status=\"failed\"}") == k_stalled);
  // Counted where the calls were made, they add up to the runs' own metrics.
  CHECK(metric(metrics, "dagent_model_calls_total{endpoint=\"chat\"}") == llm_calls);
  CHECK(metric(metrics, "dagent_model_tokens_total{kind=\"prompt\"}") == prompt_tokens);
  CHECK(metric(metrics, "dagent_model_tokens_total{kind=\"completion\"}") == completion_tokens);
  CHECK(metric(metrics, "dagent_model_requests_total{endpoint=\"chat\",class=\"2xx\"}") == llm_calls);
  CHECK(sum_of(metrics, "dagent_step_duration_seconds_count{", "status=\"succeeded\"") == steps_succeeded);
  CHECK(steps_succeeded >= 2 * (k_runs - k_stalled));
}

TEST_CASE("dagent serve drains on SIGTERM, refusing new runs and cancelling after drain_ms", "[serve][runs]") {
  TestServer server(TestServerOptions{
      .script = json::parse(R"({"rules": [{"path": "/v1/chat/completions", "contains": "STALL", "fault": "stall"}]})")});
  TempDir dir;
  write_config(dir, "serve:\n  drain_ms: 3000\nllm:\n  timeout_ms: 60000\n  max_retries: 0\n");
  ServeProcess serve({}, dir.path(), model_env(&server));
  auto created = serve.request(post_json("/v1/runs", llm_task("STALL")));
  REQUIRE(created.status == 201);
  const std::string id(created.json().at("id").as_string());
  wait_until([&] { return server.requests_to("/v1/chat/completions") >= 1; }, "the stalled call reached the model");
  auto followed = std::async(std::launch::async, [&serve, id] {
    return serve.request(get("/v1/runs/" + id + "/events"), std::chrono::seconds(30));
  });
  serve.kill(SIGTERM);
  // The stream stays open through the drain; new runs are refused meanwhile.
  wait_until([&] { return serve.request(get("/healthz")).json().at("status") == "draining"; }, "draining");
  auto refused = serve.request(post_json("/v1/runs", read_task()));
  CHECK(refused.status == 503);
  const auto events = events_of(followed.get());
  REQUIRE_FALSE(events.empty());
  CHECK(events.back().event == "end");
  CHECK(json::parse(events.back().data).at("interrupted") == true);
  auto ended = serve.wait();
  INFO(ended.err);
  CHECK(ended.exit_code == 0);
}

TEST_CASE("dagent serve lets a run in flight finish within drain_ms", "[serve][runs]") {
  TestServer server(TestServerOptions{
      .script = json::parse(R"({"rules": [{"path": "/v1/chat/completions", "contains": "SLOW",
                                           "hold_until": {"path": "/v1/chat/completions", "contains": "RELEASE"}}]})")});
  TempDir dir;
  write_config(dir, "serve:\n  drain_ms: 30000\n  max_concurrent_runs: 2\nllm:\n  max_retries: 0\n");
  ServeProcess serve({}, dir.path(), model_env(&server));
  auto created = serve.request(post_json("/v1/runs", llm_task("SLOW")));
  REQUIRE(created.status == 201);
  const std::string id(created.json().at("id").as_string());
  wait_until([&] { return server.requests_to("/v1/chat/completions") >= 1; }, "the held call reached the model");
  serve.kill(SIGTERM);
  wait_until([&] { return serve.request(get("/healthz")).json().at("status") == "draining"; }, "draining");
  // Released only now, during the drain: the run ends succeeded, not cancelled.
  HttpRequest release = post_json("/v1/chat/completions", json::object{{"model", "m"}, {"messages", json::array{json::object{{"role", "user"}, {"content", "RELEASE"}}}}});
  CHECK(server.request(release).status == 200);
  auto ended = serve.wait();
  INFO(ended.err);
  CHECK(ended.exit_code == 0);
  // Its result is in the history, where `dagent runs list` finds it.
  auto list = run_process({DAGENT_BINARY, "runs", "list", "--json"}, dir.path(), model_env(nullptr));
  REQUIRE(list.exit_code == 0);
  const auto runs = json::parse(list.out).as_array();
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].at("status") == "succeeded");
}

TEST_CASE("dagent serve writes its runs to the history and answers for them after a restart", "[serve][runs]") {
  TempDir dir;
  write_config(dir);
  std::string run_id;
  {
    ServeProcess serve({}, dir.path(), model_env(nullptr));
    auto created = serve.request(post_json("/v1/runs", read_task(2)));
    REQUIRE(created.status == 201);
    const std::string id(created.json().at("id").as_string());
    events_of(serve.request(get("/v1/runs/" + id + "/events")));  // until its end
    run_id = std::string(serve.request(get("/v1/runs/" + id)).json().at("run_id").as_string());
    serve.kill(SIGTERM);
    REQUIRE(serve.wait().exit_code == 0);  // the history is written before it exits
  }
  auto show = run_process({DAGENT_BINARY, "runs", "show", run_id, "--json"}, dir.path(), model_env(nullptr));
  INFO(show.err);
  REQUIRE(show.exit_code == 0);
  CHECK(json::parse(show.out).at("run_id").as_string() == run_id);

  ServeProcess again({}, dir.path(), model_env(nullptr));
  auto stored = again.request(get("/v1/runs/" + run_id));
  REQUIRE(stored.status == 200);
  CHECK(stored.json().at("run_id").as_string() == run_id);
  CHECK(stored.json().at("status") == "succeeded");
}

TEST_CASE("dagent serve queues runs beyond max_concurrent_runs and refuses beyond max_queued_runs", "[serve][runs]") {
  TestServer server(TestServerOptions{
      .script = json::parse(R"({"rules": [{"path": "/v1/chat/completions", "contains": "STALL", "fault": "stall"}]})")});
  TempDir dir;
  write_config(dir, "serve:\n  max_concurrent_runs: 1\n  max_queued_runs: 1\n  drain_ms: 0\nllm:\n  timeout_ms: 60000\n  max_retries: 0\n");
  ServeProcess serve({}, dir.path(), model_env(&server));
  auto first = serve.request(post_json("/v1/runs", llm_task("STALL")));
  REQUIRE(first.status == 201);
  CHECK(first.json().at("status") == "running");
  auto second = serve.request(post_json("/v1/runs", read_task()));
  REQUIRE(second.status == 201);
  CHECK(second.json().at("status") == "queued");
  const std::string queued(second.json().at("id").as_string());
  CHECK(serve.request(get("/v1/runs/" + queued)).json().at("status") == "queued");
  wait_until([&] { return server.requests_to("/v1/chat/completions") >= 1; }, "the stalled call reached the model");
  const auto running = serve.request(get("/v1/runs/" + std::string(first.json().at("id").as_string()))).json();
  CHECK(running.at("status") == "running");
  REQUIRE(running.at("steps").as_array().size() == 2);
  CHECK(running.at("steps").at(0).at("status") == "running");
  auto third = serve.request(post_json("/v1/runs", read_task()));
  CHECK(third.status == 503);
  CHECK(third.header("retry-after") == "1");
  // A queued run cancelled ends at once, interrupted, and frees its place.
  auto cancelled = serve.request(del("/v1/runs/" + queued));
  CHECK(cancelled.status == 200);
  CHECK(cancelled.json().at("exit_code") == 1);
  const auto events = events_of(serve.request(get("/v1/runs/" + queued + "/events")));
  REQUIRE(events.size() == 2);
  CHECK(events[0].event == "queued");
  CHECK(events[1].event == "end");
  CHECK(json::parse(events[1].data).at("interrupted") == true);
  CHECK(serve.request(post_json("/v1/runs", read_task())).status == 201);
  serve.kill(SIGTERM);  // drain_ms 0: the stalled run is cancelled at once
  auto ended = serve.wait();
  INFO(ended.err);
  CHECK(ended.exit_code == 0);
}
