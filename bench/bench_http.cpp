// HTTP load benchmark: a closed-loop load generator built on net::OpenAiClient against the
// scripted test server (plain HTTP, keep-alive, no latency).
//
// C named coroutines on one single-threaded io_context each issue chat calls one after another
// until N calls have been issued (or --max-seconds have passed). Reported: requests/s, the
// client's CPU per request (getrusage user + sys of this process over the load / requests), the
// server's CPU per request (utime + stime of --server-pid from /proc), latency percentiles, and
// the connections opened, from the client's metric and from the server's /_stats.
//
// Usage: bench_http --port P [--requests N] [--concurrency C] [--pooling on|off]
//                   [--rate-limiting on|off] [--max-seconds S] [--server-pid PID]
//                   [--max-tokens M] [--prompt TEXT] [--print-body]
// --print-body prints the exact request body the client sends and exits (the other load
// generators send the same bytes). Prints one JSON line (prefixed "json ") and a human line.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "net/llm_provider.hpp"
#include "net/openai_client.hpp"
#include "net_bench_common.hpp"

namespace {

using namespace dagent;
using namespace dagent::bench;

struct Load {
  net::ChatRequest request;
  std::int64_t target = 0;      // calls to issue in total
  Clock::time_point deadline;   // no call is issued after this
  std::int64_t issued = 0;
  std::int64_t ok = 0;
  std::int64_t failed = 0;
  std::string first_error;
  std::vector<std::uint32_t> latency_us;  // one per finished call
  int running = 0;              // workers still looping
};

// One closed-loop caller: the next call starts as soon as the previous one has finished.
asio::awaitable<void> worker(Load* load, net::OpenAiClient* client) {
  while (load->issued < load->target && Clock::now() < load->deadline) {
    ++load->issued;
    net::ChatRequest request = load->request;
    const auto start = Clock::now();
    auto call = client->chat(std::move(request));
    auto result = co_await std::move(call);
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
    load->latency_us.push_back(static_cast<std::uint32_t>(took));
    if (result) {
      ++load->ok;
    } else {
      ++load->failed;
      if (load->first_error.empty()) load->first_error = result.error().message;
    }
  }
  --load->running;
}

int run(const Args& args) {
  const std::int64_t port = args.integer("port", 0);
  const std::int64_t requests = args.integer("requests", 20000);
  const int concurrency = static_cast<int>(args.integer("concurrency", 8));
  const bool pooling = args.flag("pooling", true);
  const bool rate_limiting = args.flag("rate-limiting", false);
  const double max_seconds = args.number("max-seconds", 60);
  const long server_pid = static_cast<long>(args.integer("server-pid", 0));

  Load load;
  load.request.model = "gpt-4o-mini";
  load.request.messages.push_back({"user", args.str("prompt", "Say hello")});
  load.request.max_tokens = args.integer("max-tokens", 16);
  if (args.has("print-body")) {
    std::printf("%s\n", net::chat_body(load.request, false).c_str());
    return 0;
  }
  if (port <= 0 || requests <= 0 || concurrency <= 0) {
    std::fprintf(stderr, "usage: bench_http --port P [--requests N] [--concurrency C] [--pooling on|off] ...\n");
    return 2;
  }

  asio::io_context io(1);
  ServerControl control(io, loopback(port));
  control.reset();

  net::OpenAiOptions options;
  options.base_url = net::BaseUrl{loopback(port), "/v1"};
  options.api_key = "sk-bench";
  options.http.pooling = pooling;
  options.rate_limiting = rate_limiting;  // off by default: the throughput runs measure the client
  net::OpenAiClient client(io.get_executor(), nullptr, options);

  load.target = requests;
  load.latency_us.reserve(static_cast<std::size_t>(requests));
  const auto server_cpu0 = process_cpu_seconds(server_pid);
  const double cpu0 = self_cpu_seconds();
  const auto t0 = Clock::now();
  load.deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(max_seconds));
  load.running = concurrency;
  for (int i = 0; i < concurrency; ++i) asio::co_spawn(io, worker(&load, &client), asio::detached);
  io.run();
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = self_cpu_seconds() - cpu0;
  const auto server_cpu1 = process_cpu_seconds(server_pid);
  io.restart();

  const auto stats = control.stats();
  const auto metrics = client.metrics();
  const auto done = load.ok + load.failed;
  std::sort(load.latency_us.begin(), load.latency_us.end());
  const double server_cpu = server_cpu0 && server_cpu1 ? *server_cpu1 - *server_cpu0 : -1;
  const auto server_connections = static_cast<std::int64_t>(json_number(stats, {"connections_accepted"}));

  json::object out{
      {"pooling", pooling},
      {"rate_limiting", rate_limiting},
      {"concurrency", concurrency},
      {"requests", done},
      {"ok", load.ok},
      {"failed", load.failed},
      {"seconds", seconds},
      {"rps", static_cast<double>(done) / seconds},
      {"client_cpu_s", cpu},
      {"client_cpu_us_per_req", done ? cpu * 1e6 / static_cast<double>(done) : 0.0},
      {"client_cpu_util", cpu / seconds},
      {"server_cpu_s", server_cpu},
      {"server_cpu_us_per_req", server_cpu >= 0 && done ? server_cpu * 1e6 / static_cast<double>(done) : -1.0},
      {"p50_us", percentile(load.latency_us, 0.50)},
      {"p99_us", percentile(load.latency_us, 0.99)},
      {"connections_client", metrics.connections_opened},
      {"connections_server", server_connections},
      {"connections_per_10k", done ? static_cast<double>(metrics.connections_opened) * 1e4 / static_cast<double>(done) : 0.0},
      {"server_requests", static_cast<std::int64_t>(json_number(stats, {"requests", "total"}))},
      {"server_200", static_cast<std::int64_t>(json_number(stats, {"status", "200"}))},
      {"retries", metrics.retries},
      {"first_error", load.first_error},
  };
  std::printf("json %s\n", json::serialize(out).c_str());
  std::printf("pooling %s, C=%d: %lld requests (%lld failed) in %.2f s = %.0f req/s; client CPU %.1f us/req "
              "(%.0f%% of a core), server CPU %.1f us/req; p50 %u us, p99 %u us; connections %lld (server %lld)\n",
              pooling ? "on" : "off", concurrency, static_cast<long long>(done), static_cast<long long>(load.failed),
              seconds, static_cast<double>(done) / seconds, done ? cpu * 1e6 / static_cast<double>(done) : 0.0,
              100 * cpu / seconds, server_cpu >= 0 && done ? server_cpu * 1e6 / static_cast<double>(done) : -1.0,
              percentile(load.latency_us, 0.50), percentile(load.latency_us, 0.99),
              static_cast<long long>(metrics.connections_opened), static_cast<long long>(server_connections));
  if (!load.first_error.empty()) std::fprintf(stderr, "first error: %s\n", load.first_error.c_str());
  return load.failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(Args(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_http: %s\n", e.what());
    return 2;
  }
}
