// dagent end to end with Redis (issue 16): with performance.rate_limiting.shared the model calls
// draw from the budget in Redis; with performance.caching.backend: redis a second process is
// answered from the replies the first left in Redis. The Redis password stays secret, and a Redis
// that is down costs a warning, not the run.

#include <algorithm>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include "support/process.hpp"
#include "support/redis_process.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace json = boost::json;
using dagent::test::RedisServer;
using dagent::test::run_process;
using dagent::test::TempDir;
using dagent::test::TestServer;

constexpr const char* k_password = "redis-pw-SENTINEL-4411";

dagent::test::ProcessResult run_shared(const TempDir& dir, const TestServer& server, const RedisServer& redis) {
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: llm, parameters: {prompt: "Say hello", max_tokens: 20}}
)");
  return run_process({DAGENT_BINARY, "run", "task.yaml", "--json", "--set", "redis.url=" + redis.url(), "--set",
                      "redis.password_env=DAGENT_TEST_REDIS_PW", "--set", "performance.rate_limiting.shared=true"},
                     dir.path(),
                     {"OPENAI_BASE_URL=" + server.base_url(), "OPENAI_API_KEY=sk-test",
                      std::string("DAGENT_TEST_REDIS_PW=") + k_password});
}

std::string redis_keys(const RedisServer& redis, const std::string& pattern = "dagent:ratelimit:*") {
  TempDir here;
  auto r = run_process({"/usr/bin/redis-cli", "-p", std::to_string(redis.port()), "--no-auth-warning", "-a", k_password, "--scan",
                        "--pattern", pattern},
                       here.path());
  return r.out;
}

// Two llm steps with the response cache in Redis; `extra` are more arguments.
dagent::test::ProcessResult run_cached(const TempDir& dir, const TestServer& server, const RedisServer& redis,
                                       std::vector<std::string> extra = {}) {
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: llm, parameters: {prompt: "Say hello", max_tokens: 20}}
  - {id: 2, action: llm, parameters: {prompt: "Say goodbye", max_tokens: 20}}
)");
  std::vector<std::string> args{DAGENT_BINARY, "run", "task.yaml", "--json", "--set", "redis.url=" + redis.url(), "--set",
                                "redis.password_env=DAGENT_TEST_REDIS_PW", "--set",
                                "performance.caching.llm_responses=true", "--set", "performance.caching.backend=redis"};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_process(args, dir.path(),
                     {"OPENAI_BASE_URL=" + server.base_url(), "OPENAI_API_KEY=sk-test",
                      std::string("DAGENT_TEST_REDIS_PW=") + k_password});
}

std::vector<std::string> step_texts(const json::object& result) {
  std::vector<std::string> out;
  for (const auto& step : result.at("steps").as_array())
    out.emplace_back(step.at("output").at("text").as_string());
  return out;
}

// A warning said, and said once.
void check_said_once(const std::string& err, const std::string& warning) {
  const auto at = err.find(warning);
  CHECK(at != std::string::npos);
  CHECK(err.find(warning, at + 1) == std::string::npos);
}

std::size_t lines_in(const std::string& text) { return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')); }

}  // namespace

TEST_CASE("dagent run with a shared rate budget draws from Redis and keeps its password secret", "[cli][redis]") {
  RedisServer redis({.password = k_password});
  TestServer server;
  TempDir dir;
  auto r = run_shared(dir, server, redis);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto o = json::parse(r.out).as_object();
  CHECK(o.at("status") == "succeeded");
  CHECK(o.at("metrics").at("rate_limit_fallback_calls") == 0);
  CHECK(r.err.find("shared budget") == std::string::npos);
  CHECK(redis_keys(redis).find(":bucket") != std::string::npos);
  for (const auto* text : {&r.out, &r.err}) CHECK(text->find(k_password) == std::string::npos);
}

TEST_CASE("dagent run with a shared rate budget and Redis down falls back with one warning", "[cli][redis]") {
  RedisServer redis({.password = k_password});
  redis.kill();
  TestServer server;
  TempDir dir;
  auto r = run_shared(dir, server, redis);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto o = json::parse(r.out).as_object();
  CHECK(o.at("status") == "succeeded");
  CHECK(o.at("metrics").at("rate_limit_fallback_calls") == 1);
  check_said_once(r.err, "rate limiting: the shared budget did not answer");
  CHECK(r.err.find(k_password) == std::string::npos);
}

TEST_CASE("two dagent processes share the response cache in Redis", "[cli][redis][cache]") {
  RedisServer redis({.password = k_password});
  TestServer server;
  TempDir first_dir;
  TempDir second_dir;
  auto first = run_cached(first_dir, server, redis);
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  const auto one = json::parse(first.out).as_object();
  CHECK(one.at("status") == "succeeded");
  CHECK(one.at("metrics").at("llm_calls") == 2);
  CHECK(one.at("metrics").at("cache_hits") == 0);
  CHECK(one.at("metrics").at("cache_l2_errors") == 0);
  CHECK(server.requests_to("/v1/chat/completions") == 2);
  CHECK(lines_in(redis_keys(redis, "dagent:cache:v1:*")) == 2);

  auto second = run_cached(second_dir, server, redis, {"--record", "run.jsonl"});
  INFO(second.err);
  REQUIRE(second.exit_code == 0);
  const auto two = json::parse(second.out).as_object();
  CHECK(two.at("status") == "succeeded");
  CHECK(server.requests_to("/v1/chat/completions") == 2);  // the second process sent nothing
  CHECK(two.at("metrics").at("llm_calls") == 0);
  CHECK(two.at("metrics").at("cache_hits") == 2);
  CHECK(two.at("metrics").at("cache_l2_hits") == 2);
  CHECK(two.at("metrics").at("cache_l2_errors") == 0);
  CHECK(step_texts(two) == step_texts(one));
  for (const auto* text : {&first.out, &first.err, &second.out, &second.err}) CHECK(text->find(k_password) == std::string::npos);
  CHECK(second.err.find("response cache") == std::string::npos);

  SECTION("a run answered from Redis replays offline, without Redis or the model") {
    redis.kill();
    auto replayed = run_process({DAGENT_BINARY, "replay", "run.jsonl", "--json", "--replay-timing", "instant"},
                                second_dir.path(), {"OPENAI_BASE_URL=http://127.0.0.1:9/v1", "OPENAI_API_KEY=sk-test"});
    INFO(replayed.err);
    REQUIRE(replayed.exit_code == 0);
    const auto three = json::parse(replayed.out).as_object();
    CHECK(step_texts(three) == step_texts(one));
    CHECK(three.at("metrics").at("cache_l2_hits") == 0);
    CHECK(replayed.err.find("response cache") == std::string::npos);
  }
}

TEST_CASE("dagent run with the response cache in Redis and Redis down succeeds with one warning", "[cli][redis][cache]") {
  RedisServer redis({.password = k_password});
  redis.kill();
  TestServer server;
  TempDir dir;
  auto r = run_cached(dir, server, redis);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto o = json::parse(r.out).as_object();
  CHECK(o.at("status") == "succeeded");
  CHECK(o.at("metrics").at("llm_calls") == 2);
  CHECK(o.at("metrics").at("cache_l2_hits") == 0);
  CHECK(o.at("metrics").at("cache_l2_errors").as_int64() >= 2);
  check_said_once(r.err, "response cache: the shared cache did not answer");
  CHECK(r.err.find(k_password) == std::string::npos);
}

TEST_CASE("dagent run with the response cache in Redis and its password variable unset fails naming it", "[cli][redis][cache]") {
  RedisServer redis({.password = k_password});
  TestServer server;
  TempDir dir;
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: llm, parameters: {prompt: "Say hello", max_tokens: 20}}
)");
  auto r = run_process({DAGENT_BINARY, "run", "task.yaml", "--json", "--set", "redis.url=" + redis.url(), "--set",
                        "redis.password_env=DAGENT_TEST_REDIS_PW_UNSET", "--set", "performance.caching.llm_responses=true",
                        "--set", "performance.caching.backend=redis"},
                       dir.path(), {"OPENAI_BASE_URL=" + server.base_url(), "OPENAI_API_KEY=sk-test"});
  INFO(r.out + r.err);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.out + r.err, Catch::Contains("performance.caching.backend: redis: the environment variable "
                                            "DAGENT_TEST_REDIS_PW_UNSET"));
  CHECK(server.requests_to("/v1/chat/completions") == 0);
}
