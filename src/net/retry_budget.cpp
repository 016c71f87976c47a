#include "net/retry_budget.hpp"

#include <algorithm>

namespace dagent::net {

RetryBudget::RetryBudget(double ratio, int minimum) noexcept
    : ratio_(ratio > 0 ? ratio : 0.0), minimum_(std::max(minimum, 0)) {}

bool RetryBudget::try_spend() noexcept {
  const double allowed = static_cast<double>(minimum_) + ratio_ * static_cast<double>(calls_);
  if (static_cast<double>(retries_) + 1 > allowed) return false;
  ++retries_;
  return true;
}

void RetryBudget::reset() noexcept {
  calls_ = 0;
  retries_ = 0;
}

}  // namespace dagent::net
