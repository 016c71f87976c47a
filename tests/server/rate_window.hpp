#pragma once
// Server-side RPM/TPM enforcement over a sliding 60 s window (sans-I/O: the caller passes `now`).

#include "script.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>

namespace dagent::test_server {

/// Zero means unlimited.
struct RateLimits {
  std::int64_t requests_per_minute = 0;
  std::int64_t tokens_per_minute = 0;
};

enum class RateVerdict { admitted, requests_exceeded, tokens_exceeded };

struct RateDecision {
  RateVerdict verdict = RateVerdict::admitted;
  std::chrono::milliseconds retry_after{0};  // until enough budget frees up (rejections only)
  HeaderList headers;                        // x-ratelimit-{limit,remaining,reset}-{requests,tokens}
};

/// Admits a request when the last 60 s hold fewer than `rpm` requests and at most
/// `tpm - tokens` tokens; a rejected request uses no budget.
class RateWindow {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds k_window{60'000};

  explicit RateWindow(RateLimits limits) : limits_(limits) {}

  bool enabled() const { return limits_.requests_per_minute > 0 || limits_.tokens_per_minute > 0; }
  RateDecision admit(std::int64_t tokens, Clock::time_point now);
  void clear();

 private:
  struct Entry {
    Clock::time_point at;
    std::int64_t tokens = 0;
  };
  void expire(Clock::time_point now);
  HeaderList headers(Clock::time_point now) const;

  RateLimits limits_;
  std::deque<Entry> entries_;
  std::int64_t tokens_in_window_ = 0;
};

/// OpenAI's duration format for x-ratelimit-reset-*: "120ms", "8.64s", "1m0s".
std::string format_reset(std::chrono::milliseconds duration);

}  // namespace dagent::test_server
