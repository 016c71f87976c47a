#pragma once
// A cap on retries across many calls, so that an outage does not multiply the load on the
// provider by the number of retries each call may make.

#include <cstdint>

namespace dagent::net {

/// Allows `minimum + ratio × calls` retries in all, counting the calls and retries made since
/// construction or the last reset(). Sans-I/O; lives on the loop with its client.
class RetryBudget {
 public:
  /// `ratio` and `minimum` below zero count as zero.
  RetryBudget(double ratio, int minimum) noexcept;

  /// A call's first attempt is about to go out.
  void on_call() noexcept { ++calls_; }

  /// Whether one more retry fits; if so it is counted as made.
  bool try_spend() noexcept;

  /// Starts counting afresh (a new run).
  void reset() noexcept;

  std::int64_t calls() const noexcept { return calls_; }
  std::int64_t retries() const noexcept { return retries_; }

 private:
  double ratio_;
  int minimum_;
  std::int64_t calls_ = 0;
  std::int64_t retries_ = 0;
};

}  // namespace dagent::net
