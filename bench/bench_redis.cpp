// Redis round trips as dagent makes them (issue 16): PING, a 100-command pipeline, one ask of the
// shared rate budget (the Lua script), and a whole RateLimiter::acquire() in shared mode, each
// N times in sequence on one loop; prints p50/p99 in microseconds.
//
// Usage: bench_redis --redis redis://127.0.0.1:PORT [--n 2000]
// Prints one JSON line (prefixed "json ") and human lines.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "net/rate_limiter.hpp"
#include "redis/redis_budget.hpp"
#include "redis/redis_client.hpp"
#include "redis_bench_common.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent;
using Clock = std::chrono::steady_clock;

using bench::Samples;

asio::awaitable<void> measure(redis::RedisClient client, std::shared_ptr<redis::RedisBudget> budget,
                              net::RateLimiter* limiter, int n, Samples* ping, Samples* pipe, Samples* ask,
                              Samples* acquire) {
  std::vector<redis::Command> incrs(100, redis::Command{"INCR", "bench:n"});
  const redis::Command ping_command{"PING"};  // g++ 12: no braced initializer inside a co_await
  for (int i = 0; i < n; ++i) {
    auto t = Clock::now();
    auto r = co_await client.command(ping_command);
    r ? ping->us.push_back(bench::since_us(t)) : void(++ping->failures);
    t = Clock::now();
    auto p = co_await client.pipeline(incrs);
    p ? pipe->us.push_back(bench::since_us(t)) : void(++pipe->failures);
    net::SharedAsk a;
    a.tokens = 10;
    a.request_capacity = 1e12;
    a.token_capacity = 1e15;
    a.period = std::chrono::minutes(1);
    t = Clock::now();
    auto g = co_await budget->ask(a);
    g && g->granted ? ask->us.push_back(bench::since_us(t)) : void(++ask->failures);
    t = Clock::now();
    auto reservation = co_await limiter->acquire(10);
    reservation.shared() ? acquire->us.push_back(bench::since_us(t)) : void(++acquire->failures);
    reservation.reconcile(10);
  }
}

struct Done {
  void operator()(std::exception_ptr e) const {
    if (e) std::rethrow_exception(e);
  }
};

}  // namespace

int main(int argc, char** argv) {
  try {
    const bench::Args args(argc, argv);
    const int n = static_cast<int>(args.integer("n", 2000));
    const auto options = bench::redis_options(args, "bench_redis --redis redis://127.0.0.1:PORT [--n N]");
    if (!options) return 2;
    asio::io_context io(1);
    redis::RedisClient client(io.get_executor(), *options);
    auto budget = std::make_shared<redis::RedisBudget>(redis::RedisClient(io.get_executor(), *options), "bench-ask", "bench");
    net::RateLimiterOptions lo;
    lo.rpm_limit = 1000000000;
    lo.tpm_limit = 1000000000000;
    lo.shared = std::make_shared<redis::RedisBudget>(redis::RedisClient(io.get_executor(), *options), "bench-acquire",
                                                     "bench");
    net::RateLimiter limiter(io.get_executor(), lo);
    Samples ping, pipe, ask, acquire;
    asio::co_spawn(io, measure(client, budget, &limiter, n, &ping, &pipe, &ask, &acquire), Done{});
    io.run();
    json::object out;
    auto row = [&](const char* name, Samples& s) {
      out[name] = json::object{{"p50_us", s.pct(0.5)}, {"p99_us", s.pct(0.99)}, {"failures", s.failures}};
      std::printf("%-28s p50 %8.1f us   p99 %8.1f us   (%d failures)\n", name, s.pct(0.5), s.pct(0.99), s.failures);
    };
    row("ping", ping);
    row("pipeline_100_incr", pipe);
    row("budget_ask", ask);
    row("limiter_acquire_shared", acquire);
    out["n"] = n;
    std::printf("json %s\n", json::serialize(out).c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_redis: %s\n", e.what());
    return 1;
  }
}
