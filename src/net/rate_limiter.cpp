#include "net/rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include "observe/metrics.hpp"

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

// Falling back, the shared budget is asked again this long after it last failed (each failure
// costs at most redis.timeout_ms; a Redis in reconnect backoff answers at once).
constexpr std::chrono::seconds k_shared_retry{1};

double share_of(const RateLimiterOptions& o) {
  return o.shared ? static_cast<double>(std::max(o.expected_processes, 1)) : 1.0;
}

asio::awaitable<boost::system::result<SharedAnswer, std::string>> push_ask(std::shared_ptr<SharedBudget> budget,
                                                                           SharedAsk ask) {
  co_return co_await budget->ask(std::move(ask));
}

}  // namespace

// The push of a 429's hold to the shared budget: owned by the limiter, which cancels it when
// destroyed (and is then no longer touched).
struct RateLimiter::Push {
  bool alive = true;
  bool running = false;
  asio::cancellation_signal cancel;
};

struct RateLimiter::PushDone {
  std::shared_ptr<Push> push;
  RateLimiter* limiter;  // used only while push->alive
  SharedAsk ask;
  void operator()(std::exception_ptr e, boost::system::result<SharedAnswer, std::string> r) const {
    if (!push->alive) return;
    push->running = false;
    if (!e && r.has_value()) limiter->delivered(ask);
  }
};

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
  Queued(RateLimiter* limiter, std::chrono::nanoseconds* waited)
      : limiter_(limiter),
        waited_(waited),
        entered_(limiter->clock_()),
        self_(limiter->queue_.insert(limiter->queue_.end(), Waiter{})) {}

  ~Queued() {
    const std::chrono::nanoseconds wait = limiter_->clock_() - entered_;
    limiter_->total_wait_ += wait;
    if (waited_) *waited_ += wait;
    observe::rate_limiter_waited(wait);
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
  std::chrono::nanoseconds* waited_;  // the caller's own count, or null
  time_point entered_;
  std::list<Waiter>::iterator self_;
};

RateLimiterOptions RateLimiterOptions::from(const config::RateLimitingConfig& cfg) {
  RateLimiterOptions o;
  o.enabled = cfg.enabled;
  o.rpm_limit = cfg.rpm_limit;
  o.tpm_limit = cfg.tpm_limit;
  o.safety_margin = cfg.safety_margin;
  o.window = cfg.window;
  o.expected_processes = cfg.expected_processes;
  return o;
}

RateLimiter::Reservation::Reservation(Reservation&& other) noexcept
    : limiter_(std::exchange(other.limiter_, nullptr)),
      tokens_(std::exchange(other.tokens_, 0)),
      seq_(std::exchange(other.seq_, 0)),
      tokens_mark_(std::exchange(other.tokens_mark_, 0)),
      in_flight_requests_(other.in_flight_requests_),
      in_flight_tokens_(other.in_flight_tokens_),
      shared_(other.shared_) {}

RateLimiter::Reservation& RateLimiter::Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    if (limiter_ != nullptr) limiter_->abandon(seq_);
    limiter_ = std::exchange(other.limiter_, nullptr);
    tokens_ = std::exchange(other.tokens_, 0);
    seq_ = std::exchange(other.seq_, 0);
    tokens_mark_ = std::exchange(other.tokens_mark_, 0);
    in_flight_requests_ = other.in_flight_requests_;
    in_flight_tokens_ = other.in_flight_tokens_;
    shared_ = other.shared_;
  }
  return *this;
}

RateLimiter::Reservation::~Reservation() {
  if (limiter_ != nullptr) limiter_->abandon(seq_);
}

void RateLimiter::Reservation::observe(const RateLimitHeaders& headers) {
  if (limiter_ == nullptr) return;
  RateLimiter& l = *limiter_;
  l.abandon(seq_);  // answered: the server has counted it
  if (headers.empty()) return;
  // Why: the server computed these numbers when it counted this call. Calls granted after it
  // may not have reached the server yet, and calls in flight when it was granted may have
  // reached it later, whatever order their answers came back in.
  const auto requests = static_cast<std::int64_t>(l.next_seq_ - 1 - seq_) + in_flight_requests_;
  const std::int64_t tokens = l.granted_tokens_ - tokens_mark_ + in_flight_tokens_;
  l.sync(headers, requests, tokens);
}

bool RateLimiter::Reservation::fallback() const noexcept {
  return limiter_ != nullptr && limiter_->options_.shared && !shared_;
}

void RateLimiter::Reservation::reconcile(std::int64_t actual_tokens) {
  if (limiter_ == nullptr) return;
  std::exchange(limiter_, nullptr)->settle(seq_, tokens_, actual_tokens, shared_);
}

void RateLimiter::Reservation::release_unsent() {
  if (limiter_ == nullptr) return;
  std::exchange(limiter_, nullptr)->unsend(seq_, tokens_, shared_);
}

RateLimiter::RateLimiter(asio::any_io_executor executor, RateLimiterOptions options, Clock clock,
                         std::unique_ptr<LimiterTimer> timer)
    : executor_(std::move(executor)),
      options_(options),
      clock_(std::move(clock)),
      timer_(timer ? std::move(timer) : std::make_unique<SteadyLimiterTimer>(executor_)),
      requests_(static_cast<double>(options_.rpm_limit) * options_.safety_margin / share_of(options_), clock_(),
                options_.period),
      tokens_(static_cast<double>(options_.tpm_limit) * options_.safety_margin / share_of(options_), clock_(),
              options_.period),
      shared_requests_(static_cast<double>(options_.rpm_limit) * options_.safety_margin),
      shared_tokens_(static_cast<double>(options_.tpm_limit) * options_.safety_margin),
      push_(std::make_shared<Push>()) {}

RateLimiter::~RateLimiter() {
  push_->alive = false;
  push_->cancel.emit(asio::cancellation_type::terminal);
}

std::optional<RateLimiter::Reservation> RateLimiter::try_acquire(std::int64_t estimated_tokens) {
  if (!options_.enabled) return Reservation{};
  if (!queue_.empty() || options_.shared) return std::nullopt;  // shared: only acquire() asks the budget
  const std::int64_t tokens = std::max<std::int64_t>(estimated_tokens, 0);
  const auto now = clock_();
  if (wait_for(tokens, now) != std::chrono::nanoseconds::zero()) return std::nullopt;
  observe::rate_limiter_waited({});
  return take(tokens, now);
}

asio::awaitable<RateLimiter::Reservation> RateLimiter::acquire(std::int64_t estimated_tokens,
                                                               std::chrono::nanoseconds* waited) {
  if (!options_.enabled) co_return Reservation{};
  const std::int64_t tokens = std::max<std::int64_t>(estimated_tokens, 0);
  if (options_.shared) co_return co_await acquire_shared(tokens, waited);
  if (queue_.empty()) {
    const auto now = clock_();
    if (wait_for(tokens, now) == std::chrono::nanoseconds::zero()) {
      observe::rate_limiter_waited({});
      co_return take(tokens, now);
    }
  }
  Queued queued(this, waited);
  for (;;) {
    if (queued.at_head()) {
      const auto now = clock_();
      const auto wait = wait_for(tokens, now);
      if (wait == std::chrono::nanoseconds::zero()) co_return take(tokens, now);
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

// Shared mode: the queue is this process's, and only its head asks the shared budget, once per
// grant or per wait it was told. Why a grant that the budget made but a cancelled caller never
// received is not returned: the ask's outcome is unknown to a cancelled coroutine; the budget
// errs on the safe side.
asio::awaitable<RateLimiter::Reservation> RateLimiter::acquire_shared(std::int64_t tokens,
                                                                      std::chrono::nanoseconds* waited) {
  Queued queued(this, waited);
  for (;;) {
    if (queued.at_head()) {
      auto now = clock_();
      std::chrono::nanoseconds wait{0};
      if (blocked_until_ > now) {
        wait = blocked_until_ - now;  // a 429 here: its hold went to the budget as well
      } else if (now >= shared_retry_at_) {
        const SharedAsk ask = pending_ask(true, tokens);
        auto answer = co_await options_.shared->ask(ask);
        // Why first: a cancelled caller's ask fails too, and says nothing about Redis.
        const asio::cancellation_state asked = co_await asio::this_coro::cancellation_state;
        if (asked.cancelled() != asio::cancellation_type::none)
          throw boost::system::system_error(asio::error::operation_aborted);
        now = clock_();
        if (!answer) {
          enter_fallback(now, answer.error());
          continue;
        }
        delivered(ask);
        if (falling_back_) leave_fallback();
        if (answer->granted) co_return take(tokens, now, true);
        wait = std::max(answer->wait, std::chrono::nanoseconds(1));
      } else {
        // Falling back: this process's share, until the shared budget is due to be asked again.
        wait = wait_for(tokens, now);
        if (wait == std::chrono::nanoseconds::zero()) co_return take(tokens, now);
        wait = std::min(wait, std::chrono::nanoseconds(shared_retry_at_ - now));
      }
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

SharedAsk RateLimiter::pending_ask(bool take, std::int64_t tokens) const {
  SharedAsk ask;
  ask.take = take;
  ask.tokens = tokens;
  ask.request_capacity = shared_requests_;
  ask.token_capacity = shared_tokens_;
  ask.period = options_.period;
  ask.token_debt = take ? owed_debt_ : 0;  // a push carries only what may be applied twice
  ask.request_returns = take ? owed_returns_ : 0;
  ask.hold = owed_hold_;
  ask.request_upper = owed_request_upper_;
  ask.token_upper = owed_token_upper_;
  return ask;
}

void RateLimiter::delivered(const SharedAsk& ask) noexcept {
  owed_debt_ -= ask.token_debt;
  owed_returns_ -= ask.request_returns;
  if (owed_hold_ == ask.hold) owed_hold_ = std::chrono::milliseconds(0);
  if (owed_request_upper_ == ask.request_upper) owed_request_upper_.reset();
  if (owed_token_upper_ == ask.token_upper) owed_token_upper_.reset();
}

void RateLimiter::enter_fallback(time_point now, const std::string& why) {
  shared_retry_at_ = now + k_shared_retry;
  if (falling_back_) return;
  falling_back_ = true;
  ++shared_stats_.fallbacks;
  // Why start empty: this process's share refills from now, so falling back releases no burst.
  requests_.drain(now);
  tokens_.drain(now);
  const std::string message = "rate limiting: the shared budget did not answer (" + why +
                              "); until it does, this process keeps to 1/" +
                              std::to_string(std::max(options_.expected_processes, 1)) +
                              " of the limits (performance.rate_limiting.expected_processes)";
  if (options_.warn) options_.warn(message);
  else std::fprintf(stderr, "dagent: warning: %s\n", message.c_str());
}

void RateLimiter::leave_fallback() {
  falling_back_ = false;
  ++shared_stats_.recoveries;
  const std::string message = "rate limiting: the shared budget answers again";
  if (options_.warn) options_.warn(message);
  else std::fprintf(stderr, "dagent: %s\n", message.c_str());
}

// Sends a 429's hold to the shared budget now, so that every process holds, not only those
// whose head happens to ask.
void RateLimiter::push_updates() {
  if (push_->running || falling_back_) return;  // the running push or the next ask carries it
  push_->running = true;
  const SharedAsk ask = pending_ask(false, 0);
  asio::co_spawn(executor_, push_ask(options_.shared, ask),
                 asio::bind_cancellation_slot(push_->cancel.slot(), PushDone{push_, this, ask}));
}

void RateLimiter::sync_shared(const RateLimitHeaders& headers, time_point now) {
  // The server's limit replaces the configured one (this process's share of it for the
  // fallback); its remaining budget bounds the shared level from above (someone spends that we
  // do not see). Raising the shared level from one process's view could over-grant the others.
  auto one = [&](const RateLimitReading& r, double& capacity, TokenBucket& local, std::optional<double>& owed) {
    if (r.limit && *r.limit > 0) {
      capacity = static_cast<double>(*r.limit);
      local.set_capacity(capacity / share_of(options_), now);
    }
    if (!r.remaining) return;
    double upper = *r.remaining;
    if (r.limit && r.reset) {
      const double rate = capacity / std::chrono::duration<double>(options_.period).count();
      upper = std::max(upper, capacity - std::chrono::duration<double>(*r.reset).count() * rate);
    }
    owed = owed ? std::min(*owed, upper) : upper;
  };
  one(headers.requests, shared_requests_, requests_, owed_request_upper_);
  one(headers.tokens, shared_tokens_, tokens_, owed_token_upper_);
}

void RateLimiter::observe(const RateLimitHeaders& headers) {
  if (!options_.enabled || headers.empty()) return;
  sync(headers, 0, 0);
}

void RateLimiter::sync(const RateLimitHeaders& headers, std::int64_t uncounted_requests,
                       std::int64_t uncounted_tokens) {
  const auto now = clock_();
  if (options_.shared) return sync_shared(headers, now);
  if (options_.window == config::RateWindow::bucket) {
    // Why bounds, not the number: the server counted this call somewhere between its grant and
    // now, and calls in flight around it in an order we cannot see. Its level as it counted the
    // call (remaining, or more precisely limit − reset × refill rate: "remaining" is rounded
    // down) is an upper bound on its level now for us (the little refill since is left out);
    // less the calls it cannot have counted yet, a lower bound. A model outside is wrong: the
    // server has room (raised), or someone else spends, or the server's clock started later
    // than ours (lowered).
    auto sync_bucket = [&](TokenBucket& bucket, const RateLimitReading& r, std::int64_t uncounted) {
      if (r.limit) bucket.set_capacity(*r.limit, now);
      if (!r.remaining) return;
      double upper = *r.remaining;
      if (r.limit && r.reset) {
        const double rate = bucket.capacity() / std::chrono::duration<double>(options_.period).count();
        upper = std::max(upper, bucket.capacity() - std::chrono::duration<double>(*r.reset).count() * rate);
      }
      const double lower = upper - static_cast<double>(uncounted);
      const double level = bucket.available(now);
      if (level < lower) bucket.set_level(lower, now);
      else if (level > upper) bucket.set_level(upper, now);
    };
    sync_bucket(requests_, headers.requests, uncounted_requests);
    sync_bucket(tokens_, headers.tokens, uncounted_tokens);
  } else {
    expire(now);
    sync_window(headers.requests, Dimension::requests, uncounted_requests, now);
    sync_window(headers.tokens, Dimension::tokens, uncounted_tokens, now);
  }
  wake_head();
}

void RateLimiter::sync_window(const RateLimitReading& r, Dimension dimension, std::int64_t uncounted,
                              time_point now) {
  TokenBucket& limit = dimension == Dimension::requests ? requests_ : tokens_;  // holds the window's limit
  if (r.limit) limit.set_capacity(*r.limit, now);
  if (!r.remaining) return;
  std::int64_t& held = dimension == Dimension::requests ? ledger_requests_ : ledger_tokens_;
  // As for the bucket: the server holds between held − uncounted and held of ours, plus any
  // foreign calls; only a count outside that range changes the ledger.
  const auto server_holds = static_cast<std::int64_t>(std::ceil(limit.capacity() - *r.remaining));
  const std::int64_t at_least = held - std::min(std::max<std::int64_t>(uncounted, 0), held);
  std::int64_t diff = server_holds < at_least ? server_holds - at_least : std::max<std::int64_t>(server_holds - held, 0);
  auto field = [dimension](LedgerEntry& e) -> std::int64_t& {
    return dimension == Dimension::requests ? e.requests : e.tokens;
  };
  // The server no longer counts our oldest entries: it stamped them earlier than we did.
  for (auto& e : ledger_) {
    if (diff >= 0) break;
    const std::int64_t drop = std::min(field(e), -diff);
    field(e) -= drop;
    held -= drop;
    diff += drop;
  }
  if (diff <= 0) return;
  // The server counts calls we never sent (another client on the key). They leave its window
  // by its reset at the latest; without one, count them as made now.
  time_point at = now;
  if (r.reset) at = std::clamp(now + *r.reset - options_.period, now - options_.period, now);
  LedgerEntry foreign{next_seq_ - 1, at, 0, 0, false};
  field(foreign) = diff;
  held += diff;
  ledger_.push_back(foreign);
}

void RateLimiter::on_429(std::chrono::milliseconds retry_after) {
  // Why: every caller waits out retry-after, not just the one that got the 429; the buckets
  // restart from empty when it ends, since the server's is evidently empty. Refilling during
  // the hold would release a burst at its end into a server (e.g. one counting a rolling
  // window) that frees its budget only gradually.
  if (!options_.enabled) return;
  const auto now = clock_();
  blocked_until_ = std::max(blocked_until_, now + retry_after);
  requests_.drain(now, blocked_until_);
  tokens_.drain(now, blocked_until_);
  if (options_.shared) {
    owed_hold_ = std::max(owed_hold_, retry_after);
    push_updates();
  }
  wake_head();
}

std::size_t RateLimiter::waiting() const noexcept { return queue_.size(); }

std::chrono::nanoseconds RateLimiter::wait_for(std::int64_t tokens, time_point now) noexcept {
  auto wait = options_.window == config::RateWindow::bucket
                  ? std::max(requests_.wait_for(1.0, now), tokens_.wait_for(static_cast<double>(tokens), now))
                  : ledger_wait(tokens, now);
  if (blocked_until_ > now) wait = std::max(wait, std::chrono::nanoseconds(blocked_until_ - now));
  return wait;
}

void RateLimiter::expire(time_point now) noexcept {
  while (!ledger_.empty() && ledger_.front().at + options_.period <= now) {
    ledger_requests_ -= ledger_.front().requests;
    ledger_tokens_ -= ledger_.front().tokens;
    ledger_.pop_front();
  }
}

std::deque<RateLimiter::LedgerEntry>::iterator RateLimiter::own_entry(std::uint64_t seq) noexcept {
  auto entry = std::lower_bound(ledger_.begin(), ledger_.end(), seq,
                                [](const LedgerEntry& e, std::uint64_t s) { return e.seq < s; });
  for (; entry != ledger_.end() && entry->seq == seq; ++entry)
    if (entry->own) return entry;
  return ledger_.end();
}

std::chrono::nanoseconds RateLimiter::ledger_wait(std::int64_t tokens, time_point now) noexcept {
  const auto k_window = options_.period;
  expire(now);
  const auto max_requests = static_cast<std::int64_t>(requests_.capacity());
  const auto max_tokens = static_cast<std::int64_t>(tokens_.capacity());
  tokens = std::min(tokens, max_tokens);  // a request larger than the window still goes, alone
  // Entries leave in order; re-stamped ones may sit a little out of order, so the time the
  // first k have left is the latest stamp among them (never earlier than the truth).
  auto excess_requests = ledger_requests_ + 1 - std::max<std::int64_t>(max_requests, 1);
  auto excess_tokens = ledger_tokens_ + tokens - max_tokens;
  time_point free_at = now;
  time_point latest{};
  for (const auto& e : ledger_) {
    if (excess_requests <= 0 && excess_tokens <= 0) break;
    latest = std::max(latest, e.at);
    free_at = latest + k_window;
    excess_requests -= e.requests;
    excess_tokens -= e.tokens;
  }
  return free_at > now ? std::chrono::nanoseconds(free_at - now) : std::chrono::nanoseconds::zero();
}

RateLimiter::Reservation RateLimiter::take(std::int64_t tokens, time_point now, bool shared) {
  const std::uint64_t seq = next_seq_++;
  granted_tokens_ += tokens;
  const auto in_flight = static_cast<std::int64_t>(unanswered_.size());
  const std::int64_t in_flight_tokens = unanswered_tokens_;
  unanswered_.emplace(seq, tokens);
  unanswered_tokens_ += tokens;
  if (options_.shared) ++(shared ? shared_stats_.shared_grants : shared_stats_.fallback_grants);
  if (shared) {
    // The shared budget has taken them.
  } else if (options_.window == config::RateWindow::bucket) {
    requests_.take(1.0, now);
    tokens_.take(static_cast<double>(tokens), now);
  } else {
    ledger_.push_back({seq, now, 1, tokens, true});
    ++ledger_requests_;
    ledger_tokens_ += tokens;
  }
  return Reservation(this, tokens, seq, granted_tokens_, in_flight, in_flight_tokens, shared);
}

void RateLimiter::abandon(std::uint64_t seq) noexcept {
  if (auto it = unanswered_.find(seq); it != unanswered_.end()) {
    unanswered_tokens_ -= it->second;
    unanswered_.erase(it);
  }
}

void RateLimiter::settle(std::uint64_t seq, std::int64_t estimated_tokens, std::int64_t actual_tokens, bool shared) {
  const std::int64_t actual = std::max<std::int64_t>(actual_tokens, 0);
  const auto now = clock_();
  abandon(seq);
  if (shared) {
    owed_debt_ += actual - estimated_tokens;  // sent with the next ask
    return;
  }
  if (auto entry = own_entry(seq); entry != ledger_.end()) {
    // Headers may already have dropped part of the entry; the difference still applies.
    const std::int64_t tokens = std::max<std::int64_t>(entry->tokens + actual - estimated_tokens, 0);
    ledger_tokens_ += tokens - entry->tokens;
    entry->tokens = tokens;
    if (entry->requests > 0) entry->at = now;
  }
  if (options_.window == config::RateWindow::rolling) {
    if (actual < estimated_tokens) wake_head();
    return;
  }
  if (actual < estimated_tokens) {
    tokens_.give_back(static_cast<double>(estimated_tokens - actual), now);
    wake_head();
  } else if (actual > estimated_tokens) {
    tokens_.take(static_cast<double>(actual - estimated_tokens), now);
  }
}

void RateLimiter::unsend(std::uint64_t seq, std::int64_t estimated_tokens, bool shared) {
  const auto now = clock_();
  abandon(seq);
  if (shared) {
    ++owed_returns_;
    owed_debt_ -= estimated_tokens;
    wake_head();
    return;
  }
  if (options_.window == config::RateWindow::rolling) {
    if (auto entry = own_entry(seq); entry != ledger_.end()) {
      ledger_requests_ -= entry->requests;
      ledger_tokens_ -= entry->tokens;
      ledger_.erase(entry);
    }
  } else {
    requests_.give_back(1.0, now);
    tokens_.give_back(static_cast<double>(estimated_tokens), now);
  }
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

std::int64_t estimate_tokens(std::string_view text) {
  return static_cast<std::int64_t>((text.size() + 3) / 4);
}

}  // namespace dagent::net
