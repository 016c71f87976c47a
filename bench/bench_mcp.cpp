// bench_mcp: the overhead of dagent's MCP client per tools/call, against server-everything's
// `echo` tool over stdio: microseconds per call one after another, and calls per second with 16
// calls in flight. Drives mcp::Server directly (no plan, no scheduler), the layer McpTool calls.
// Prints one line for bench/run_mcp.sh to compare with the TypeScript SDK client:
//   mcp-bench client=dagent transport=stdio calls=N serial_us_per_call=X inflight16_calls_per_s=Y
// Usage: bench_mcp [CALLS (2000)] [SERVER (tests/mcp/node_modules/.bin/mcp-server-everything)]

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "config/config.hpp"
#include "mcp/server.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;
constexpr int k_in_flight = 16;

// This process's CPU time (user + system) in µs: the client's share, the server's excluded.
double cpu_us() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e6 + u.ru_utime.tv_usec + u.ru_stime.tv_usec;
}

struct Bench {
  dagent::mcp::Server* server;
  int calls;
  double serial_us = 0;
  double inflight_per_s = 0;
  double serial_cpu_us = 0;    // the client's CPU per call, serially
  double inflight_cpu_us = 0;  // and with 16 in flight
  int running = 0;
  asio::steady_timer* all_done = nullptr;
};

asio::awaitable<void> call_once(Bench* b, int i) {
  json::object args;
  args["message"] = "bench " + std::to_string(i);
  std::string tool = "echo";
  auto r = co_await b->server->call(std::move(tool), std::move(args), {});
  if (!r) {
    std::fprintf(stderr, "bench_mcp: call failed: %s\n", r.error().message.c_str());
    std::exit(1);
  }
}

asio::awaitable<void> worker(Bench* b, int first, int count) {
  for (int i = 0; i < count; ++i) co_await call_once(b, first + i);
}

struct WorkerDone {
  Bench* b;
  void operator()(std::exception_ptr e) const {
    if (e) std::rethrow_exception(e);
    if (--b->running == 0) b->all_done->cancel();
  }
};

asio::awaitable<void> bench(Bench* b) {
  if (auto started = co_await b->server->start(); !started) {
    std::fprintf(stderr, "bench_mcp: %s\n", started.error().c_str());
    std::exit(1);
  }
  for (int i = 0; i < 200; ++i) co_await call_once(b, i);  // warm-up: the server's JIT, our allocations

  auto t0 = Clock::now();
  auto c0 = cpu_us();
  for (int i = 0; i < b->calls; ++i) co_await call_once(b, i);
  b->serial_us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / b->calls;
  b->serial_cpu_us = (cpu_us() - c0) / b->calls;

  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer done(ex, asio::steady_timer::time_point::max());
  b->all_done = &done;
  b->running = k_in_flight;
  t0 = Clock::now();
  c0 = cpu_us();
  const int each = b->calls / k_in_flight;
  for (int w = 0; w < k_in_flight; ++w) asio::co_spawn(ex, worker(b, w * each, each), WorkerDone{b});
  co_await done.async_wait(asio::as_tuple(asio::use_awaitable));
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  b->inflight_per_s = each * k_in_flight / s;
  b->inflight_cpu_us = (cpu_us() - c0) / (each * k_in_flight);
  co_await b->server->stop();
}

}  // namespace

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 2000;
  const std::string server_bin = argc > 2 ? argv[2] : "tests/mcp/node_modules/.bin/mcp-server-everything";
  if (calls < k_in_flight) {
    std::fprintf(stderr, "usage: bench_mcp [CALLS >= %d] [SERVER]\n", k_in_flight);
    return 2;
  }
  asio::io_context io(1);
  dagent::config::McpServerConfig cfg;
  cfg.command = {std::filesystem::absolute(server_bin).string(), "stdio"};
  const auto logs = std::filesystem::temp_directory_path() / "dagent-bench-mcp";
  dagent::mcp::Server server(io.get_executor(), "everything", cfg, std::filesystem::current_path(), logs);
  Bench b{&server, calls - calls % k_in_flight};
  asio::co_spawn(io, bench(&b), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
  std::printf("mcp-bench client=dagent transport=stdio calls=%d serial_us_per_call=%.1f inflight16_calls_per_s=%.0f\n",
              b.calls, b.serial_us, b.inflight_per_s);
  std::printf("dagent client CPU per call: %.1f us serially, %.1f us with %d in flight (the server's excluded)\n",
              b.serial_cpu_us, b.inflight_cpu_us, k_in_flight);
  return 0;
}
