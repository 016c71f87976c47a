#pragma once
// Client-side rate limiting on the event loop: the provider's budget modelled as it counts it (a
// continuously refilled bucket or a rolling 60 s window), FIFO waiters woken by one timer armed
// for the head's exact wait, reconciliation with the real usage, synchronization with the
// server's x-ratelimit-* headers in both directions, and a hold for every caller after a 429.
// Optionally the budget is shared with other processes (SharedBudget, kept in Redis): the FIFO
// queue stays in this process and only its head asks the shared budget, once per grant.

#include <chrono>
#include <cstdint>
#include <functional>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "config/config.hpp"
#include "net/ratelimit_headers.hpp"
#include "net/shared_budget.hpp"
#include "net/token_bucket.hpp"

namespace dagent::net {

struct RateLimiterOptions {
  bool enabled = true;                ///< false: acquire() completes at once and nothing is tracked
  std::int64_t rpm_limit = 10000;     ///< requests per minute the API allows
  std::int64_t tpm_limit = 2000000;   ///< tokens per minute the API allows
  double safety_margin = 0.9;         ///< the configured limits count as limit × safety_margin, in (0, 1]
  config::RateWindow window = config::RateWindow::bucket;  ///< how the provider counts its limits
  /// The span the limits count over: a minute. Shorter only for benchmarks run in scaled time.
  std::chrono::nanoseconds period = std::chrono::minutes(1);
  /// The budget shared with other processes (performance.rate_limiting.shared); null: this
  /// process's own. Bucket window only.
  std::shared_ptr<SharedBudget> shared;
  /// While the shared budget cannot be reached, this process keeps to limit / expected_processes.
  int expected_processes = 1;
  /// Receives the warning when the shared budget stops answering and the note when it is back
  /// (once per outage, not per call); empty: standard error.
  std::function<void(const std::string&)> warn;

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
    ~Reservation();

    /// Settles with the real usage: unused tokens return to the bucket (waking the head waiter);
    /// extra tokens are taken, possibly leaving a debt that makes the next waiter wait longer.
    /// Only the first call counts; does nothing on an empty reservation.
    void reconcile(std::int64_t actual_tokens);

    /// The call was never sent (e.g. the circuit breaker refused it): its request and all its
    /// tokens go back to the buckets and it leaves the 60 s ledger, as if never granted. Only
    /// the first of reconcile() and this counts.
    void release_unsent();

    /// The rate-limit headers of this call's response: the limiter's model takes the server's
    /// limit, and its level is kept between what the server had left and that less what it may
    /// not have counted yet (calls granted after this one, and those in flight when it was
    /// granted). Does nothing on an empty reservation.
    void observe(const RateLimitHeaders& headers);

    /// True until reconciled or moved from; false in disabled mode.
    bool active() const noexcept { return limiter_ != nullptr; }
    /// Granted by the shared budget (not by this process's fallback share).
    bool shared() const noexcept { return shared_; }
    /// Shared mode: granted from this process's share (one of shared_stats().fallback_grants).
    /// False once reconciled.
    bool fallback() const noexcept;
    std::int64_t estimated_tokens() const noexcept { return tokens_; }

   private:
    friend class RateLimiter;
    Reservation(RateLimiter* limiter, std::int64_t tokens, std::uint64_t seq, std::int64_t tokens_mark,
                std::int64_t in_flight_requests, std::int64_t in_flight_tokens, bool shared) noexcept
        : limiter_(limiter),
          tokens_(tokens),
          seq_(seq),
          tokens_mark_(tokens_mark),
          in_flight_requests_(in_flight_requests),
          in_flight_tokens_(in_flight_tokens),
          shared_(shared) {}

    RateLimiter* limiter_ = nullptr;
    std::int64_t tokens_ = 0;
    std::uint64_t seq_ = 0;           ///< grant order; its entry in the rolling window's ledger
    std::int64_t tokens_mark_ = 0;    ///< tokens granted in all, this grant included
    std::int64_t in_flight_requests_ = 0;  ///< other grants unanswered when this one was granted
    std::int64_t in_flight_tokens_ = 0;
    bool shared_ = false;
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
  /// queue. Disabled: completes at once with an empty Reservation. The time in the queue, counted
  /// in total_wait(), is also added to `*waited` (null: nowhere), which must outlive the call.
  boost::asio::awaitable<Reservation> acquire(std::int64_t estimated_tokens, std::chrono::nanoseconds* waited = nullptr);
  /// What acquire() would complete with at once (disabled, or no caller waiting and both buckets
  /// holding enough), without a coroutine; otherwise empty, and the caller awaits acquire().
  std::optional<Reservation> try_acquire(std::int64_t estimated_tokens);

  /// Rate-limit headers counted after every grant so far (e.g. of a call made without this
  /// limiter): the model takes the server's limit and its remaining budget, up or down.
  void observe(const RateLimitHeaders& headers);

  /// The server answered 429: nothing is sent before `retry_after` has passed, and the bucket
  /// model restarts from empty.
  void on_429(std::chrono::milliseconds retry_after = std::chrono::milliseconds(0));

  /// Time spent in the queue by callers whose acquire() has finished (granted or cancelled).
  std::chrono::nanoseconds total_wait() const noexcept { return total_wait_; }

  /// Callers waiting in acquire().
  std::size_t waiting() const noexcept;

  /// Shared mode: how the grants were made, and how often the shared budget was lost.
  struct SharedStats {
    std::int64_t shared_grants = 0;    ///< granted by the shared budget
    std::int64_t fallback_grants = 0;  ///< granted from this process's share while it was unreachable
    std::int64_t fallbacks = 0;        ///< times it stopped answering (each warned once)
    std::int64_t recoveries = 0;       ///< times it answered again
  };
  SharedStats shared_stats() const noexcept { return shared_stats_; }
  /// Shared mode: the shared budget did not answer the last ask; grants come from this
  /// process's share.
  bool falling_back() const noexcept { return falling_back_; }

 private:
  struct Waiter;
  struct Park;
  class Queued;

  struct LedgerEntry;
  enum class Dimension { requests, tokens };

  std::chrono::nanoseconds wait_for(std::int64_t tokens, time_point now) noexcept;
  Reservation take(std::int64_t tokens, time_point now, bool shared = false);
  void settle(std::uint64_t seq, std::int64_t estimated_tokens, std::int64_t actual_tokens, bool shared);
  void unsend(std::uint64_t seq, std::int64_t estimated_tokens, bool shared);
  boost::asio::awaitable<Reservation> acquire_shared(std::int64_t tokens, std::chrono::nanoseconds* waited);
  SharedAsk pending_ask(bool take, std::int64_t tokens) const;
  void delivered(const SharedAsk& ask) noexcept;
  void enter_fallback(time_point now, const std::string& why);
  void leave_fallback();
  void push_updates();
  void sync_shared(const RateLimitHeaders& headers, time_point now);
  void abandon(std::uint64_t seq) noexcept;
  void sync(const RateLimitHeaders& headers, std::int64_t uncounted_requests, std::int64_t uncounted_tokens);
  void sync_window(const RateLimitReading& reading, Dimension dimension, std::int64_t uncounted, time_point now);
  void expire(time_point now) noexcept;
  std::deque<LedgerEntry>::iterator own_entry(std::uint64_t seq) noexcept;
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
  // Rolling window only. Why: such a server counts the last 60 s, which a refilling bucket
  // overfills (a full bucket plus a minute of refill). Every grant is logged here and admitted
  // only if the last 60 s, itself included, stay within the limits; an entry is re-stamped when
  // its response arrives, since the server counted it no earlier than that could be known. The
  // server's headers drop entries it no longer counts and add ones it counts that we never sent.
  struct LedgerEntry {
    std::uint64_t seq;
    time_point at;
    std::int64_t requests;  // 1 for a grant (0 once the server no longer counts it); n for foreign calls
    std::int64_t tokens;
    bool own;               // a grant of ours, not calls the server counted that we never sent
  };
  std::deque<LedgerEntry> ledger_;
  std::int64_t ledger_requests_ = 0;
  std::int64_t ledger_tokens_ = 0;
  std::uint64_t next_seq_ = 1;
  std::int64_t granted_tokens_ = 0;                  // estimated tokens of every grant so far
  std::map<std::uint64_t, std::int64_t> unanswered_;  // grants whose response is not in: seq → tokens
  std::int64_t unanswered_tokens_ = 0;
  time_point blocked_until_{};  ///< a 429's retry-after: nothing is sent before it

  // Shared mode. What this process owes the shared budget, sent with the next ask (a 429's hold
  // at once, by push_updates()); the budget's limits (the local buckets hold this process's
  // share of them, for the fallback).
  double shared_requests_ = 0;
  double shared_tokens_ = 0;
  std::int64_t owed_debt_ = 0;
  std::int64_t owed_returns_ = 0;
  std::chrono::milliseconds owed_hold_{0};
  std::optional<double> owed_request_upper_;
  std::optional<double> owed_token_upper_;
  bool falling_back_ = false;
  time_point shared_retry_at_{};  ///< falling back: the shared budget is asked again from then
  SharedStats shared_stats_;
  struct Push;
  struct PushDone;
  std::shared_ptr<Push> push_;  ///< the update push under way (a 429's hold), if any
};

/// A cheap token estimate for `text`: ceil(bytes / 4), the usual ratio for English under
/// BPE tokenizers. It undercounts dense non-Latin text; reconcile() corrects with real usage.
std::int64_t estimate_tokens(std::string_view text);

}  // namespace dagent::net
