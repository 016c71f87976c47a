#pragma once
// A circuit breaker for one origin: after repeated failures, calls fail fast for a while.

#include <chrono>
#include <functional>

namespace dagent::net {

/// The state machine of one origin's breaker (the pool keeps one per origin). Which outcomes are
/// failures is the caller's business: connection errors, timeouts and 5xx responses count;
/// 4xx responses (including 429, which the rate limiter handles) are not failures of the origin.
/// Every call that allow() admitted must end in on_success() or on_failure(), including a
/// cancelled one: an unreported probe leaves the breaker half_open, refusing every call.
class CircuitBreaker {
 public:
  /// The breaker's state.
  enum class State {
    closed,     ///< calls pass; consecutive failures are counted
    open,       ///< calls are refused until open_for has elapsed since the last opening
    half_open,  ///< one probe call was admitted and its outcome is awaited; other calls are refused
  };

  /// A monotonic clock, injectable for tests.
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  /// Opens after `failure_threshold` (>= 1) consecutive failures, for `open_for` (>= 0).
  /// Throws std::invalid_argument otherwise.
  CircuitBreaker(int failure_threshold, std::chrono::milliseconds open_for,
                 Clock now = &std::chrono::steady_clock::now);

  /// Whether a call may go out now. Closed: true. Open: false until open_for has elapsed, then
  /// moves to half_open and returns true once, for the probe. Half-open: false.
  bool allow();

  /// A call succeeded: closes the breaker (from any state) and resets the failure count.
  void on_success();

  /// A call failed. Closed: counts it, opening at the threshold. Half-open (the probe failed):
  /// re-opens for another open_for. Open (a call admitted before the opening): no change.
  void on_failure();

  /// The current state; open stays open, even after open_for, until allow() admits the probe.
  State state() const noexcept;

  /// How long until allow() would admit a probe, rounded up to whole milliseconds: the rest of
  /// open_for when open (0 once elapsed); 0 when closed, or half_open (the probe decides).
  std::chrono::milliseconds retry_in() const;

 private:
  int failure_threshold_;
  std::chrono::milliseconds open_for_;
  Clock now_;
  State state_ = State::closed;
  int failures_ = 0;
  std::chrono::steady_clock::time_point opened_at_{};
};

}  // namespace dagent::net
