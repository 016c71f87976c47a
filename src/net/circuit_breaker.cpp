#include "net/circuit_breaker.hpp"

#include <stdexcept>

namespace dagent::net {

CircuitBreaker::CircuitBreaker(int failure_threshold, std::chrono::milliseconds open_for, Clock now)
    : failure_threshold_(failure_threshold), open_for_(open_for), now_(std::move(now)) {
  if (failure_threshold_ < 1) throw std::invalid_argument("circuit breaker failure_threshold must be at least 1");
  if (open_for_ < std::chrono::milliseconds::zero()) {
    throw std::invalid_argument("circuit breaker open_for must not be negative");
  }
  if (!now_) throw std::invalid_argument("circuit breaker needs a clock");
}

bool CircuitBreaker::allow() {
  switch (state_) {
    case State::closed: return true;
    case State::open:
      if (now_() - opened_at_ < open_for_) return false;
      state_ = State::half_open;
      return true;
    case State::half_open: return false;
  }
  return false;
}

void CircuitBreaker::on_success() {
  state_ = State::closed;
  failures_ = 0;
}

void CircuitBreaker::on_failure() {
  switch (state_) {
    case State::closed:
      if (++failures_ >= failure_threshold_) {
        state_ = State::open;
        opened_at_ = now_();
      }
      break;
    case State::half_open:
      state_ = State::open;
      opened_at_ = now_();
      break;
    case State::open: break;
  }
}

CircuitBreaker::State CircuitBreaker::state() const noexcept { return state_; }

std::chrono::milliseconds CircuitBreaker::retry_in() const {
  if (state_ != State::open) return std::chrono::milliseconds::zero();
  const auto left = opened_at_ + open_for_ - now_();
  if (left <= std::chrono::steady_clock::duration::zero()) return std::chrono::milliseconds::zero();
  return std::chrono::ceil<std::chrono::milliseconds>(left);
}

}  // namespace dagent::net
