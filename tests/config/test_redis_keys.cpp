// Issue 16: the redis: section, the shared-limiter keys, the cache backend and the execution:
// section (distributed steps) are typed, ranged and checked at load, with the file, line and key
// in every problem.

#include <string>

#include <catch2/catch.hpp>

#include "config/loader.hpp"

using dagent::config::Config;
using dagent::config::ExecutionBackend;
using dagent::config::load_string;

namespace {

std::string problems_of(const std::string& yaml) {
  auto r = load_string(yaml, "config.yaml", ".");
  return r ? std::string() : r.error().to_string();
}

}  // namespace

TEST_CASE("redis keys load with their defaults and values", "[config]") {
  const Config defaults;
  CHECK(defaults.redis.url.empty());
  CHECK(defaults.redis.timeout_ms == 250);
  CHECK(defaults.redis.connect_timeout_ms == 1000);
  CHECK(defaults.redis.pool_size == 4);
  CHECK_FALSE(defaults.performance.rate_limiting.shared);
  CHECK(defaults.performance.rate_limiting.expected_processes == 1);
  auto r = load_string("redis:\n  url: rediss://cache.example.com:6380/2\n  password_env: REDIS_PW\n  timeout_ms: 100\n"
                       "  pool_size: 2\nperformance:\n  rate_limiting: {shared: true, expected_processes: 4}\n",
                       "config.yaml", ".");
  REQUIRE(r.has_value());
  CHECK(r->redis.url == "rediss://cache.example.com:6380/2");
  CHECK(r->redis.password_env == "REDIS_PW");
  CHECK(r->redis.timeout_ms == 100);
  CHECK(r->redis.pool_size == 2);
  CHECK(r->performance.rate_limiting.shared);
  CHECK(r->performance.rate_limiting.expected_processes == 4);
  const auto json = dagent::config::to_json(*r);
  CHECK(json.at("redis").at("url").as_string() == "rediss://cache.example.com:6380/2");
  CHECK(json.at("performance").at("rate_limiting").at("expected_processes").as_int64() == 4);
}

TEST_CASE("redis.url: plain redis only to loopback hosts, no password in it", "[config][secrets]") {
  CHECK(problems_of("redis:\n  url: redis://127.0.0.1:6379\n").empty());
  CHECK_THAT(problems_of("redis:\n  pool_size: 2\n  url: redis://cache.example.com\n"),
             Catch::StartsWith("config.yaml:3: redis.url: redis:// sends the password") &&
                 Catch::Contains("use rediss://"));
  const std::string with_password = problems_of("redis:\n  url: redis://:hunter2@127.0.0.1:6379\n");
  CHECK_THAT(with_password, Catch::StartsWith("config.yaml:2: redis.url: invalid Redis URL"));
  CHECK(with_password.find("hunter2") == std::string::npos);
}

TEST_CASE("redis and shared-limiter keys are range-checked with file, line and key", "[config]") {
  CHECK_THAT(problems_of("redis:\n  pool_size: 0\n"), Catch::StartsWith("config.yaml:2: redis.pool_size:"));
  CHECK_THAT(problems_of("redis:\n  timeout_ms: fast\n"), Catch::StartsWith("config.yaml:2: redis.timeout_ms:"));
  CHECK_THAT(problems_of("performance:\n  rate_limiting:\n    expected_processes: 0\n"),
             Catch::StartsWith("config.yaml:3: performance.rate_limiting.expected_processes:"));
  CHECK_THAT(problems_of("performance:\n  rate_limiting:\n    shared: true\n"),
             Catch::StartsWith("config.yaml:3: performance.rate_limiting.shared: a shared budget needs redis.url"));
  CHECK(problems_of("redis: {url: \"redis://localhost\"}\nperformance: {rate_limiting: {shared: true}}\n").empty());
  CHECK_THAT(problems_of("redis: {url: \"redis://localhost\"}\nperformance: {rate_limiting: {shared: true, window: rolling}}\n"),
             Catch::Contains("performance.rate_limiting.shared: a shared budget counts a refilled bucket"));
}

TEST_CASE("performance.caching.backend is memory or redis, and redis needs redis.url and llm_responses", "[config]") {
  CHECK(Config{}.performance.caching.backend == dagent::config::CacheBackend::memory);
  auto r = load_string("redis: {url: \"redis://127.0.0.1:6379\"}\nperformance:\n  caching:\n    llm_responses: true\n"
                       "    backend: redis\n",
                       "config.yaml", ".");
  REQUIRE(r.has_value());
  CHECK(r->performance.caching.backend == dagent::config::CacheBackend::redis);
  CHECK(dagent::config::to_json(*r).at("performance").at("caching").at("backend").as_string() == "redis");
  CHECK_THAT(problems_of("performance:\n  caching:\n    backend: disk\n"),
             Catch::StartsWith("config.yaml:3: performance.caching.backend: expected one of memory, redis"));
  CHECK_THAT(problems_of("performance:\n  caching:\n    llm_responses: true\n    backend: redis\n"),
             Catch::StartsWith("config.yaml:4: performance.caching.backend: redis keeps the response cache in Redis and "
                               "needs redis.url"));
  CHECK_THAT(problems_of("redis: {url: \"redis://127.0.0.1:6379\"}\nperformance:\n  caching:\n    backend: redis\n"),
             Catch::StartsWith("config.yaml:4: performance.caching.backend: redis is the backend of the response cache, "
                               "which is off (performance.caching.llm_responses: false)"));
  SECTION("--set reaches the same rules, without a line") {
    Config cfg;
    auto problems = dagent::config::apply_overrides(
        cfg, std::vector<std::string>{"performance.caching.llm_responses=true", "performance.caching.backend=redis"});
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0].to_string(), Catch::Contains("performance.caching.backend: redis keeps the response cache"));
    CHECK(dagent::config::apply_overrides(cfg, std::vector<std::string>{"redis.url=redis://127.0.0.1:1",
                                                                        "performance.caching.llm_responses=true",
                                                                        "performance.caching.backend=redis"})
              .empty());
    CHECK(cfg.performance.caching.backend == dagent::config::CacheBackend::redis);
  }
}

TEST_CASE("execution keys load with their defaults and values", "[config][distributed]") {
  const Config defaults;
  CHECK(defaults.execution.backend == ExecutionBackend::local);
  CHECK(defaults.execution.visibility_timeout_ms == 30000);
  CHECK(defaults.execution.max_remote_in_flight == 0);
  CHECK(defaults.execution.worker_concurrency == 4);
  CHECK(defaults.execution.max_deliveries == 3);
  auto r = load_string("redis: {url: \"redis://127.0.0.1:6379\"}\nexecution:\n  backend: redis\n"
                       "  visibility_timeout_ms: 1000\n  max_remote_in_flight: 64\n  worker_concurrency: 16\n",
                       "config.yaml", ".");
  REQUIRE(r.has_value());
  CHECK(r->execution.backend == ExecutionBackend::redis);
  CHECK(r->execution.visibility_timeout_ms == 1000);
  CHECK(r->execution.max_remote_in_flight == 64);
  CHECK(r->execution.worker_concurrency == 16);
  const auto json = dagent::config::to_json(*r);
  CHECK(json.at("execution").at("backend").as_string() == "redis");
}

TEST_CASE("execution keys are range-checked with file, line and key", "[config][distributed]") {
  CHECK_THAT(problems_of("execution:\n  backend: cluster\n"), Catch::StartsWith("config.yaml:2: execution.backend:"));
  CHECK_THAT(problems_of("execution:\n  visibility_timeout_ms: 10\n"),
             Catch::StartsWith("config.yaml:2: execution.visibility_timeout_ms:"));
  CHECK_THAT(problems_of("execution:\n  worker_concurrency: 0\n"),
             Catch::StartsWith("config.yaml:2: execution.worker_concurrency:"));
  CHECK_THAT(problems_of("execution:\n  max_deliveries: 0\n"), Catch::StartsWith("config.yaml:2: execution.max_deliveries:"));
  CHECK_THAT(problems_of("execution:\n  typo: 1\n"), Catch::StartsWith("config.yaml:2: execution.typo:"));
}

TEST_CASE("execution.backend redis without redis.url is a load error naming the key", "[config][distributed]") {
  CHECK_THAT(problems_of("execution:\n  visibility_timeout_ms: 1000\n  backend: redis\n"),
             Catch::StartsWith("config.yaml:3: execution.backend: backend redis needs redis.url"));
  CHECK(problems_of("execution: {backend: local}\n").empty());
}
