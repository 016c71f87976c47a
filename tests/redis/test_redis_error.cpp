#include "redis/redis_error.hpp"

#include <set>
#include <string>

#include <catch2/catch.hpp>

using dagent::redis::RedisErrc;

TEST_CASE("Every RedisErrc value has its own message") {
  std::set<std::string> seen;
  for (int v = static_cast<int>(RedisErrc::invalid_url); v <= static_cast<int>(RedisErrc::cancelled); ++v) {
    const auto ec = make_error_code(static_cast<RedisErrc>(v));
    CHECK(ec.category().name() == std::string("dagent.redis"));
    CHECK(ec.message() != "unknown Redis error");
    CHECK(seen.insert(ec.message()).second);
  }
}
