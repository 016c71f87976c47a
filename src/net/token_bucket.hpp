#pragma once
// A continuous-refill token bucket without a clock: every call is told the time. Sans-I/O, so
// RateLimiter drives it on the loop and tests drive it with fabricated time points.

#include <chrono>

namespace dagent::net {

/// Holds up to `capacity` units and refills at capacity per period (a minute unless told otherwise),
/// continuously. The level may go negative (a debt the refill repays) when more is taken than it held.
/// Time points earlier than the last one seen count as no elapsed time.
class TokenBucket {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  /// Starts full at `now`. `capacity_per_minute` must be positive and finite (already multiplied
  /// by the safety margin), and `period` positive; throws std::invalid_argument otherwise.
  TokenBucket(double capacity_per_minute, time_point now,
              std::chrono::nanoseconds period = std::chrono::minutes(1));

  double capacity() const noexcept { return capacity_; }

  /// The level at `now`; negative while a debt is being repaid.
  double available(time_point now) noexcept;

  /// Takes `amount` (>= 0) if wait_for(amount, now) is zero; otherwise takes nothing.
  bool try_take(double amount, time_point now) noexcept;

  /// Takes `amount` (>= 0) unconditionally; the level may go negative.
  void take(double amount, time_point now) noexcept;

  /// Time from `now` until try_take(amount) succeeds, if nothing else changes the level. An amount
  /// above capacity is clamped to capacity (it waits for a full bucket, then takes all of it and
  /// leaves a debt), so an oversized request still goes through instead of waiting forever.
  std::chrono::nanoseconds wait_for(double amount, time_point now) noexcept;

  /// Returns `amount` (>= 0) unused units; the level never exceeds capacity.
  void give_back(double amount, time_point now) noexcept;

  /// The level becomes `level` at `now` (clamped to capacity; may be negative), higher or lower.
  void set_level(double level, time_point now) noexcept;

  /// A new capacity (the server's own limit), which is also the refill per period; the level is
  /// kept, clamped to the new capacity. A capacity that is not positive and finite is ignored.
  void set_capacity(double capacity, time_point now) noexcept;

  /// The server refused (429): the bucket is empty now and refills from zero. A debt is kept.
  void drain(time_point now) noexcept;

  /// As drain(now), but the refill starts only at `refill_from` (the end of a 429's retry-after).
  void drain(time_point now, time_point refill_from) noexcept;

 private:
  void refill(time_point now) noexcept;
  double refilled_after(double nanoseconds) const noexcept;

  double capacity_;
  double period_ns_;
  double level_;
  time_point updated_;
};

}  // namespace dagent::net
