#include "redis/redis_url.hpp"

#include <catch2/catch.hpp>

using dagent::redis::parse_redis_url;

TEST_CASE("parse_redis_url reads host, port, database and TLS") {
  auto plain = parse_redis_url("redis://127.0.0.1:7000/3");
  REQUIRE(plain.has_value());
  CHECK(plain->host == "127.0.0.1");
  CHECK(plain->port == "7000");
  CHECK(plain->db == 3);
  CHECK_FALSE(plain->tls);
  auto secure = parse_redis_url("rediss://cache.example.com");
  REQUIRE(secure.has_value());
  CHECK(secure->tls);
  CHECK(secure->port == "6379");
  CHECK(secure->db == 0);
  CHECK(secure->key() == "rediss://cache.example.com:6379/0");
  CHECK(parse_redis_url("redis://localhost")->host == "localhost");
  CHECK(parse_redis_url("redis://[::1]:6380/")->host == "::1");
}

TEST_CASE("parse_redis_url refuses plain redis to a host that is not loopback") {
  auto r = parse_redis_url("redis://cache.example.com:6379");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().find("use rediss://") != std::string::npos);
}

TEST_CASE("parse_redis_url refuses a password in the URL without echoing it") {
  auto r = parse_redis_url("redis://user:hunter2@127.0.0.1:6379");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().find("hunter2") == std::string::npos);
  CHECK(r.error().find("redis.password_env") != std::string::npos);
}

TEST_CASE("parse_redis_url refuses other schemes, bad ports and bad databases") {
  CHECK_FALSE(parse_redis_url("http://127.0.0.1:6379").has_value());
  CHECK_FALSE(parse_redis_url("redis://127.0.0.1:0").has_value());
  CHECK_FALSE(parse_redis_url("redis://127.0.0.1:70000").has_value());
  CHECK_FALSE(parse_redis_url("redis://127.0.0.1:6379/x").has_value());
  CHECK_FALSE(parse_redis_url("redis://127.0.0.1:6379/1?x=1").has_value());
  CHECK_FALSE(parse_redis_url("redis://").has_value());
}
