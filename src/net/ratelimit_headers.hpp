#pragma once
// What a provider says about its rate limits in a response: OpenAI's x-ratelimit-limit-*,
// x-ratelimit-remaining-* and x-ratelimit-reset-* headers, read into numbers.

#include <chrono>
#include <optional>
#include <string_view>
#include <vector>

#include "net/http_client.hpp"

namespace dagent::net {

/// One dimension (requests or tokens) of a response's rate-limit headers; each field is nullopt
/// when its header is absent or unreadable.
struct RateLimitReading {
  std::optional<double> limit;                     ///< x-ratelimit-limit-*: the budget per minute
  std::optional<double> remaining;                 ///< x-ratelimit-remaining-*: left when counted
  std::optional<std::chrono::nanoseconds> reset;   ///< x-ratelimit-reset-*: until the budget is whole again

  bool empty() const noexcept { return !limit && !remaining && !reset; }
};

struct RateLimitHeaders {
  RateLimitReading requests;
  RateLimitReading tokens;

  bool empty() const noexcept { return requests.empty() && tokens.empty(); }
};

/// The rate-limit headers among `headers` (names lower-case, as HttpClient delivers them).
RateLimitHeaders read_ratelimit_headers(const std::vector<Header>& headers);

/// The number in an x-ratelimit-limit-* or x-ratelimit-remaining-* value ("59", " 149984 ");
/// nullopt when it is not a finite non-negative number.
std::optional<double> parse_remaining(std::string_view header_value);

/// An x-ratelimit-reset-* value in OpenAI's duration format ("12ms", "1s", "6m0s", "1h2m3.5s",
/// "8.64s") or plain seconds ("20", "0.5"); nullopt when malformed, negative or above a day.
std::optional<std::chrono::nanoseconds> parse_reset(std::string_view header_value);

}  // namespace dagent::net
