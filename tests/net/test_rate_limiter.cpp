#include "net/rate_limiter.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace {

namespace asio = boost::asio;
namespace net = dagent::net;
using namespace std::chrono_literals;
using std::chrono::nanoseconds;

// The test's time. Timers on this clock expire when a test moves `current` past them.
struct ManualClock {
  using duration = nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<ManualClock>;
  static constexpr bool is_steady = true;

  static time_point now() noexcept { return current; }

  static inline time_point current{};
};

// Why: the reactor sleeps for the duration returned here, measured in real time. Zero makes
// every poll() compare the timer queue against ManualClock, so moving the clock takes effect at
// the next poll; nothing ever sleeps.
struct ManualWaitTraits {
  static ManualClock::duration to_wait_duration(const ManualClock::duration&) { return {}; }
  static ManualClock::duration to_wait_duration(const ManualClock::time_point&) { return {}; }
};

using ManualTimer = asio::basic_waitable_timer<ManualClock, ManualWaitTraits>;

class ManualLimiterTimer final : public net::LimiterTimer {
 public:
  explicit ManualLimiterTimer(asio::any_io_executor executor) : timer_(std::move(executor)) {}

  asio::awaitable<void> sleep(nanoseconds duration) override {
    timer_.expires_after(duration);
    co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }

  void cancel() override { timer_.cancel(); }

 private:
  ManualTimer timer_;
};

const ManualClock::time_point k_start = ManualClock::time_point{} + 1000s;

net::RateLimiter::time_point manual_now() {
  return net::RateLimiter::time_point{ManualClock::now().time_since_epoch()};
}

// Bucket arithmetic alone; the sliding-window ledger has its own tests below.
net::RateLimiterOptions tokens_per_minute(std::int64_t tpm, std::int64_t rpm = 1'000'000) {
  net::RateLimiterOptions o;
  o.rpm_limit = rpm;
  o.tpm_limit = tpm;
  o.safety_margin = 1.0;
  o.window = dagent::config::RateWindow::bucket;
  return o;
}

ManualClock::time_point reset_clock() {
  ManualClock::current = k_start;
  return k_start;
}

struct Grant {
  int id;
  nanoseconds at;
  bool operator==(const Grant&) const = default;
};

// A limiter on a real io_context whose time only moves when the test says so. Waiters are
// spawned with an owner (this harness) that records how each one ended.
struct Harness {
  ManualClock::time_point start = reset_clock();
  asio::io_context io;
  net::RateLimiter limiter;
  std::vector<Grant> grants;
  std::map<int, net::RateLimiter::Reservation> reservations;
  std::map<int, boost::system::error_code> failures;
  std::map<int, std::unique_ptr<asio::cancellation_signal>> signals;
  std::set<int> finished;

  explicit Harness(net::RateLimiterOptions options)
      : limiter(io.get_executor(), options, &manual_now, std::make_unique<ManualLimiterTimer>(io.get_executor())) {}

  ~Harness() {
    // Every waiter ends before the limiter goes, even when a check failed midway.
    for (auto& [id, signal] : signals)
      if (finished.count(id) == 0) signal->emit(asio::cancellation_type::terminal);
    settle();
  }

  nanoseconds elapsed() const { return ManualClock::now() - start; }

  // Runs everything that is ready at the current time, without blocking.
  void settle() {
    for (;;) {
      io.restart();
      if (io.poll() == 0) break;
    }
  }

  void advance_to(nanoseconds since_start) {
    ManualClock::current = start + since_start;
    settle();
  }

  void spawn(int id, std::int64_t tokens);
  void spawn_impatient(int id, std::int64_t tokens, nanoseconds patience);
};

asio::awaitable<void> acquire_and_record(Harness* h, int id, std::int64_t tokens) {
  auto reservation = co_await h->limiter.acquire(tokens);
  h->grants.push_back({id, h->elapsed()});
  h->reservations[id] = std::move(reservation);
}

// Gives up waiting after `patience`, the way a request deadline races the limiter.
asio::awaitable<void> acquire_or_give_up(Harness* h, int id, std::int64_t tokens, nanoseconds patience) {
  using namespace asio::experimental::awaitable_operators;
  ManualTimer timer(co_await asio::this_coro::executor);
  timer.expires_after(patience);
  auto call = h->limiter.acquire(tokens);
  auto deadline = timer.async_wait(asio::as_tuple(asio::use_awaitable));
  auto winner = co_await (std::move(call) || std::move(deadline));
  if (winner.index() == 0) {
    h->grants.push_back({id, h->elapsed()});
    h->reservations[id] = std::move(std::get<0>(winner));
  } else {
    h->failures[id] = asio::error::timed_out;
  }
}

struct Finished {
  Harness* h;
  int id;
  void operator()(std::exception_ptr e) const {
    h->finished.insert(id);
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const boost::system::system_error& error) {
      h->failures[id] = error.code();
    }
  }
};

void Harness::spawn(int id, std::int64_t tokens) {
  auto& signal = signals[id];
  signal = std::make_unique<asio::cancellation_signal>();
  asio::co_spawn(io, acquire_and_record(this, id, tokens),
                 asio::bind_cancellation_slot(signal->slot(), Finished{this, id}));
  settle();
}

void Harness::spawn_impatient(int id, std::int64_t tokens, nanoseconds patience) {
  auto& signal = signals[id];
  signal = std::make_unique<asio::cancellation_signal>();
  asio::co_spawn(io, acquire_or_give_up(this, id, tokens, patience),
                 asio::bind_cancellation_slot(signal->slot(), Finished{this, id}));
  settle();
}

std::vector<Grant> grants_of(std::initializer_list<Grant> list) { return list; }

}  // namespace

TEST_CASE("RateLimiter serves waiters in FIFO order, each exactly when the budget has refilled",
          "[limiter][rate_limiter]") {
  Harness h(tokens_per_minute(600));  // 10 tokens per second
  h.spawn(0, 600);
  CHECK(h.grants == grants_of({{0, 0s}}));

  h.spawn(1, 300);  // waits 30 s
  h.spawn(2, 10);   // would fit after 1 s, but must not overtake 1
  h.spawn(3, 100);
  CHECK(h.limiter.waiting() == 3);

  h.advance_to(1s);
  h.advance_to(30s - 1ns);
  CHECK(h.grants.size() == 1);
  h.advance_to(30s);
  CHECK(h.grants == grants_of({{0, 0s}, {1, 30s}}));
  h.advance_to(31s - 1ns);
  CHECK(h.grants.size() == 2);
  h.advance_to(31s);
  h.advance_to(41s - 1ns);
  CHECK(h.grants == grants_of({{0, 0s}, {1, 30s}, {2, 31s}}));
  h.advance_to(41s);
  CHECK(h.grants == grants_of({{0, 0s}, {1, 30s}, {2, 31s}, {3, 41s}}));
  CHECK(h.limiter.waiting() == 0);
  CHECK(h.failures.empty());

  SECTION("total_wait sums the time each caller spent queued") {
    CHECK(h.limiter.total_wait() == 30s + 31s + 41s);
  }
  SECTION("reservations hold their estimates") {
    CHECK(h.reservations.at(1).active());
    CHECK(h.reservations.at(1).estimated_tokens() == 300);
  }
}

TEST_CASE("RateLimiter counts requests per minute as well as tokens", "[limiter][rate_limiter]") {
  Harness h(tokens_per_minute(1'000'000, 2));  // 2 requests per minute: one per 30 s
  h.spawn(0, 1);
  h.spawn(1, 1);
  h.spawn(2, 1);
  CHECK(h.grants == grants_of({{0, 0s}, {1, 0s}}));
  h.advance_to(30s - 1ns);
  CHECK(h.grants.size() == 2);
  h.advance_to(30s);
  CHECK(h.grants == grants_of({{0, 0s}, {1, 0s}, {2, 30s}}));
}

TEST_CASE("RateLimiter buckets hold the limits times the safety margin", "[limiter][rate_limiter]") {
  auto options = tokens_per_minute(1000);
  options.safety_margin = 0.6;  // 600 tokens, 10 per second
  Harness h(options);
  h.spawn(0, 600);
  h.spawn(1, 10);
  h.advance_to(1s - 1ns);
  CHECK(h.grants.size() == 1);
  h.advance_to(1s);
  CHECK(h.grants == grants_of({{0, 0s}, {1, 1s}}));
}

TEST_CASE("RateLimiter reconcile settles a reservation with the real usage", "[limiter][rate_limiter]") {
  Harness h(tokens_per_minute(600));
  h.spawn(0, 600);
  REQUIRE(h.grants.size() == 1);

  SECTION("unused tokens return and wake the head early") {
    h.spawn(1, 300);  // would wait until 30 s
    h.advance_to(5s);  // 50 refilled
    CHECK(h.grants.size() == 1);
    h.reservations.at(0).reconcile(200);  // 400 back: 450
    CHECK_FALSE(h.reservations.at(0).active());
    h.settle();
    CHECK(h.grants == grants_of({{0, 0s}, {1, 5s}}));

    h.reservations.at(0).reconcile(0);  // a second reconcile does nothing
    h.spawn(2, 160);  // 150 left: waits 1 s
    h.advance_to(6s - 1ns);
    CHECK(h.grants.size() == 2);
    h.advance_to(6s);
    CHECK(h.grants.back() == Grant{2, 6s});
  }

  SECTION("extra tokens leave a debt and the next waiter waits longer") {
    h.reservations.at(0).reconcile(900);  // level -300
    h.spawn(1, 100);                      // 400 to go: 40 s
    h.advance_to(40s - 1ns);
    CHECK(h.grants.size() == 1);
    h.advance_to(40s);
    CHECK(h.grants == grants_of({{0, 0s}, {1, 40s}}));
  }

  SECTION("a reservation dropped without reconcile keeps its tokens") {
    h.reservations.erase(0);
    h.spawn(1, 100);
    h.advance_to(10s - 1ns);
    CHECK(h.grants.size() == 1);
    h.advance_to(10s);
    CHECK(h.grants == grants_of({{0, 0s}, {1, 10s}}));
  }

  SECTION("a moved reservation is reconciled once, by its new owner") {
    auto moved = std::move(h.reservations.at(0));
    CHECK_FALSE(h.reservations.at(0).active());
    h.reservations.at(0).reconcile(0);  // moved-from: nothing returns
    h.spawn(1, 100);
    CHECK(h.grants.size() == 1);
    moved.reconcile(500);  // 100 back
    h.settle();
    CHECK(h.grants == grants_of({{0, 0s}, {1, 0s}}));
  }
}

TEST_CASE("a breaker refusal charges the limiter: release_unsent gives back the request, its tokens and its window entry",
          "[limiter][rate_limiter]") {
  auto options = tokens_per_minute(600, 2);  // 2 requests a minute
  options.window = dagent::config::RateWindow::rolling;
  Harness h(options);
  h.spawn(0, 600);
  h.spawn(1, 1);  // waits: the token bucket is empty
  CHECK(h.grants == grants_of({{0, 0s}}));
  h.reservations.at(0).release_unsent();
  CHECK_FALSE(h.reservations.at(0).active());
  h.settle();
  CHECK(h.grants == grants_of({{0, 0s}, {1, 0s}}));  // woken at once, nothing was spent
  h.reservations.at(1).release_unsent();
  h.spawn(2, 600);  // the request bucket, the token bucket and the 60 s window are whole again
  h.spawn(3, 0);
  CHECK(h.grants == grants_of({{0, 0s}, {1, 0s}, {2, 0s}, {3, 0s}}));
  h.reservations.at(2).reconcile(10);
  h.reservations.at(2).release_unsent();  // only the first settlement counts
  h.spawn(4, 0);
  CHECK(h.grants.size() == 4);  // 2 of 2 requests this minute are taken
  h.advance_to(60s);
  CHECK(h.grants.size() == 5);
}

TEST_CASE("RateLimiter lets a request larger than the bucket through on a full bucket",
          "[limiter][rate_limiter]") {
  Harness h(tokens_per_minute(600));
  h.spawn(0, 100);
  h.spawn(1, 5000);  // waits for a full bucket (10 s), then leaves a debt of 4400
  h.spawn(2, 10);
  h.advance_to(10s - 1ns);
  CHECK(h.grants.size() == 1);
  h.advance_to(10s);
  CHECK(h.grants == grants_of({{0, 0s}, {1, 10s}}));
  h.advance_to(10s + 441s);
  CHECK(h.grants == grants_of({{0, 0s}, {1, 10s}, {2, 451s}}));
}

TEST_CASE("RateLimiter on_429 drains both buckets until they refill", "[limiter][rate_limiter]") {
  SECTION("an idle limiter") {
    Harness h(tokens_per_minute(600, 60));
    h.limiter.on_429();
    h.spawn(0, 100);  // request after 1 s, tokens after 10 s
    h.advance_to(10s - 1ns);
    CHECK(h.grants.empty());
    h.advance_to(10s);
    CHECK(h.grants == grants_of({{0, 10s}}));
  }

  SECTION("a waiting head is pushed back") {
    Harness h(tokens_per_minute(600));
    h.spawn(0, 550);
    h.spawn(1, 100);  // 50 to go: 5 s
    h.advance_to(2s);
    h.limiter.on_429();  // 100 to go from 2 s: 12 s
    h.advance_to(5s);
    CHECK(h.grants.size() == 1);
    h.advance_to(12s - 1ns);
    CHECK(h.grants.size() == 1);
    h.advance_to(12s);
    CHECK(h.grants == grants_of({{0, 0s}, {1, 12s}}));
  }
}

TEST_CASE("RateLimiter disabled admits everything at once and tracks nothing", "[limiter][rate_limiter]") {
  auto options = tokens_per_minute(600, 1);
  options.enabled = false;
  Harness h(options);
  h.limiter.on_429();
  h.limiter.observe(net::RateLimitHeaders{{1.0, 0.0, std::nullopt}, {1.0, 0.0, std::nullopt}});
  for (int id = 0; id < 5; ++id) h.spawn(id, 1'000'000'000);
  CHECK(h.grants == grants_of({{0, 0s}, {1, 0s}, {2, 0s}, {3, 0s}, {4, 0s}}));
  CHECK_FALSE(h.reservations.at(0).active());
  h.reservations.at(0).reconcile(5);
  CHECK(h.limiter.waiting() == 0);
  CHECK(h.limiter.total_wait() == 0ns);
}

TEST_CASE("RateLimiter try_acquire grants what acquire would grant at once, and never overtakes a waiter",
          "[limiter][rate_limiter]") {
  Harness h(tokens_per_minute(600));  // 10 tokens per second
  auto first = h.limiter.try_acquire(500);
  REQUIRE(first.has_value());
  CHECK(first->active());
  CHECK_FALSE(h.limiter.try_acquire(200).has_value());  // 100 tokens left: acquire would wait
  h.spawn(1, 200);                                      // so it waits, 10 s
  CHECK(h.limiter.waiting() == 1);
  h.advance_to(10s);
  CHECK(h.grants == grants_of({{1, 10s}}));
  h.advance_to(20s);  // 100 tokens again, nobody waiting
  CHECK(h.limiter.try_acquire(100).has_value());
  h.spawn(2, 600);  // waits for a full bucket
  h.advance_to(21s);
  CHECK_FALSE(h.limiter.try_acquire(1).has_value());  // 10 tokens there, but caller 2 is first

  auto options = tokens_per_minute(600, 1);
  options.enabled = false;
  Harness off(options);
  for (int i = 0; i < 3; ++i) {
    auto granted = off.limiter.try_acquire(1'000'000'000);
    REQUIRE(granted.has_value());
    CHECK_FALSE(granted->active());
  }
}

TEST_CASE("RateLimiter cancellation takes a waiter out of the queue", "[limiter][rate_limiter]") {
  Harness h(tokens_per_minute(600));
  h.spawn(0, 600);
  h.spawn(1, 300);
  h.spawn(2, 200);
  h.spawn(3, 100);
  REQUIRE(h.limiter.waiting() == 3);

  h.advance_to(1s);
  h.signals.at(2)->emit(asio::cancellation_type::terminal);  // parked behind the head
  h.settle();
  CHECK(h.failures.at(2) == asio::error::operation_aborted);
  CHECK(h.limiter.waiting() == 2);

  h.advance_to(2s);
  h.signals.at(1)->emit(asio::cancellation_type::terminal);  // the head, asleep on the timer
  h.settle();
  CHECK(h.failures.at(1) == asio::error::operation_aborted);
  CHECK(h.limiter.waiting() == 1);

  h.advance_to(10s - 1ns);  // 3 re-evaluated at 2 s: 20 there, 80 to go
  CHECK(h.grants.size() == 1);
  h.advance_to(10s);
  CHECK(h.grants == grants_of({{0, 0s}, {3, 10s}}));
  CHECK(h.limiter.waiting() == 0);
  CHECK(h.limiter.total_wait() == 1s + 2s + 10s);
}

TEST_CASE("RateLimiter waiter racing a deadline with || leaves the queue when the deadline wins",
          "[limiter][rate_limiter]") {
  Harness h(tokens_per_minute(600));
  h.spawn(0, 600);
  h.spawn_impatient(1, 300, 5s);  // the head gives up at 5 s
  h.spawn(2, 20);
  h.advance_to(5s);
  CHECK(h.failures.at(1) == asio::error::timed_out);
  CHECK(h.grants == grants_of({{0, 0s}, {2, 5s}}));  // 50 refilled by 5 s
  CHECK(h.limiter.waiting() == 0);

  h.spawn_impatient(3, 10, 5s);  // 30 left: granted at once, the deadline loses
  CHECK(h.grants.back() == Grant{3, 5s});
  CHECK(h.failures.count(3) == 0);
}

namespace {

// The sustained-load check: clients that want more than the budget, each looping
// acquire → 200 ms "request" → reconcile with 3/4 of the estimate.
struct Load {
  Harness* h;
  nanoseconds until;
  double granted = 0.0;   // estimates admitted
  double returned = 0.0;  // given back by reconcile
  double used = 0.0;      // actual tokens of the requests admitted before `until`
  std::uint32_t seed = 12345;
  int running = 0;

  std::int64_t next_size() {
    seed = seed * 1664525u + 1013904223u;
    return 100 + static_cast<std::int64_t>((seed >> 8) % 2901);  // 100 … 3000
  }
};

asio::awaitable<void> load_client(Load* load) {
  ManualTimer latency(co_await asio::this_coro::executor);
  while (load->h->elapsed() < load->until) {
    const std::int64_t estimate = load->next_size();
    auto reservation = co_await load->h->limiter.acquire(estimate);
    const std::int64_t actual = estimate * 3 / 4;
    load->granted += static_cast<double>(estimate);
    if (load->h->elapsed() <= load->until) load->used += static_cast<double>(actual);
    latency.expires_after(200ms);
    co_await latency.async_wait(asio::use_awaitable);
    reservation.reconcile(actual);
    load->returned += static_cast<double>(estimate - actual);
  }
  --load->running;
}

struct ClientDone {
  void operator()(std::exception_ptr e) const {
    if (e) std::rethrow_exception(e);
  }
};

}  // namespace

TEST_CASE("RateLimiter under sustained load uses the whole budget and never more",
          "[limiter][rate_limiter]") {
  constexpr double k_capacity = 600'000.0;  // tokens per minute
  Harness h(tokens_per_minute(600'000));
  Load load{&h, 60s};
  for (int i = 0; i < 8; ++i) {
    ++load.running;
    asio::co_spawn(h.io, load_client(&load), ClientDone{});
  }
  h.settle();

  double worst_excess = -k_capacity;
  for (auto t = 0ms; t <= 60s; t += 1ms) {
    h.advance_to(t);
    const double budget = k_capacity + k_capacity * std::chrono::duration<double>(t).count() / 60.0;
    worst_excess = std::max(worst_excess, (load.granted - load.returned) - budget);
  }
  const double budget = 2 * k_capacity;  // a full bucket plus one minute of refill
  CHECK(worst_excess <= 1e-6);
  CHECK(load.used <= budget);
  CHECK(load.used >= 0.98 * budget);
  CHECK(h.limiter.total_wait() > 0ns);

  for (std::chrono::milliseconds t = 60s; load.running > 0 && t < 200s; t += 100ms) h.advance_to(t);
  CHECK(load.running == 0);
}

TEST_CASE("parse_remaining reads x-ratelimit-remaining-* values", "[limiter][rate_limiter]") {
  CHECK(net::parse_remaining("59") == 59.0);
  CHECK(net::parse_remaining(" 149984 ") == 149984.0);
  CHECK(net::parse_remaining("\t0") == 0.0);
  CHECK(net::parse_remaining("12.5") == 12.5);
  CHECK_FALSE(net::parse_remaining(""));
  CHECK_FALSE(net::parse_remaining("   "));
  CHECK_FALSE(net::parse_remaining("-1"));
  CHECK_FALSE(net::parse_remaining("12ms"));
  CHECK_FALSE(net::parse_remaining("nan"));
  CHECK_FALSE(net::parse_remaining("inf"));
  CHECK_FALSE(net::parse_remaining("1 2"));
}

TEST_CASE("estimate_tokens is bytes / 4 rounded up", "[limiter][rate_limiter]") {
  CHECK(net::estimate_tokens("") == 0);
  CHECK(net::estimate_tokens("a") == 1);
  CHECK(net::estimate_tokens("abcd") == 1);
  CHECK(net::estimate_tokens("abcde") == 2);
  CHECK(net::estimate_tokens(std::string(4000, 'x')) == 1000);
}

TEST_CASE("RateLimiterOptions from the rate_limiting config", "[limiter][rate_limiter]") {
  dagent::config::RateLimitingConfig cfg;
  cfg.enabled = false;
  cfg.rpm_limit = 7;
  cfg.tpm_limit = 9;
  cfg.safety_margin = 0.5;
  cfg.window = dagent::config::RateWindow::rolling;
  const auto o = net::RateLimiterOptions::from(cfg);
  CHECK(o.window == dagent::config::RateWindow::rolling);
  CHECK(net::RateLimiterOptions{}.window == dagent::config::RateWindow::bucket);
  CHECK_FALSE(o.enabled);
  CHECK(o.rpm_limit == 7);
  CHECK(o.tpm_limit == 9);
  CHECK(o.safety_margin == 0.5);
}

namespace {

net::RateLimiterOptions windowed(std::int64_t tpm, std::int64_t rpm = 1'000'000) {
  auto o = tokens_per_minute(tpm, rpm);
  o.window = dagent::config::RateWindow::rolling;
  return o;
}

}  // namespace

TEST_CASE("RateLimiter keeps every 60 s window within the limits as servers count them", "[limiter][rate_limiter]") {
  SECTION("a refilled bucket does not let a minute hold more than the limit") {
    Harness h(windowed(600));
    h.spawn(0, 600);
    h.spawn(1, 300);  // the bucket alone would grant at 30 s
    h.advance_to(60s - 1ns);
    CHECK(h.grants == grants_of({{0, 0s}}));
    h.advance_to(60s);
    CHECK(h.grants == grants_of({{0, 0s}, {1, 60s}}));
  }
  SECTION("requests per minute too") {
    Harness h(windowed(1'000'000, 2));
    h.spawn(0, 1);
    h.spawn(1, 1);
    h.spawn(2, 1);
    h.advance_to(30s);  // the bucket alone would grant here
    CHECK(h.grants == grants_of({{0, 0s}, {1, 0s}}));
    h.advance_to(60s);
    CHECK(h.grants == grants_of({{0, 0s}, {1, 0s}, {2, 60s}}));
  }
  SECTION("reconcile re-stamps the entry with the real usage at response time") {
    Harness h(windowed(600));
    h.spawn(0, 600);
    h.spawn(1, 300);
    h.advance_to(10s);
    h.reservations.at(0).reconcile(100);  // the window now holds 100, stamped at 10 s
    h.settle();
    CHECK(h.grants == grants_of({{0, 0s}, {1, 10s}}));
    h.spawn(2, 300);  // 100 + 300 + 300 > 600: waits for entry 0 to leave at 70 s
    h.advance_to(70s - 1ns);
    CHECK(h.grants.size() == 2);
    h.advance_to(70s);
    CHECK(h.grants.back() == Grant{2, 70s});
  }
  SECTION("a 429's retry-after holds every caller") {
    Harness h(windowed(600));
    h.limiter.on_429(std::chrono::milliseconds(5000));
    h.spawn(0, 1);
    h.advance_to(5s - 1ns);
    CHECK(h.grants.empty());
    h.advance_to(60s);  // the drained bucket has refilled by now too
    REQUIRE(h.grants.size() == 1);
    CHECK(h.grants[0].at >= 5s);
  }
}

namespace {

net::RateLimitHeaders requests_header(std::optional<double> limit, std::optional<double> remaining,
                                      std::optional<nanoseconds> reset = std::nullopt) {
  net::RateLimitHeaders h;
  h.requests = {limit, remaining, reset};
  return h;
}

}  // namespace

TEST_CASE("issue 15: against a bucket server 330 calls at 300 RPM take 6 s, not 60 s", "[limiter][rate_limiter]") {
  Harness h(tokens_per_minute(1'000'000'000, 300));  // bucket: 300 at once, then one per 200 ms
  for (int id = 0; id < 330; ++id) h.spawn(id, 0);
  CHECK(h.grants.size() == 300);
  h.advance_to(200ms - 1ns);
  CHECK(h.grants.size() == 300);
  h.advance_to(200ms);
  CHECK(h.grants.size() == 301);
  for (int k = 2; k <= 30; ++k) h.advance_to(k * 200ms);
  REQUIRE(h.grants.size() == 330);
  CHECK(h.grants.back() == Grant{329, 6s});
  for (std::size_t i = 1; i < h.grants.size(); ++i) CHECK(h.grants[i].id > h.grants[i - 1].id);  // FIFO
}

TEST_CASE("RateLimiter bucket follows the server's headers in both directions", "[limiter][rate_limiter]") {
  SECTION("the server says it has room: dagent uses it") {
    Harness h(tokens_per_minute(1'000'000, 60));  // one request per second
    for (int id = 0; id < 59; ++id) {
      h.spawn(id, 0);
      h.reservations.at(id).observe({});  // answered, no headers
    }
    h.spawn(59, 0);
    h.spawn(60, 0);
    CHECK(h.grants.size() == 60);
    h.reservations.at(59).observe(requests_header(60.0, 30.0));
    h.settle();
    for (int id = 61; id < 90; ++id) h.spawn(id, 0);
    CHECK(h.grants.size() == 90);  // 30 at once
    h.spawn(90, 0);
    CHECK(h.grants.size() == 90);
    h.advance_to(1s);
    CHECK(h.grants.back() == Grant{90, 1s});
  }
  SECTION("the server says it has less (another client on the key): dagent waits") {
    Harness h(tokens_per_minute(1'000'000, 60));
    h.limiter.observe(requests_header(60.0, 0.0));
    h.spawn(0, 0);
    h.advance_to(1s - 1ns);
    CHECK(h.grants.empty());
    h.advance_to(1s);
    CHECK(h.grants == grants_of({{0, 1s}}));
  }
  SECTION("the server's limit replaces the configured one and its safety margin") {
    auto options = tokens_per_minute(1'000'000, 60);
    options.safety_margin = 0.5;
    Harness h(options);
    h.limiter.observe(requests_header(600.0, 600.0));
    for (int id = 0; id < 601; ++id) h.spawn(id, 0);
    CHECK(h.grants.size() == 600);
    h.advance_to(100ms);  // refills at 600 a minute
    CHECK(h.grants.size() == 601);
  }
  SECTION("an early call's headers count the calls granted after it as not yet counted") {
    Harness h(tokens_per_minute(1'000'000, 60));
    for (int id = 0; id < 10; ++id) h.spawn(id, 0);
    h.reservations.at(0).observe(requests_header(60.0, 59.0));  // 59 - 9 granted since
    for (int id = 10; id < 61; ++id) h.spawn(id, 0);
    CHECK(h.grants.size() == 60);
  }
  SECTION("tokens too, with the calls in flight at the grant subtracted") {
    Harness h(tokens_per_minute(600));
    h.spawn(0, 100);
    h.spawn(1, 100);
    net::RateLimitHeaders headers;
    headers.tokens = {600.0, 500.0, std::nullopt};  // call 0 was in flight: 500 - 100
    h.reservations.at(1).observe(headers);
    h.spawn(2, 400);
    h.spawn(3, 1);
    CHECK(h.grants == grants_of({{0, 0s}, {1, 0s}, {2, 0s}}));
    h.advance_to(100ms);
    CHECK(h.grants.back() == Grant{3, 100ms});
  }
}

TEST_CASE("RateLimiter rolling window follows the server's headers in both directions", "[limiter][rate_limiter]") {
  SECTION("entries the server no longer counts leave the ledger early") {
    Harness h(windowed(1'000'000, 2));
    h.spawn(0, 1);
    h.spawn(1, 1);
    h.advance_to(10s);
    h.reservations.at(0).reconcile(1);  // re-stamped: would leave at 70 s
    h.reservations.at(1).reconcile(1);
    h.spawn(2, 1);
    h.advance_to(60s);
    CHECK(h.grants.size() == 2);
    h.limiter.observe(requests_header(2.0, 2.0));  // the server counted them at 0 s: both gone
    h.settle();
    CHECK(h.grants == grants_of({{0, 0s}, {1, 0s}, {2, 60s}}));
  }
  SECTION("calls the server counts that dagent never sent leave by the server's reset") {
    Harness h(windowed(1'000'000, 10));
    h.limiter.observe(requests_header(10.0, 0.0, nanoseconds(30s)));
    h.spawn(0, 1);
    h.advance_to(30s - 1ns);
    CHECK(h.grants.empty());
    h.advance_to(30s);
    CHECK(h.grants == grants_of({{0, 30s}}));
  }
  SECTION("without a reset they count as made now") {
    Harness h(windowed(1'000'000, 10));
    h.limiter.observe(requests_header(10.0, 1.0));
    h.spawn(0, 1);
    h.spawn(1, 1);
    h.advance_to(60s - 1ns);
    CHECK(h.grants == grants_of({{0, 0s}}));
    h.advance_to(60s);
    CHECK(h.grants == grants_of({{0, 0s}, {1, 60s}}));
  }
}

TEST_CASE("RateLimiter bucket: a 429 holds every caller for its retry-after, and the bucket refills after it",
          "[limiter][rate_limiter]") {
  Harness h(tokens_per_minute(1'000'000'000, 6000));  // 100 a second
  h.limiter.on_429(std::chrono::milliseconds(2000));
  for (int id = 0; id < 3; ++id) h.spawn(id, 0);
  h.advance_to(2s);
  CHECK(h.grants.empty());
  h.advance_to(2s + 10ms - 1ns);
  CHECK(h.grants.empty());
  h.advance_to(2s + 10ms);
  CHECK(h.grants == grants_of({{0, 2s + 10ms}}));
  h.advance_to(2s + 20ms);
  h.advance_to(2s + 30ms);
  CHECK(h.grants == grants_of({{0, 2s + 10ms}, {1, 2s + 20ms}, {2, 2s + 30ms}}));
}
