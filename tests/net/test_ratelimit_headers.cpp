#include "net/ratelimit_headers.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <vector>

namespace {

namespace net = dagent::net;
using namespace std::chrono_literals;
using std::chrono::nanoseconds;

}  // namespace

TEST_CASE("parse_reset reads OpenAI's x-ratelimit-reset-* durations", "[limiter][ratelimit_headers]") {
  CHECK(net::parse_reset("12ms") == nanoseconds(12ms));
  CHECK(net::parse_reset("1s") == nanoseconds(1s));
  CHECK(net::parse_reset("6m0s") == nanoseconds(6min));
  CHECK(net::parse_reset("1h2m3.5s") == nanoseconds(1h + 2min + 3500ms));
  CHECK(net::parse_reset("8.64s") == nanoseconds(8640ms));
  CHECK(net::parse_reset("1m30.5s") == nanoseconds(90500ms));
  CHECK(net::parse_reset("2m") == nanoseconds(2min));
  CHECK(net::parse_reset("0s") == nanoseconds(0));
  CHECK(net::parse_reset(" 20 ") == nanoseconds(20s));  // plain seconds
  CHECK(net::parse_reset("0.5") == nanoseconds(500ms));
  CHECK(net::parse_reset("1s12ms") == nanoseconds(1012ms));
  CHECK_FALSE(net::parse_reset(""));
  CHECK_FALSE(net::parse_reset("s"));
  CHECK_FALSE(net::parse_reset("-1s"));
  CHECK_FALSE(net::parse_reset("+1s"));
  CHECK_FALSE(net::parse_reset("1x"));
  CHECK_FALSE(net::parse_reset("1m30"));  // a bare number after a unit
  CHECK_FALSE(net::parse_reset("1s2m"));  // units out of order
  CHECK_FALSE(net::parse_reset("1s1s"));
  CHECK_FALSE(net::parse_reset("nan"));
  CHECK_FALSE(net::parse_reset("25h"));   // above a day
  CHECK_FALSE(net::parse_reset("1e3s"));  // no exponents
}

TEST_CASE("read_ratelimit_headers reads limit, remaining and reset for requests and tokens",
          "[limiter][ratelimit_headers]") {
  const std::vector<net::Header> headers = {
      {"x-ratelimit-limit-requests", "300"},     {"x-ratelimit-remaining-requests", "299"},
      {"x-ratelimit-reset-requests", "200ms"},   {"x-ratelimit-limit-tokens", "150000"},
      {"x-ratelimit-remaining-tokens", "149984"}, {"x-ratelimit-reset-tokens", "6m0s"},
  };
  const auto h = net::read_ratelimit_headers(headers);
  CHECK(h.requests.limit == 300.0);
  CHECK(h.requests.remaining == 299.0);
  CHECK(h.requests.reset == nanoseconds(200ms));
  CHECK(h.tokens.limit == 150000.0);
  CHECK(h.tokens.remaining == 149984.0);
  CHECK(h.tokens.reset == nanoseconds(6min));
  CHECK_FALSE(h.empty());

  const auto partial = net::read_ratelimit_headers({{"x-ratelimit-remaining-tokens", "oops"},
                                                    {"x-ratelimit-reset-requests", "1s"}});
  CHECK(partial.requests.reset == nanoseconds(1s));
  CHECK_FALSE(partial.requests.remaining);
  CHECK(partial.tokens.empty());
  CHECK(net::read_ratelimit_headers({}).empty());
}

TEST_CASE("read_ratelimit_headers reads the first of repeated headers and skips look-alike names",
          "[limiter][ratelimit_headers]") {
  const auto h = net::read_ratelimit_headers({{"x-ratelimit-limit-requests", "oops"},
                                              {"x-ratelimit-limit-requests", "300"},
                                              {"x-ratelimit-remaining-requestsx", "1"},
                                              {"x-ratelimit-limit-", "2"},
                                              {"x-ratelimit-reset-tokens", "2s"},
                                              {"x-ratelimit-reset-tokens", "9s"},
                                              {"x-ratelimit-", "3"}});
  CHECK_FALSE(h.requests.limit);  // the first one, unreadable, as find_header would have found it
  CHECK_FALSE(h.requests.remaining);
  CHECK(h.tokens.reset == nanoseconds(2s));
  CHECK_FALSE(h.tokens.limit);
}
