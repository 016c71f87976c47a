#include "redis/redis_budget.hpp"

#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include "net/openai_client.hpp"
#include "net/rate_limiter.hpp"
#include "net/url.hpp"
#include "support/redis_process.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"

namespace asio = boost::asio;
using dagent::net::RateLimiter;
using dagent::net::RateLimiterOptions;
using dagent::net::SharedAnswer;
using dagent::net::SharedAsk;
using dagent::redis::RedisBudget;
using dagent::redis::RedisClient;
using dagent::redis::RedisOptions;
using dagent::test::RedisServer;
using dagent::test::run_on;
using AskResult = boost::system::result<SharedAnswer, std::string>;

namespace {

RedisClient client_for(asio::io_context& io, const RedisServer& server) {
  dagent::config::RedisConfig cfg;
  cfg.url = server.url();
  cfg.timeout_ms = 300;
  auto options = RedisOptions::from(cfg, ".");
  REQUIRE(options.has_value());
  return RedisClient(io.get_executor(), std::move(*options));
}

SharedAsk ask_for(double requests, std::chrono::nanoseconds period, bool take = true) {
  SharedAsk ask;
  ask.take = take;
  ask.tokens = 10;
  ask.request_capacity = requests;
  ask.token_capacity = 1e9;
  ask.period = period;
  return ask;
}

asio::awaitable<AskResult> ask_once(std::shared_ptr<RedisBudget> budget, SharedAsk ask) {
  co_return co_await budget->ask(std::move(ask));
}

asio::awaitable<bool> flush_scripts(RedisClient client) {
  const dagent::redis::Command flush{"SCRIPT", "FLUSH"};  // g++ 12: no braced initializer inside a co_await
  auto r = co_await client.command(flush);
  co_return r.has_value() && !r->is_error();
}

// An admin command whose reply does not matter (DEBUG SLEEP outlasts its deadline on purpose).
asio::awaitable<bool> send_admin(RedisClient client, dagent::redis::Command command) {
  auto reply = co_await client.command(std::move(command));
  co_return reply.has_value();
}

asio::awaitable<RateLimiter::Reservation> acquire_one(RateLimiter* limiter, std::int64_t tokens) {
  co_return co_await limiter->acquire(tokens);
}

// A caller of one of the limiters: counts its grant; the last grant the budget allows cancels
// everyone still waiting.
struct Grabs {
  int granted = 0;
  int shared = 0;
  int cancelled = 0;
  int budget = 0;
  std::vector<std::unique_ptr<asio::cancellation_signal>> signals;
};

asio::awaitable<void> grab(RateLimiter* limiter, Grabs* grabs) {
  auto reservation = co_await limiter->acquire(10);
  ++grabs->granted;
  if (reservation.shared()) ++grabs->shared;
  reservation.reconcile(10);
  if (grabs->granted == grabs->budget)
    for (auto& s : grabs->signals) s->emit(asio::cancellation_type::terminal);
}

// One chat call of a fleet; the last one to finish stops the loop (the clients' idle connections
// would keep it running).
struct Fleet {
  int ok = 0;
  int failed = 0;
  int calls = 0;
  std::string first_error;
  asio::io_context* io = nullptr;
};

asio::awaitable<void> fleet_call(dagent::net::OpenAiClient* client, Fleet* fleet) {
  dagent::net::ChatRequest request;
  request.model = "gpt-test";
  request.messages.push_back({"user", "hello"});
  request.max_tokens = 5;
  auto result = co_await client->chat(std::move(request));
  if (result) {
    ++fleet->ok;
  } else {
    ++fleet->failed;
    if (fleet->first_error.empty()) fleet->first_error = result.error().message;
  }
  if (fleet->ok + fleet->failed == fleet->calls) fleet->io->stop();
}

struct FleetDone {
  void operator()(std::exception_ptr e) const {
    if (e) std::rethrow_exception(e);
  }
};

struct GrabDone {
  Grabs* grabs;
  void operator()(std::exception_ptr e) const {
    if (e) ++grabs->cancelled;
  }
};

}  // namespace

TEST_CASE("RedisBudget grants a full bucket, then says how long until the next request refills") {
  RedisServer server;
  asio::io_context io;
  // A lag of 10 minutes, not the default 5 ms, so no outcome depends on how long a round trip
  // takes: a request needs 1 + 10/12 of a request in the bucket.
  auto budget = std::make_shared<RedisBudget>(client_for(io, server), "t1", "a", std::chrono::minutes(10));
  const auto period = std::chrono::nanoseconds(std::chrono::hours(1));  // a request refills every 12 minutes
  for (int i = 0; i < 4; ++i) CHECK(run_on(io, ask_once(budget, ask_for(5, period)))->granted);
  // The last request waits for the lag on top of the one request left: 10/12 of a refill.
  auto last = run_on(io, ask_once(budget, ask_for(5, period)));
  REQUIRE(last.has_value());
  CHECK_FALSE(last->granted);
  CHECK(last->wait > std::chrono::minutes(9));
  CHECK(last->wait <= std::chrono::minutes(10));
  SECTION("two requests more in debt: 2 + 10/12 refills, about 34 minutes") {
    SharedAsk take = ask_for(5, period, false);
    take.request_returns = -2;
    REQUIRE(run_on(io, ask_once(budget, take)).has_value());
    auto denied = run_on(io, ask_once(budget, ask_for(5, period)));
    REQUIRE(denied.has_value());
    CHECK_FALSE(denied->granted);
    CHECK(denied->wait > std::chrono::minutes(33));
    CHECK(denied->wait <= std::chrono::minutes(34) + std::chrono::seconds(1));
  }
  SECTION("requests given back are granted again") {
    SharedAsk give = ask_for(5, period, false);
    give.request_returns = 1;
    REQUIRE(run_on(io, ask_once(budget, give)).has_value());
    CHECK(run_on(io, ask_once(budget, ask_for(5, period)))->granted);
  }
  SECTION("after SCRIPT FLUSH the script is sent again (NOSCRIPT) and works on the same budget") {
    auto client = client_for(io, server);
    REQUIRE(run_on(io, flush_scripts(client)));
    auto again = run_on(io, ask_once(budget, ask_for(5, period)));
    REQUIRE(again.has_value());
    CHECK_FALSE(again->granted);
    CHECK(again->wait > std::chrono::minutes(9));
  }
}

TEST_CASE("RedisBudget serves processes in the order they were first refused") {
  RedisServer server;
  asio::io_context io;
  auto a = std::make_shared<RedisBudget>(client_for(io, server), "fifo", "process-a");
  auto b = std::make_shared<RedisBudget>(client_for(io, server), "fifo", "process-b");
  const auto period = std::chrono::nanoseconds(std::chrono::hours(1));
  REQUIRE(run_on(io, ask_once(a, ask_for(1, period)))->granted);
  CHECK_FALSE(run_on(io, ask_once(b, ask_for(1, period)))->granted);  // b waits first
  CHECK_FALSE(run_on(io, ask_once(a, ask_for(1, period)))->granted);
  SharedAsk give = ask_for(1, period, false);
  give.request_returns = 1;
  REQUIRE(run_on(io, ask_once(a, give)).has_value());
  // The budget holds a request again, but b was refused first: a does not overtake it.
  auto overtake = run_on(io, ask_once(a, ask_for(1, period)));
  REQUIRE(overtake.has_value());
  CHECK_FALSE(overtake->granted);
  CHECK(run_on(io, ask_once(b, ask_for(1, period)))->granted);
}

TEST_CASE("4 limiters sharing a budget in Redis grant it once, not 4 times") {
  RedisServer server;
  asio::io_context io;
  std::vector<std::unique_ptr<RateLimiter>> limiters;
  for (int i = 0; i < 4; ++i) {
    RateLimiterOptions o;
    o.rpm_limit = 20;
    o.safety_margin = 1.0;
    o.period = std::chrono::hours(1);  // no refill to speak of while the test runs
    o.expected_processes = 4;
    o.shared = std::make_shared<RedisBudget>(client_for(io, server), "four", "process-" + std::to_string(i));
    limiters.push_back(std::make_unique<RateLimiter>(io.get_executor(), o));
  }
  Grabs grabs;
  grabs.budget = 20;
  for (int i = 0; i < 40; ++i) grabs.signals.push_back(std::make_unique<asio::cancellation_signal>());
  for (int i = 0; i < 40; ++i)
    asio::co_spawn(io, grab(limiters[i % 4].get(), &grabs),
                   asio::bind_cancellation_slot(grabs.signals[i]->slot(), GrabDone{&grabs}));
  io.run();
  CHECK(grabs.granted == 20);
  CHECK(grabs.shared == 20);
  CHECK(grabs.cancelled == 20);
  for (const auto& l : limiters) {
    CHECK(l->shared_stats().fallbacks == 0);
    CHECK(l->waiting() == 0);
  }
}

TEST_CASE("A 429 seen by one process holds every process sharing the budget") {
  RedisServer server;
  asio::io_context io;
  RateLimiterOptions o;
  o.rpm_limit = 100;
  o.period = std::chrono::hours(1);
  o.shared = std::make_shared<RedisBudget>(client_for(io, server), "hold", "process-a");
  RateLimiter a(io.get_executor(), o);
  a.on_429(std::chrono::milliseconds(30000));
  io.run();  // the hold's push to Redis
  auto other = std::make_shared<RedisBudget>(client_for(io, server), "hold", "process-b");
  auto answer = run_on(io, ask_once(other, ask_for(100, std::chrono::hours(1))));
  REQUIRE(answer.has_value());
  CHECK_FALSE(answer->granted);
  CHECK(answer->wait > std::chrono::seconds(25));
}

TEST_CASE("Shared limiter falls back to its share when Redis is down, warns once, and recovers") {
  RedisServer server;
  asio::io_context io;
  std::vector<std::string> warnings;
  RateLimiterOptions o;
  o.rpm_limit = 400;  // a share of 100 per 400 ms: a grant every 4 ms while falling back
  o.safety_margin = 1.0;
  o.period = std::chrono::milliseconds(400);
  o.expected_processes = 4;
  o.shared = std::make_shared<RedisBudget>(client_for(io, server), "down", "process-a");
  o.warn = [&warnings](const std::string& w) { warnings.push_back(w); };
  RateLimiter limiter(io.get_executor(), o);
  CHECK(run_on(io, acquire_one(&limiter, 1)).shared());

  SECTION("killed") { server.kill(); }
  SECTION("paused (SIGSTOP): the ask times out") { server.pause(); }
  SECTION("paused by CLIENT PAUSE: the ask times out") {
    REQUIRE(run_on(io, send_admin(client_for(io, server), {"CLIENT", "PAUSE", "1500", "ALL"})));
  }
  SECTION("slowed by DEBUG SLEEP: the ask times out") {
    // The admin command itself gives up at its 300 ms deadline; the server sleeps on.
    CHECK_FALSE(run_on(io, send_admin(client_for(io, server), {"DEBUG", "SLEEP", "1.5"})));
  }

  for (int i = 0; i < 5; ++i) {
    auto r = run_on(io, acquire_one(&limiter, 1));  // returns: no request hangs on Redis
    CHECK_FALSE(r.shared());
  }
  CHECK(limiter.falling_back());
  CHECK(limiter.shared_stats().fallbacks == 1);
  CHECK(limiter.shared_stats().fallback_grants == 5);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("keeps to 1/4 of the limits") != std::string::npos);

  server.resume();
  if (!server.running()) server.start();
  bool back = false;
  for (int i = 0; i < 2000 && !back; ++i) back = run_on(io, acquire_one(&limiter, 1)).shared();
  CHECK(back);
  CHECK_FALSE(limiter.falling_back());
  CHECK(limiter.shared_stats().recoveries == 1);
  CHECK(warnings.size() == 2);
}

TEST_CASE("4 clients sharing 20 RPM through Redis meet no 429 from a server enforcing 20 RPM") {
  RedisServer redis;
  dagent::test::TestServer server({.rpm = 20, .bucket = true, .period_ms = 2000});
  asio::io_context io;
  std::vector<std::unique_ptr<dagent::net::OpenAiClient>> clients;
  for (int i = 0; i < 4; ++i) {
    dagent::net::OpenAiOptions o;
    o.base_url = *dagent::net::parse_base_url(server.base_url());
    o.api_key = "sk-test-key";
    o.rpm_limit = 20;
    // The default margin (0.9): at exactly 1.0 the fleet's bucket and the server's refill on
    // clocks that differ by the requests' latency. The first burst's calls open connections and
    // the 21st reuses one, so it can reach the server sooner after the first call than Redis
    // granted it (100 ms): a 429 "try again in 0.0s" that no shared budget can prevent. The
    // margin leaves 2 requests and 11 ms a grant for that latency; without sharing the four
    // clients would still send 4 x 18 at once.
    o.safety_margin = 0.9;
    o.rate_period = std::chrono::milliseconds(2000);
    o.max_retries = 0;  // a 429 fails the call
    o.shared_budget = std::make_shared<RedisBudget>(client_for(io, redis), "fleet", "process-" + std::to_string(i));
    o.expected_processes = 4;
    clients.push_back(std::make_unique<dagent::net::OpenAiClient>(io.get_executor(), nullptr, std::move(o)));
  }
  Fleet fleet;
  fleet.calls = 48;  // 18 at once, then the refill: 9 a second
  fleet.io = &io;
  for (int i = 0; i < fleet.calls; ++i) asio::co_spawn(io, fleet_call(clients[i % 4].get(), &fleet), FleetDone{});
  io.run();
  INFO(fleet.first_error);
  CHECK(fleet.ok == 48);
  CHECK(fleet.failed == 0);
  CHECK(server.stats().at("rate_limited").to_number<std::int64_t>() == 0);
}
