#include "net/token_bucket.hpp"

#include <catch2/catch.hpp>

#include <limits>
#include <stdexcept>

namespace {

using dagent::net::TokenBucket;
using namespace std::chrono_literals;

const TokenBucket::time_point t0 = TokenBucket::time_point{} + 1000s;

}  // namespace

TEST_CASE("TokenBucket starts full and refills continuously", "[limiter][token_bucket]") {
  TokenBucket bucket(60000.0, t0);  // 1 per ms
  CHECK(bucket.capacity() == 60000.0);
  CHECK(bucket.available(t0) == 60000.0);

  SECTION("refill is capacity / 60 000 per ms, capped at capacity") {
    REQUIRE(bucket.try_take(60000.0, t0));
    CHECK(bucket.available(t0) == 0.0);
    CHECK(bucket.available(t0 + 1ms) == 1.0);
    CHECK(bucket.available(t0 + 1500us) == 1.5);
    CHECK(bucket.available(t0 + 30s) == 30000.0);
    CHECK(bucket.available(t0 + 60s) == 60000.0);
    CHECK(bucket.available(t0 + 10min) == 60000.0);
  }

  SECTION("try_take takes only what is there") {
    CHECK(bucket.try_take(59990.0, t0));
    CHECK(bucket.available(t0) == 10.0);
    CHECK_FALSE(bucket.try_take(11.0, t0));
    CHECK(bucket.available(t0) == 10.0);
    CHECK(bucket.try_take(10.0, t0));
    CHECK(bucket.available(t0) == 0.0);
    CHECK_FALSE(bucket.try_take(1.0, t0 + 999us));
    CHECK(bucket.try_take(1.0, t0 + 1ms));
    CHECK(bucket.try_take(0.0, t0 + 1ms));
  }

  SECTION("a time point earlier than the last one counts as no elapsed time") {
    REQUIRE(bucket.try_take(60000.0, t0 + 10ms));
    CHECK(bucket.available(t0) == 0.0);
    CHECK(bucket.available(t0 + 10ms) == 0.0);
    CHECK(bucket.available(t0 + 12ms) == 2.0);
  }
}

TEST_CASE("TokenBucket wait_for is the exact time until the amount is there", "[limiter][token_bucket]") {
  TokenBucket bucket(60000.0, t0);

  SECTION("zero when available") {
    CHECK(bucket.wait_for(60000.0, t0) == 0ns);
    CHECK(bucket.wait_for(0.0, t0) == 0ns);
  }

  SECTION("deficit / rate, and try_take succeeds exactly then") {
    REQUIRE(bucket.try_take(60000.0, t0));
    CHECK(bucket.wait_for(5.0, t0) == 5ms);
    CHECK(bucket.wait_for(5.0, t0 + 2ms) == 3ms);
    CHECK_FALSE(bucket.try_take(5.0, t0 + 5ms - 1ns));
    CHECK(bucket.try_take(5.0, t0 + 5ms));
  }

  SECTION("fractional rates round the wait up to the next nanosecond") {
    TokenBucket slow(7.0, t0);  // 7 per minute
    REQUIRE(slow.try_take(7.0, t0));
    const auto wait = slow.wait_for(1.0, t0);
    CHECK(wait == 8571428572ns);  // ceil(60e9 / 7)
    CHECK_FALSE(slow.try_take(1.0, t0 + wait - 1ns));
    CHECK(slow.try_take(1.0, t0 + wait));
  }

  SECTION("an amount above capacity waits for a full bucket, then takes it all and leaves a debt") {
    REQUIRE(bucket.try_take(60000.0, t0));
    CHECK(bucket.wait_for(90000.0, t0) == 60s);
    CHECK_FALSE(bucket.try_take(90000.0, t0 + 60s - 1ns));
    CHECK(bucket.try_take(90000.0, t0 + 60s));
    CHECK(bucket.available(t0 + 60s) == -30000.0);
    CHECK(bucket.wait_for(1.0, t0 + 60s) == 30001ms);
    CHECK(bucket.available(t0 + 90s) == 0.0);
  }
}

TEST_CASE("TokenBucket take, give_back, set_level, set_capacity and drain", "[limiter][token_bucket]") {
  TokenBucket bucket(60000.0, t0);

  SECTION("take may leave a debt that the refill repays") {
    bucket.take(70000.0, t0);
    CHECK(bucket.available(t0) == -10000.0);
    CHECK(bucket.wait_for(0.0, t0) == 10s);
    CHECK(bucket.wait_for(1.0, t0) == 10001ms);
  }

  SECTION("give_back never exceeds capacity") {
    bucket.take(1000.0, t0);
    bucket.give_back(400.0, t0);
    CHECK(bucket.available(t0) == 59400.0);
    bucket.give_back(5000.0, t0);
    CHECK(bucket.available(t0) == 60000.0);
  }

  SECTION("set_level raises or lowers the level, never above capacity") {
    bucket.set_level(100.0, t0);
    CHECK(bucket.available(t0) == 100.0);
    CHECK(bucket.available(t0 + 1s) == 1100.0);
    CHECK(bucket.wait_for(2100.0, t0 + 1s) == 1s);
    bucket.set_level(5000.0, t0 + 1s);
    CHECK(bucket.available(t0 + 1s) == 5000.0);
    bucket.set_level(1e9, t0 + 1s);
    CHECK(bucket.available(t0 + 1s) == 60000.0);
    bucket.set_level(-50.0, t0 + 1s);
    CHECK(bucket.available(t0 + 1s) == -50.0);
  }

  SECTION("set_capacity changes the capacity and the refill rate, keeping the level") {
    bucket.take(59000.0, t0);
    bucket.set_capacity(120000.0, t0);  // 2 per ms
    CHECK(bucket.capacity() == 120000.0);
    CHECK(bucket.available(t0) == 1000.0);
    CHECK(bucket.available(t0 + 1s) == 3000.0);
    bucket.set_capacity(500.0, t0 + 1s);
    CHECK(bucket.available(t0 + 1s) == 500.0);
    bucket.set_capacity(0.0, t0 + 1s);  // ignored
    bucket.set_capacity(std::numeric_limits<double>::infinity(), t0 + 1s);
    CHECK(bucket.capacity() == 500.0);
  }

  SECTION("drain empties the bucket, which refills from zero") {
    bucket.drain(t0);
    CHECK(bucket.available(t0) == 0.0);
    CHECK(bucket.wait_for(1.0, t0) == 1ms);
    CHECK(bucket.available(t0 + 60s) == 60000.0);
  }

  SECTION("drain with a later refill start: nothing refills before it") {
    bucket.drain(t0, t0 + 5s);
    CHECK(bucket.available(t0 + 5s) == 0.0);
    CHECK(bucket.available(t0 + 6s) == 1000.0);
  }

  SECTION("drain keeps a debt") {
    bucket.take(61000.0, t0);
    bucket.drain(t0);
    CHECK(bucket.available(t0) == -1000.0);
  }
}

TEST_CASE("TokenBucket refuses a capacity that is not positive and finite", "[limiter][token_bucket]") {
  CHECK_THROWS_AS(TokenBucket(0.0, t0), std::invalid_argument);
  CHECK_THROWS_AS(TokenBucket(-5.0, t0), std::invalid_argument);
  CHECK_THROWS_AS(TokenBucket(std::numeric_limits<double>::infinity(), t0), std::invalid_argument);
  CHECK_NOTHROW(TokenBucket(0.9, t0));
  CHECK_THROWS_AS(TokenBucket(10.0, t0, 0s), std::invalid_argument);
}

TEST_CASE("TokenBucket refills its capacity per period, a minute unless told otherwise", "[limiter][token_bucket]") {
  TokenBucket bucket(300.0, t0, 10s);  // a benchmark's scaled minute: 30 per second
  bucket.take(300.0, t0);
  CHECK(bucket.wait_for(1.0, t0) == std::chrono::nanoseconds(33'333'334));
  CHECK(bucket.available(t0 + 1s) == 30.0);
}
