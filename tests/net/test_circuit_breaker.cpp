#include "net/circuit_breaker.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>

using namespace std::chrono_literals;
using dagent::net::CircuitBreaker;
using State = CircuitBreaker::State;

namespace {

struct FakeClock {
  std::chrono::steady_clock::time_point now{};
  CircuitBreaker::Clock clock() {
    return [this] { return now; };
  }
};

void fail_times(CircuitBreaker& breaker, int times) {
  for (int i = 0; i < times; ++i) {
    REQUIRE(breaker.allow());
    breaker.on_failure();
  }
}

}  // namespace

TEST_CASE("CircuitBreaker closed: counts consecutive failures", "[net]") {
  FakeClock time;
  CircuitBreaker breaker(3, 1000ms, time.clock());
  CHECK(breaker.state() == State::closed);
  CHECK(breaker.allow());
  CHECK(breaker.retry_in() == 0ms);
  SECTION("below the threshold it stays closed") {
    fail_times(breaker, 2);
    CHECK(breaker.state() == State::closed);
    CHECK(breaker.allow());
  }
  SECTION("a success resets the count") {
    fail_times(breaker, 2);
    breaker.on_success();
    fail_times(breaker, 2);
    CHECK(breaker.state() == State::closed);
    fail_times(breaker, 1);
    CHECK(breaker.state() == State::open);
  }
  SECTION("at the threshold it opens") {
    fail_times(breaker, 3);
    CHECK(breaker.state() == State::open);
    CHECK_FALSE(breaker.allow());
    CHECK(breaker.retry_in() == 1000ms);
  }
  SECTION("a threshold of 1 opens on the first failure") {
    CircuitBreaker single(1, 50ms, time.clock());
    fail_times(single, 1);
    CHECK(single.state() == State::open);
    CHECK_FALSE(single.allow());
  }
}

TEST_CASE("CircuitBreaker open: refuses until open_for has elapsed", "[net]") {
  FakeClock time;
  CircuitBreaker breaker(2, 1000ms, time.clock());
  fail_times(breaker, 2);
  REQUIRE(breaker.state() == State::open);
  SECTION("retry_in counts down, rounded up to whole milliseconds") {
    time.now += 400ms;
    CHECK_FALSE(breaker.allow());
    CHECK(breaker.retry_in() == 600ms);
    time.now += 599ms + 500us;
    CHECK_FALSE(breaker.allow());
    CHECK(breaker.retry_in() == 1ms);
    time.now += 500us;
    CHECK(breaker.retry_in() == 0ms);
    CHECK(breaker.state() == State::open);
    time.now += 5s;
    CHECK(breaker.retry_in() == 0ms);
    CHECK(breaker.state() == State::open);
  }
  SECTION("a late failure of an earlier call does not extend it") {
    time.now += 500ms;
    breaker.on_failure();
    CHECK(breaker.state() == State::open);
    CHECK(breaker.retry_in() == 500ms);
    time.now += 500ms;
    CHECK(breaker.allow());
  }
  SECTION("a late success of an earlier call closes it") {
    time.now += 10ms;
    breaker.on_success();
    CHECK(breaker.state() == State::closed);
    CHECK(breaker.allow());
    CHECK(breaker.retry_in() == 0ms);
    fail_times(breaker, 1);
    CHECK(breaker.state() == State::closed);
  }
}

TEST_CASE("CircuitBreaker half-open: exactly one probe", "[net]") {
  FakeClock time;
  CircuitBreaker breaker(2, 1000ms, time.clock());
  fail_times(breaker, 2);
  time.now += 1000ms;
  REQUIRE(breaker.allow());
  CHECK(breaker.state() == State::half_open);
  CHECK(breaker.retry_in() == 0ms);
  CHECK_FALSE(breaker.allow());
  time.now += 1h;
  CHECK_FALSE(breaker.allow());
  CHECK(breaker.state() == State::half_open);
  SECTION("a successful probe closes it and resets the count") {
    breaker.on_success();
    CHECK(breaker.state() == State::closed);
    CHECK(breaker.allow());
    CHECK(breaker.allow());
    fail_times(breaker, 1);
    CHECK(breaker.state() == State::closed);
    fail_times(breaker, 1);
    CHECK(breaker.state() == State::open);
  }
  SECTION("a failed probe re-opens for another open_for") {
    time.now += 250ms;
    breaker.on_failure();
    CHECK(breaker.state() == State::open);
    CHECK_FALSE(breaker.allow());
    CHECK(breaker.retry_in() == 1000ms);
    time.now += 999ms;
    CHECK_FALSE(breaker.allow());
    time.now += 1ms;
    CHECK(breaker.allow());
    CHECK(breaker.state() == State::half_open);
    CHECK_FALSE(breaker.allow());
  }
}

TEST_CASE("CircuitBreaker with open_for 0 probes at once", "[net]") {
  FakeClock time;
  CircuitBreaker breaker(1, 0ms, time.clock());
  fail_times(breaker, 1);
  CHECK(breaker.state() == State::open);
  CHECK(breaker.retry_in() == 0ms);
  CHECK(breaker.allow());
  CHECK_FALSE(breaker.allow());
}

TEST_CASE("CircuitBreaker refuses invalid parameters", "[net]") {
  FakeClock time;
  CHECK_THROWS_AS(CircuitBreaker(0, 1000ms, time.clock()), std::invalid_argument);
  CHECK_THROWS_AS(CircuitBreaker(-1, 1000ms, time.clock()), std::invalid_argument);
  CHECK_THROWS_AS(CircuitBreaker(1, -1ms, time.clock()), std::invalid_argument);
  CHECK_THROWS_AS(CircuitBreaker(1, 1000ms, {}), std::invalid_argument);
  CHECK_NOTHROW(CircuitBreaker(1, 1000ms));
}
