// dagent end to end with performance.rate_limiting.shared: the model calls draw from the budget in
// Redis (issue 16), the Redis password stays secret, and a Redis that is down costs a warning,
// not the run.

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

std::string redis_keys(const RedisServer& redis) {
  TempDir here;
  auto r = run_process({"/usr/bin/redis-cli", "-p", std::to_string(redis.port()), "--no-auth-warning", "-a", k_password, "--scan",
                        "--pattern", "dagent:ratelimit:*"},
                       here.path());
  return r.out;
}

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
  const std::string warning = "rate limiting: the shared budget did not answer";
  const auto first = r.err.find(warning);
  CHECK(first != std::string::npos);
  CHECK(r.err.find(warning, first + 1) == std::string::npos);
  CHECK(r.err.find(k_password) == std::string::npos);
}
