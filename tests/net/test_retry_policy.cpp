#include "net/retry_policy.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <random>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using dagent::net::AttemptOutcome;
using dagent::net::RetryDecision;
using dagent::net::RetryPolicy;
using Kind = AttemptOutcome::Kind;

namespace {

// 1994-11-06 08:49:30.000 UTC; "Sun, 06 Nov 1994 08:49:37 GMT" is 7 s later.
const std::chrono::system_clock::time_point k_now =
    std::chrono::sys_days{std::chrono::year{1994} / 11 / 6} + 8h + 49min + 30s;

RetryPolicy policy(int max_retries = 2, double random = 0.0,
                   std::chrono::system_clock::time_point now = k_now) {
  return RetryPolicy(max_retries, [random] { return random; }, [now] { return now; });
}

AttemptOutcome response(int status) { return {Kind::response, status}; }

AttemptOutcome with_retry_after_ms(std::string value, int status = 429) {
  AttemptOutcome outcome = response(status);
  outcome.retry_after_ms = std::move(value);
  return outcome;
}

AttemptOutcome with_retry_after(std::string value, int status = 429) {
  AttemptOutcome outcome = response(status);
  outcome.retry_after = std::move(value);
  return outcome;
}

std::chrono::milliseconds delay_of(const RetryPolicy& retry_policy, const AttemptOutcome& outcome,
                                   int retries_done = 0) {
  const RetryDecision decision = retry_policy.decide(retries_done, outcome);
  REQUIRE(decision.retry);
  return decision.delay;
}

}  // namespace

TEST_CASE("RetryPolicy retries by outcome", "[net]") {
  const RetryPolicy retry_policy = policy();
  SECTION("connection errors and timeouts") {
    CHECK(retry_policy.decide(0, {Kind::connection_error}).retry);
    CHECK(retry_policy.decide(0, {Kind::timeout}).retry);
  }
  SECTION("408, 409, 429 and >= 500") {
    for (const int status : {408, 409, 429, 500, 502, 503, 504, 529, 599}) {
      INFO("status " << status);
      CHECK(retry_policy.decide(0, response(status)).retry);
    }
  }
  SECTION("nothing else") {
    for (const int status : {200, 201, 204, 301, 304, 400, 401, 403, 404, 405, 410, 413, 422, 428, 499}) {
      INFO("status " << status);
      const RetryDecision decision = retry_policy.decide(0, response(status));
      CHECK_FALSE(decision.retry);
      CHECK(decision.delay == 0ms);
    }
  }
  SECTION("x-should-retry: true retries any response") {
    for (const int status : {200, 400, 401, 404, 422}) {
      AttemptOutcome outcome = response(status);
      outcome.x_should_retry = "true";
      INFO("status " << status);
      CHECK(delay_of(retry_policy, outcome) == 500ms);
    }
  }
  SECTION("x-should-retry: false forbids retrying any response") {
    for (const int status : {408, 409, 429, 500, 503}) {
      AttemptOutcome outcome = response(status);
      outcome.x_should_retry = "false";
      INFO("status " << status);
      CHECK_FALSE(retry_policy.decide(0, outcome).retry);
    }
  }
  SECTION("other x-should-retry values leave the status rules") {
    for (const std::string value : {"TRUE", "True", "1", "yes", " true", "False"}) {
      AttemptOutcome retryable = response(503);
      retryable.x_should_retry = value;
      AttemptOutcome final_status = response(400);
      final_status.x_should_retry = value;
      INFO("x-should-retry: " << value);
      CHECK(retry_policy.decide(0, retryable).retry);
      CHECK_FALSE(retry_policy.decide(0, final_status).retry);
    }
  }
}

TEST_CASE("RetryPolicy never retries a started stream or past max_retries", "[net]") {
  SECTION("stream_started wins over everything") {
    for (const Kind kind : {Kind::connection_error, Kind::timeout, Kind::response}) {
      AttemptOutcome outcome{kind, 500};
      outcome.x_should_retry = "true";
      outcome.stream_started = true;
      CHECK_FALSE(policy().decide(0, outcome).retry);
    }
  }
  SECTION("max_retries") {
    const RetryPolicy two = policy(2);
    CHECK(two.decide(0, response(500)).retry);
    CHECK(two.decide(1, response(500)).retry);
    CHECK_FALSE(two.decide(2, response(500)).retry);
    CHECK_FALSE(two.decide(3, {Kind::timeout}).retry);
    AttemptOutcome forced = response(500);
    forced.x_should_retry = "true";
    CHECK_FALSE(two.decide(2, forced).retry);
    CHECK_FALSE(policy(0).decide(0, {Kind::connection_error}).retry);
    CHECK_FALSE(policy(-1).decide(0, {Kind::connection_error}).retry);
  }
}

TEST_CASE("RetryPolicy default backoff", "[net]") {
  SECTION("500 ms doubling to an 8 s cap, with random() == 0") {
    const RetryPolicy retry_policy = policy(100, 0.0);
    CHECK(delay_of(retry_policy, response(500), 0) == 500ms);
    CHECK(delay_of(retry_policy, response(500), 1) == 1000ms);
    CHECK(delay_of(retry_policy, response(500), 2) == 2000ms);
    CHECK(delay_of(retry_policy, response(500), 3) == 4000ms);
    CHECK(delay_of(retry_policy, response(500), 4) == 8000ms);
    CHECK(delay_of(retry_policy, response(500), 5) == 8000ms);
    CHECK(delay_of(retry_policy, response(500), 99) == 8000ms);
    CHECK(delay_of(retry_policy, {Kind::connection_error}, 2) == 2000ms);
    CHECK(delay_of(retry_policy, {Kind::timeout}, 3) == 4000ms);
  }
  SECTION("jitter takes off up to a quarter") {
    const RetryPolicy retry_policy = policy(100, 1.0);
    CHECK(delay_of(retry_policy, response(500), 0) == 375ms);
    CHECK(delay_of(retry_policy, response(500), 1) == 750ms);
    CHECK(delay_of(retry_policy, response(500), 4) == 6000ms);
    CHECK(delay_of(retry_policy, response(500), 5) == 6000ms);
  }
  SECTION("rounded to the nearest millisecond, halves up") {
    CHECK(delay_of(policy(2, 0.5), response(500)) == 438ms);        // 437.5
    CHECK(delay_of(policy(2, 0.1), response(500)) == 488ms);        // 487.5
    CHECK(delay_of(policy(2, 0.3), response(500), 1) == 925ms);     // 925
    CHECK(delay_of(policy(2, 0.123), response(500)) == 485ms);      // 484.625
  }
  SECTION("stays within [0.75, 1] of the base for any random value") {
    std::mt19937 engine(7);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const RetryPolicy retry_policy(10, [&] { return uniform(engine); });
    for (int i = 0; i < 1000; ++i) {
      const int retries_done = i % 7;
      const auto base = std::min(500ms * (1 << retries_done), std::chrono::milliseconds{8000});
      const auto delay = delay_of(retry_policy, response(503), retries_done);
      REQUIRE(delay >= base * 3 / 4);
      REQUIRE(delay <= base);
    }
  }
  SECTION("a random source outside [0, 1) is clamped") {
    CHECK(delay_of(policy(2, -3.0), response(500)) == 500ms);
    CHECK(delay_of(policy(2, 7.0), response(500)) == 375ms);
  }
}

TEST_CASE("RetryPolicy retry-after-ms", "[net]") {
  const RetryPolicy retry_policy = policy(2, 0.0);
  CHECK(delay_of(retry_policy, with_retry_after_ms("1234")) == 1234ms);
  CHECK(delay_of(retry_policy, with_retry_after_ms("1234.4")) == 1234ms);
  CHECK(delay_of(retry_policy, with_retry_after_ms("1234.5")) == 1235ms);
  CHECK(delay_of(retry_policy, with_retry_after_ms(" 250 ")) == 250ms);
  CHECK(delay_of(retry_policy, with_retry_after_ms("+20")) == 20ms);
  CHECK(delay_of(retry_policy, with_retry_after_ms("2.5e3")) == 2500ms);
  CHECK(delay_of(retry_policy, with_retry_after_ms("0")) == 0ms);
  CHECK(delay_of(retry_policy, with_retry_after_ms("60000")) == 60000ms);
  CHECK(delay_of(retry_policy, with_retry_after_ms("15", 503)) == 15ms);
  SECTION("used with x-should-retry: true on any status") {
    AttemptOutcome outcome = with_retry_after_ms("300", 400);
    outcome.x_should_retry = "true";
    CHECK(delay_of(retry_policy, outcome) == 300ms);
  }
  SECTION("out of range falls back to the default, not to retry-after") {
    for (const std::string value : {"60000.4", "60001", "-1", "-0.5", "1e9", "inf", "nan", "1e999"}) {
      AttemptOutcome outcome = with_retry_after_ms(value);
      outcome.retry_after = "2";
      INFO("retry-after-ms: " << value);
      CHECK(delay_of(retry_policy, outcome, 1) == 1000ms);
    }
  }
  SECTION("unparseable falls back to retry-after, then to the default") {
    for (const std::string value : {"", "abc", "12ms", "1 2", "0x10", "--1", "+"}) {
      AttemptOutcome outcome = with_retry_after_ms(value);
      INFO("retry-after-ms: '" << value << "'");
      CHECK(delay_of(retry_policy, outcome, 1) == 1000ms);
      outcome.retry_after = "2";
      CHECK(delay_of(retry_policy, outcome, 1) == 2000ms);
    }
  }
  SECTION("ignored without a response") {
    AttemptOutcome outcome{Kind::connection_error};
    outcome.retry_after_ms = "100";
    CHECK(delay_of(retry_policy, outcome) == 500ms);
  }
}

TEST_CASE("RetryPolicy retry-after seconds", "[net]") {
  const RetryPolicy retry_policy = policy(2, 0.0);
  CHECK(delay_of(retry_policy, with_retry_after("2")) == 2000ms);
  CHECK(delay_of(retry_policy, with_retry_after("1.5")) == 1500ms);
  CHECK(delay_of(retry_policy, with_retry_after("0.0004")) == 0ms);
  CHECK(delay_of(retry_policy, with_retry_after("0.0005")) == 1ms);
  CHECK(delay_of(retry_policy, with_retry_after("0")) == 0ms);
  CHECK(delay_of(retry_policy, with_retry_after("60")) == 60000ms);
  CHECK(delay_of(retry_policy, with_retry_after(" 3 ")) == 3000ms);
  SECTION("out of range or unparseable falls back to the default") {
    for (const std::string value : {"60.001", "61", "3600", "-1", "inf", "nan", "", "soon", "3s"}) {
      INFO("retry-after: '" << value << "'");
      CHECK(delay_of(retry_policy, with_retry_after(value), 1) == 1000ms);
    }
  }
  SECTION("ignored for timeouts") {
    AttemptOutcome outcome{Kind::timeout};
    outcome.retry_after = "5";
    CHECK(delay_of(retry_policy, outcome) == 500ms);
  }
}

TEST_CASE("RetryPolicy retry-after HTTP-date", "[net]") {
  const RetryPolicy retry_policy = policy(2, 0.0);
  CHECK(delay_of(retry_policy, with_retry_after("Sun, 06 Nov 1994 08:49:37 GMT")) == 7000ms);
  CHECK(delay_of(retry_policy, with_retry_after("Sun, 06 Nov 1994 08:49:30 GMT")) == 0ms);
  CHECK(delay_of(retry_policy, with_retry_after("Sun, 06 Nov 1994 08:50:30 GMT")) == 60000ms);
  CHECK(delay_of(retry_policy, with_retry_after("Mon, 07 Nov 1994 00:00:00 GMT"), 1) == 1000ms);
  SECTION("relative to the clock, to the millisecond") {
    const auto later = policy(2, 0.0, k_now + 250ms);
    CHECK(delay_of(later, with_retry_after("Sun, 06 Nov 1994 08:49:37 GMT")) == 6750ms);
    const auto between = policy(2, 0.0, k_now + 2ms + 500us);
    CHECK(delay_of(between, with_retry_after("Sun, 06 Nov 1994 08:49:37 GMT")) == 6998ms);
  }
  SECTION("across a month and a year") {
    const auto new_year = std::chrono::sys_days{std::chrono::year{2024} / 12 / 31} + 23h + 59min + 58s;
    CHECK(delay_of(policy(2, 0.0, new_year), with_retry_after("Wed, 01 Jan 2025 00:00:03 GMT")) == 5000ms);
    const auto leap = std::chrono::sys_days{std::chrono::year{2024} / 2 / 28} + 23h + 59min + 59s;
    CHECK(delay_of(policy(2, 0.0, leap), with_retry_after("Thu, 29 Feb 2024 00:00:01 GMT")) == 2000ms);
  }
  SECTION("in the past or more than 60 s ahead falls back to the default") {
    CHECK(delay_of(retry_policy, with_retry_after("Sun, 06 Nov 1994 08:49:29 GMT")) == 500ms);
    CHECK(delay_of(retry_policy, with_retry_after("Sun, 06 Nov 1994 08:50:31 GMT")) == 500ms);
    CHECK(delay_of(retry_policy, with_retry_after("Sat, 01 Jan 2000 00:00:00 GMT")) == 500ms);
  }
  SECTION("not an IMF-fixdate falls back to the default") {
    for (const std::string value : {
             "Sun, 06 Nov 1994 08:49:37 UTC",     // zone must be GMT
             "Sunday, 06-Nov-94 08:49:37 GMT",    // RFC 850
             "Sun Nov  6 08:49:37 1994",          // asctime
             "Sun, 6 Nov 1994 08:49:37 GMT",      // one-digit day
             "Sun, 31 Nov 1994 08:49:37 GMT",     // no such day
             "Sun, 06 Foo 1994 08:49:37 GMT",     // no such month
             "Xyz, 06 Nov 1994 08:49:37 GMT",     // no such day name
             "Sun, 06 Nov 1994 24:00:00 GMT",     // hour out of range
             "Sun, 06 Nov 1994 08:60:00 GMT",     // minute out of range
             "Sun, 06 Nov 1994 08:49:3x GMT",     // not a digit
             "Sun, 06 Nov 1994 08:49:37 GMT x",   // trailing text
         }) {
      INFO("retry-after: " << value);
      CHECK(delay_of(retry_policy, with_retry_after(value)) == 500ms);
    }
  }
}

TEST_CASE("RetryPolicy refuses empty functions", "[net]") {
  CHECK_THROWS_AS(RetryPolicy(2, {}), std::invalid_argument);
  CHECK_THROWS_AS(RetryPolicy(2, [] { return 0.0; }, {}), std::invalid_argument);
}
