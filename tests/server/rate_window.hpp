#pragma once
// Server-side RPM/TPM enforcement (sans-I/O: the caller passes `now`), counted as OpenAI does (a
// bucket refilled continuously) or over a rolling 60 s window.

#include "script.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>

namespace dagent::test_server {

/// How the limits are counted: a bucket of capacity = limit refilled at limit per period,
/// continuously (OpenAI), or the admissions of the last period (a rolling window).
enum class RateModel { rolling, bucket };

/// Zero means unlimited.
struct RateLimits {
  std::int64_t requests_per_minute = 0;
  std::int64_t tokens_per_minute = 0;
  RateModel model = RateModel::rolling;
  std::chrono::milliseconds period{60'000};  ///< a minute; shorter to run benchmarks in scaled time
};

enum class RateVerdict { admitted, requests_exceeded, tokens_exceeded };

struct RateDecision {
  RateVerdict verdict = RateVerdict::admitted;
  std::chrono::milliseconds retry_after{0};  // until enough budget frees up (rejections only)
  HeaderList headers;                        // x-ratelimit-{limit,remaining,reset}-{requests,tokens}
};

/// Rolling: admits a request when the last period holds fewer than `rpm` requests and at most
/// `tpm - tokens` tokens. Bucket: admits it when the request bucket holds 1 and the token bucket
/// `tokens`. A rejected request uses no budget.
class RateWindow {
 public:
  using Clock = std::chrono::steady_clock;

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
  RateDecision admit_bucket(std::int64_t tokens, Clock::time_point now);
  void refill(Clock::time_point now);
  HeaderList bucket_headers() const;

  RateLimits limits_;
  bool bucket_started_ = false;  // bucket model: levels below are valid from the first request
  double request_level_ = 0;
  double token_level_ = 0;
  Clock::time_point updated_{};
  std::deque<Entry> entries_;
  std::int64_t tokens_in_window_ = 0;
};

/// OpenAI's duration format for x-ratelimit-reset-*: "120ms", "8.64s", "1m0s".
std::string format_reset(std::chrono::milliseconds duration);

}  // namespace dagent::test_server
