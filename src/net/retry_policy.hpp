#pragma once
// When and after how long to retry an API call: the OpenAI SDKs' rules, as a pure function.

#include <chrono>
#include <functional>
#include <string>

namespace dagent::net {

/// What one attempt of a request ended with, as far as the retry decision needs it.
struct AttemptOutcome {
  /// How the attempt ended.
  enum class Kind { connection_error, timeout, response };
  Kind kind;                       ///< how the attempt ended
  int status = 0;                  ///< the HTTP status when kind is response
  std::string x_should_retry;      ///< the `x-should-retry` header value, or empty
  std::string retry_after_ms;      ///< the `retry-after-ms` header value, or empty
  std::string retry_after;         ///< the `retry-after` header value, or empty
  bool stream_started = false;     ///< whether any byte of a streamed body reached the caller
};

/// Whether to retry, and after how long.
struct RetryDecision {
  bool retry = false;                   ///< whether to make another attempt
  std::chrono::milliseconds delay{0};   ///< how long to wait first; 0 when retry is false
};

/// The retry rules of the OpenAI SDKs. Retries connection errors, timeouts and responses 408,
/// 409, 429 and >= 500, unless a stream has started or max_retries retries are done; for a
/// response, `x-should-retry: true`/`false` (exact, case-sensitive) overrides the status rules.
/// The delay is `retry-after-ms` (float milliseconds) if it parses, else `retry-after` as float
/// seconds or an IMF-fixdate relative to now(), used only if 0 <= delay <= 60 s; otherwise
/// `min(0.5 s * 2^retries_done, 8 s) * (1 - 0.25 * random01())`. Headers are read only for
/// responses. Every delay is computed in exact (double) milliseconds, range-checked unrounded,
/// and rounded once to the nearest whole millisecond, halves away from zero.
class RetryPolicy {
 public:
  /// A clock returning wall-clock time, for `retry-after` dates.
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  /// `max_retries` retries at most (negative counts as 0); `random01` returns a value in [0, 1)
  /// (values outside are clamped to [0, 1]); `now` is the wall clock. Throws
  /// std::invalid_argument if either function is empty.
  RetryPolicy(int max_retries, std::function<double()> random01, Clock now = &std::chrono::system_clock::now);

  /// The decision after an attempt that ended with `outcome`, when `retries_done` retries have
  /// already been made (0 after the first attempt).
  RetryDecision decide(int retries_done, const AttemptOutcome& outcome) const;

 private:
  bool should_retry(const AttemptOutcome& outcome) const;
  std::chrono::milliseconds delay(int retries_done, const AttemptOutcome& outcome) const;

  int max_retries_;
  std::function<double()> random01_;
  Clock now_;
};

}  // namespace dagent::net
