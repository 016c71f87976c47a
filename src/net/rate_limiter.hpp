#pragma once
// Client-side rate limiting on the event loop: a request bucket and a token bucket, FIFO waiters
// woken by one timer armed for the head's exact wait, reconciliation with the real usage, and
// tightening from x-ratelimit-remaining-* headers and 429s.

#include <chrono>
#include <cstdint>
#include <functional>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "config/config.hpp"
#include "net/token_bucket.hpp"

namespace dagent::net {

struct RateLimiterOptions {
  bool enabled = true;                ///< false: acquire() completes at once and nothing is tracked
  std::int64_t rpm_limit = 10000;     ///< requests per minute the API allows
  std::int64_t tpm_limit = 2000000;   ///< tokens per minute the API allows
  double safety_margin = 0.9;         ///< the buckets hold limit × safety_margin, in (0, 1]
  bool sliding_window = true;         ///< also keep every 60 s window within the limits (as servers count)

  /// The options of performance.rate_limiting.
  static RateLimiterOptions from(const config::RateLimitingConfig& cfg);
};

/// The one timer a RateLimiter sleeps on. A seam so tests can drive time with a fake clock; the
/// default wraps a steady_timer.
class LimiterTimer {
 public:
  virtual ~LimiterTimer() = default;
  /// Completes after `duration` of the limiter's clock, after cancel(), or when the awaiting
  /// coroutine is cancelled; never throws for any of these.
  virtual boost::asio::awaitable<void> sleep(std::chrono::nanoseconds duration) = 0;
  /// Ends a pending sleep() now; does nothing if none is pending.
  virtual void cancel() = 0;
};

/// Admits LLM calls within a requests-per-minute and a tokens-per-minute budget. Lives on a
/// single-threaded event loop: every member must be called there, and the limiter must outlive
/// every acquire() in progress and every Reservation it handed out.
class RateLimiter {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using Clock = std::function<time_point()>;

  /// What one admitted call holds: 1 request and its estimated tokens. Move-only. Destroyed
  /// without reconcile() (the call failed before its usage was known) it keeps the whole
  /// reservation, since the server has likely counted the tokens.
  class Reservation {
   public:
    Reservation() = default;
    Reservation(Reservation&& other) noexcept;
    Reservation& operator=(Reservation&& other) noexcept;
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    ~Reservation() = default;

    /// Settles with the real usage: unused tokens return to the bucket (waking the head waiter);
    /// extra tokens are taken, possibly leaving a debt that makes the next waiter wait longer.
    /// Only the first call counts; does nothing on an empty reservation.
    void reconcile(std::int64_t actual_tokens);

    /// The call was never sent (e.g. the circuit breaker refused it): its request and all its
    /// tokens go back to the buckets and it leaves the 60 s ledger, as if never granted. Only
    /// the first of reconcile() and this counts.
    void release_unsent();

    /// True until reconciled or moved from; false in disabled mode.
    bool active() const noexcept { return limiter_ != nullptr; }
    std::int64_t estimated_tokens() const noexcept { return tokens_; }

   private:
    friend class RateLimiter;
    Reservation(RateLimiter* limiter, std::int64_t tokens, std::uint64_t seq) noexcept
        : limiter_(limiter), tokens_(tokens), seq_(seq) {}

    RateLimiter* limiter_ = nullptr;
    std::int64_t tokens_ = 0;
    std::uint64_t seq_ = 0;  ///< its entry in the limiter's 60 s ledger
  };

  /// Full buckets at clock(). `timer` defaults to a steady_timer on `executor`; a custom one must
  /// measure time as `clock` does.
  RateLimiter(boost::asio::any_io_executor executor, RateLimiterOptions options,
              Clock clock = &std::chrono::steady_clock::now, std::unique_ptr<LimiterTimer> timer = nullptr);
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  /// Reserves 1 request and `estimated_tokens` (prompt estimate + max_tokens), waiting in FIFO
  /// order until both buckets hold enough; a later caller never overtakes an earlier one. Throws
  /// system_error(operation_aborted) when the awaiting coroutine is cancelled, after leaving the
  /// queue. Disabled: completes at once with an empty Reservation.
  boost::asio::awaitable<Reservation> acquire(std::int64_t estimated_tokens);

  /// x-ratelimit-remaining-requests / -tokens of a response: lowers the buckets, never raises them.
  void observe_headers(std::optional<double> remaining_requests, std::optional<double> remaining_tokens);

  /// The server answered 429: both buckets are emptied and refill from zero.
  void on_429(std::chrono::milliseconds retry_after = std::chrono::milliseconds(0));

  /// Time spent in the queue by callers whose acquire() has finished (granted or cancelled).
  std::chrono::nanoseconds total_wait() const noexcept { return total_wait_; }

  /// Callers waiting in acquire().
  std::size_t waiting() const noexcept;

 private:
  struct Waiter;
  struct Park;
  class Queued;

  std::chrono::nanoseconds wait_for(std::int64_t tokens, time_point now) noexcept;
  void take(std::int64_t tokens, time_point now) noexcept;
  void settle(std::uint64_t seq, std::int64_t estimated_tokens, std::int64_t actual_tokens);
  void unsend(std::uint64_t seq, std::int64_t estimated_tokens);
  std::chrono::nanoseconds ledger_wait(std::int64_t tokens, time_point now) noexcept;
  void wake_head();
  void unpark(Waiter& waiter);

  boost::asio::any_io_executor executor_;
  RateLimiterOptions options_;
  Clock clock_;
  std::unique_ptr<LimiterTimer> timer_;
  TokenBucket requests_;
  TokenBucket tokens_;
  std::list<Waiter> queue_;  // bounded by the callers in flight (max_parallel_llm_calls)
  std::chrono::nanoseconds total_wait_{0};
  // Why: servers count a sliding 60 s window, which a refilling bucket overfills (a full bucket
  // plus a minute of refill). Every grant is logged here and admitted only if the last 60 s,
  // itself included, stay within the limits; an entry is re-stamped when its response arrives,
  // since the server counted it no earlier than that could be known.
  struct LedgerEntry {
    std::uint64_t seq;
    time_point at;
    std::int64_t tokens;
  };
  std::deque<LedgerEntry> ledger_;
  std::int64_t ledger_tokens_ = 0;
  std::uint64_t next_seq_ = 1;
  time_point blocked_until_{};  ///< a 429's retry-after: nothing is sent before it
};

/// The number in an x-ratelimit-remaining-* header value ("59", " 149984 "); nullopt when it is
/// not a finite non-negative number.
std::optional<double> parse_remaining(std::string_view header_value);

/// A cheap token estimate for `text`: ceil(bytes / 4), the usual ratio for English under
/// BPE tokenizers. It undercounts dense non-Latin text; reconcile() corrects with real usage.
std::int64_t estimate_tokens(std::string_view text);

}  // namespace dagent::net
