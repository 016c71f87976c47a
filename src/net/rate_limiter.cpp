#include "net/rate_limiter.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace dagent::net {

namespace asio = boost::asio;

namespace {

using ParkedHandler = asio::any_completion_handler<void()>;

class SteadyLimiterTimer final : public LimiterTimer {
 public:
  explicit SteadyLimiterTimer(asio::any_io_executor executor) : timer_(std::move(executor)) {}

  asio::awaitable<void> sleep(std::chrono::nanoseconds duration) override {
    timer_.expires_after(duration);
    co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }

  void cancel() override { timer_.cancel(); }

 private:
  asio::steady_timer timer_;
};

// Completes a parked waiter from the loop, never from inside the call that woke it, and on the
// waiter's own executor.
struct Resume {
  ParkedHandler handler;

  void operator()() {
    // Why: the cancellation handler points at the Waiter, which the resumed caller erases.
    handler.get_cancellation_slot().clear();
    asio::dispatch(std::move(handler));
  }
};

}  // namespace

struct RateLimiter::Waiter {
  ParkedHandler parked;  // set while the caller waits to become the head
};

// Initiates the wait of a caller behind the head: its handler stays in its Waiter until
// wake_head() or the caller's cancellation completes it.
struct RateLimiter::Park {
  RateLimiter* limiter;
  Waiter* waiter;

  template <typename Handler>
  void operator()(Handler&& handler) const {
    // Why swap: Boost 1.81's any_completion_handler move assignment copies its argument into
    // itself and recurses forever.
    ParkedHandler(std::forward<Handler>(handler)).swap(waiter->parked);
    auto slot = waiter->parked.get_cancellation_slot();
    if (slot.is_connected()) {
      slot.assign([limiter = limiter, waiter = waiter](asio::cancellation_type) { limiter->unpark(*waiter); });
    }
  }
};

// A caller's place in the queue for the duration of its acquire(): leaving it (granted,
// cancelled or destroyed) counts the wait and hands the head to the next caller.
class RateLimiter::Queued {
 public:
  explicit Queued(RateLimiter* limiter)
      : limiter_(limiter),
        entered_(limiter->clock_()),
        self_(limiter->queue_.insert(limiter->queue_.end(), Waiter{})) {}

  ~Queued() {
    limiter_->total_wait_ += limiter_->clock_() - entered_;
    const bool was_head = self_ == limiter_->queue_.begin();
    limiter_->queue_.erase(self_);
    if (was_head) limiter_->wake_head();
  }

  Queued(const Queued&) = delete;
  Queued& operator=(const Queued&) = delete;

  bool at_head() const noexcept { return self_ == limiter_->queue_.begin(); }
  Waiter& waiter() const noexcept { return *self_; }

 private:
  RateLimiter* limiter_;
  time_point entered_;
  std::list<Waiter>::iterator self_;
};

RateLimiterOptions RateLimiterOptions::from(const config::RateLimitingConfig& cfg) {
  RateLimiterOptions o;
  o.enabled = cfg.enabled;
  o.rpm_limit = cfg.rpm_limit;
  o.tpm_limit = cfg.tpm_limit;
  o.safety_margin = cfg.safety_margin;
  return o;
}

RateLimiter::Reservation::Reservation(Reservation&& other) noexcept
    : limiter_(std::exchange(other.limiter_, nullptr)),
      tokens_(std::exchange(other.tokens_, 0)),
      seq_(std::exchange(other.seq_, 0)) {}

RateLimiter::Reservation& RateLimiter::Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    limiter_ = std::exchange(other.limiter_, nullptr);
    tokens_ = std::exchange(other.tokens_, 0);
    seq_ = std::exchange(other.seq_, 0);
  }
  return *this;
}

void RateLimiter::Reservation::reconcile(std::int64_t actual_tokens) {
  if (limiter_ == nullptr) return;
  std::exchange(limiter_, nullptr)->settle(seq_, tokens_, actual_tokens);
}

void RateLimiter::Reservation::release_unsent() {
  if (limiter_ == nullptr) return;
  std::exchange(limiter_, nullptr)->unsend(seq_, tokens_);
}

RateLimiter::RateLimiter(asio::any_io_executor executor, RateLimiterOptions options, Clock clock,
                         std::unique_ptr<LimiterTimer> timer)
    : executor_(std::move(executor)),
      options_(options),
      clock_(std::move(clock)),
      timer_(timer ? std::move(timer) : std::make_unique<SteadyLimiterTimer>(executor_)),
      requests_(static_cast<double>(options_.rpm_limit) * options_.safety_margin, clock_()),
      tokens_(static_cast<double>(options_.tpm_limit) * options_.safety_margin, clock_()) {}

RateLimiter::~RateLimiter() = default;

asio::awaitable<RateLimiter::Reservation> RateLimiter::acquire(std::int64_t estimated_tokens) {
  if (!options_.enabled) co_return Reservation{};
  const std::int64_t tokens = std::max<std::int64_t>(estimated_tokens, 0);
  if (queue_.empty()) {
    const auto now = clock_();
    if (wait_for(tokens, now) == std::chrono::nanoseconds::zero()) {
      take(tokens, now);
      Reservation granted(this, tokens, next_seq_ - 1);
      co_return std::move(granted);
    }
  }
  Queued queued(this);
  for (;;) {
    if (queued.at_head()) {
      const auto now = clock_();
      const auto wait = wait_for(tokens, now);
      if (wait == std::chrono::nanoseconds::zero()) {
        take(tokens, now);
        Reservation granted(this, tokens, next_seq_ - 1);
        co_return std::move(granted);
      }
      // Only the head sleeps, for exactly its wait; wake_head() cuts the sleep short when the
      // buckets change, and the head then recomputes from the new levels.
      co_await timer_->sleep(wait);
    } else {
      auto parked = asio::async_initiate<const asio::use_awaitable_t<>&, void()>(
          Park{this, &queued.waiter()}, asio::use_awaitable);
      co_await std::move(parked);
    }
    const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none)
      throw boost::system::system_error(asio::error::operation_aborted);
  }
}

void RateLimiter::observe_headers(std::optional<double> remaining_requests,
                                  std::optional<double> remaining_tokens) {
  if (!options_.enabled) return;
  const auto now = clock_();
  if (remaining_requests) requests_.observe_remaining(*remaining_requests, now);
  if (remaining_tokens) tokens_.observe_remaining(*remaining_tokens, now);
  wake_head();
}

void RateLimiter::on_429(std::chrono::milliseconds retry_after) {
  if (!options_.enabled) return;
  const auto now = clock_();
  requests_.drain(now);
  tokens_.drain(now);
  blocked_until_ = std::max(blocked_until_, now + retry_after);
  wake_head();
}

std::size_t RateLimiter::waiting() const noexcept { return queue_.size(); }

std::chrono::nanoseconds RateLimiter::wait_for(std::int64_t tokens, time_point now) noexcept {
  auto wait = std::max(requests_.wait_for(1.0, now), tokens_.wait_for(static_cast<double>(tokens), now));
  if (options_.sliding_window) wait = std::max(wait, ledger_wait(tokens, now));
  if (blocked_until_ > now) wait = std::max(wait, std::chrono::nanoseconds(blocked_until_ - now));
  return wait;
}

std::chrono::nanoseconds RateLimiter::ledger_wait(std::int64_t tokens, time_point now) noexcept {
  constexpr auto k_window = std::chrono::minutes(1);
  while (!ledger_.empty() && ledger_.front().at + k_window <= now) {
    ledger_tokens_ -= ledger_.front().tokens;
    ledger_.pop_front();
  }
  const auto max_requests = static_cast<std::int64_t>(static_cast<double>(options_.rpm_limit) * options_.safety_margin);
  const auto max_tokens = static_cast<std::int64_t>(static_cast<double>(options_.tpm_limit) * options_.safety_margin);
  tokens = std::min(tokens, max_tokens);  // a request larger than the window still goes, alone
  // Entries leave in order; re-stamped ones may sit a little out of order, so the time the
  // first k have left is the latest stamp among them (never earlier than the truth).
  auto excess_requests = static_cast<std::int64_t>(ledger_.size()) + 1 - std::max<std::int64_t>(max_requests, 1);
  auto excess_tokens = ledger_tokens_ + tokens - max_tokens;
  time_point free_at = now;
  time_point latest{};
  for (const auto& e : ledger_) {
    if (excess_requests <= 0 && excess_tokens <= 0) break;
    latest = std::max(latest, e.at);
    free_at = latest + k_window;
    --excess_requests;
    excess_tokens -= e.tokens;
  }
  return free_at > now ? std::chrono::nanoseconds(free_at - now) : std::chrono::nanoseconds::zero();
}

void RateLimiter::take(std::int64_t tokens, time_point now) noexcept {
  requests_.take(1.0, now);
  tokens_.take(static_cast<double>(tokens), now);
  ++next_seq_;
  if (!options_.sliding_window) return;
  ledger_.push_back({next_seq_ - 1, now, tokens});
  ledger_tokens_ += tokens;
}

void RateLimiter::settle(std::uint64_t seq, std::int64_t estimated_tokens, std::int64_t actual_tokens) {
  const std::int64_t actual = std::max<std::int64_t>(actual_tokens, 0);
  const auto now = clock_();
  auto entry = std::lower_bound(ledger_.begin(), ledger_.end(), seq,
                                [](const LedgerEntry& e, std::uint64_t s) { return e.seq < s; });
  if (entry != ledger_.end() && entry->seq == seq) {
    ledger_tokens_ += actual - entry->tokens;
    entry->tokens = actual;
    entry->at = now;
  }
  if (actual < estimated_tokens) {
    tokens_.give_back(static_cast<double>(estimated_tokens - actual), now);
    wake_head();
  } else if (actual > estimated_tokens) {
    tokens_.take(static_cast<double>(actual - estimated_tokens), now);
  }
}

void RateLimiter::unsend(std::uint64_t seq, std::int64_t estimated_tokens) {
  const auto now = clock_();
  auto entry = std::lower_bound(ledger_.begin(), ledger_.end(), seq,
                                [](const LedgerEntry& e, std::uint64_t s) { return e.seq < s; });
  if (entry != ledger_.end() && entry->seq == seq) {
    ledger_tokens_ -= entry->tokens;
    ledger_.erase(entry);
  }
  requests_.give_back(1.0, now);
  tokens_.give_back(static_cast<double>(estimated_tokens), now);
  wake_head();
}

void RateLimiter::wake_head() {
  if (queue_.empty()) return;
  unpark(queue_.front());
  timer_->cancel();
}

void RateLimiter::unpark(Waiter& waiter) {
  if (!waiter.parked) return;
  ParkedHandler handler(std::move(waiter.parked));
  asio::post(executor_, Resume{std::move(handler)});
}

std::optional<double> parse_remaining(std::string_view header_value) {
  const auto first = header_value.find_first_not_of(" \t");
  if (first == std::string_view::npos) return std::nullopt;
  const auto last = header_value.find_last_not_of(" \t");
  const std::string_view number = header_value.substr(first, last - first + 1);
  double value = 0.0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc{} || end != number.data() + number.size()) return std::nullopt;
  if (!std::isfinite(value) || value < 0.0) return std::nullopt;
  return value;
}

std::int64_t estimate_tokens(std::string_view text) {
  return static_cast<std::int64_t>((text.size() + 3) / 4);
}

}  // namespace dagent::net
