#include "net/token_bucket.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>

namespace dagent::net {

namespace {

// Above 2^53 ns (104 days) a double no longer counts single nanoseconds.
constexpr double k_exact_ns = 9'007'199'254'740'992.0;
constexpr double k_max_ns = 9.0e18;

}  // namespace

TokenBucket::TokenBucket(double capacity_per_minute, time_point now, std::chrono::nanoseconds period)
    : capacity_(capacity_per_minute),
      period_ns_(static_cast<double>(period.count())),
      level_(capacity_per_minute),
      updated_(now) {
  if (!(capacity_per_minute > 0.0) || !std::isfinite(capacity_per_minute))
    throw std::invalid_argument("TokenBucket: capacity per minute must be positive and finite");
  if (period.count() <= 0) throw std::invalid_argument("TokenBucket: the period must be positive");
}

double TokenBucket::available(time_point now) noexcept {
  refill(now);
  return level_;
}

bool TokenBucket::try_take(double amount, time_point now) noexcept {
  if (wait_for(amount, now) != std::chrono::nanoseconds::zero()) return false;
  level_ -= amount;
  return true;
}

void TokenBucket::take(double amount, time_point now) noexcept {
  refill(now);
  level_ -= amount;
}

std::chrono::nanoseconds TokenBucket::wait_for(double amount, time_point now) noexcept {
  refill(now);
  const double needed = std::min(amount, capacity_);
  const double deficit = needed - level_;
  if (deficit <= 0.0) return std::chrono::nanoseconds::zero();
  double ns = std::ceil(deficit * period_ns_ / capacity_);
  // Why: the division above and the multiplication in refill() round independently; step up
  // until refill()'s own formula reaches the amount, so try_take(amount, now + wait) succeeds.
  while (refilled_after(ns) < needed && ns < k_exact_ns) ns += 1.0;
  if (ns >= k_max_ns) return std::chrono::nanoseconds::max();
  return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}

void TokenBucket::give_back(double amount, time_point now) noexcept {
  refill(now);
  level_ = std::min(capacity_, level_ + amount);
}

void TokenBucket::set_level(double level, time_point now) noexcept {
  refill(now);
  level_ = std::min(capacity_, level);
}

void TokenBucket::set_capacity(double capacity, time_point now) noexcept {
  if (!(capacity > 0.0) || !std::isfinite(capacity)) return;
  refill(now);
  capacity_ = capacity;
  level_ = std::min(level_, capacity_);
}

void TokenBucket::drain(time_point now) noexcept { drain(now, now); }

void TokenBucket::drain(time_point now, time_point refill_from) noexcept {
  refill(now);
  level_ = std::min(level_, 0.0);
  updated_ = std::max(updated_, refill_from);  // earlier times count as no elapsed time
}

void TokenBucket::refill(time_point now) noexcept {
  if (now <= updated_) return;
  const auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(now - updated_);
  level_ = std::min(capacity_, refilled_after(static_cast<double>(elapsed.count())));
  updated_ = now;
}

double TokenBucket::refilled_after(double nanoseconds) const noexcept {
  return level_ + capacity_ * nanoseconds / period_ns_;
}

}  // namespace dagent::net
