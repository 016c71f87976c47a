// Cost of the Prometheus instrumentation (src/observe/): one increment of a pre-resolved counter,
// one histogram observation, one labelled lookup (what record_run does per step), the call sites'
// helpers, and render() of dagent's registry; single-threaded, then T threads on one counter.
//
// Usage: bench_metrics [--n N] [--threads T]
// Prints one JSON line (prefixed "json ") and human lines; times are ns per operation.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "observe/metrics.hpp"

namespace {

using Clock = std::chrono::steady_clock;

template <class F>
double ns_per_op(long n, F&& f) {
  const auto start = Clock::now();
  for (long i = 0; i < n; ++i) f(i);
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  long n = 10'000'000;
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--n")) n = std::atol(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
  }
  namespace observe = dagent::observe;
  observe::Registry r;
  const auto counter = r.counter("bench_total", "h").counter();
  const auto hist = r.histogram("bench_seconds", "h", {}, {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}).histogram();
  auto& steps = r.histogram("bench_step_seconds", "h", {"action", "status"}, {0.1, 1, 10});
  const std::string actions[] = {"llm", "read_file", "write_file", "memory_add"};

  const double inc = ns_per_op(n, [&](long) { counter.inc(); });
  const double observe_ns = ns_per_op(n, [&](long i) { hist.observe(static_cast<double>(i & 1023) / 1000.0); });
  const double lookup = ns_per_op(n / 10, [&](long i) { steps.histogram({actions[i & 3], "succeeded"}).observe(0.5); });
  const double site = ns_per_op(n, [&](long) { observe::chat_call(); });
  const double response = ns_per_op(n, [&](long) { observe::model_response("/chat/completions", 200); });
  const double render = ns_per_op(1000, [&](long) { (void)observe::render(); });

  std::vector<std::thread> pool;
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (long i = 0; i < n; ++i) counter.inc();
    });
  for (auto& t : pool) t.join();
  const double contended =
      std::chrono::duration<double, std::nano>(Clock::now() - start).count() / static_cast<double>(n * threads) * threads;

  std::printf("counter.inc          %6.2f ns\n", inc);
  std::printf("histogram.observe    %6.2f ns (11 bounds)\n", observe_ns);
  std::printf("labelled lookup+obs  %6.2f ns (mutex, map of 4 sets)\n", lookup);
  std::printf("observe::chat_call   %6.2f ns\n", site);
  std::printf("model_response       %6.2f ns\n", response);
  std::printf("render (dagent)      %6.0f ns (%zu bytes)\n", render, observe::render().size());
  std::printf("counter.inc, %d threads on one counter: %6.2f ns per op per thread\n", threads, contended);
  std::printf("json {\"inc_ns\": %.2f, \"observe_ns\": %.2f, \"lookup_ns\": %.2f, \"site_ns\": %.2f, \"response_ns\": %.2f, "
              "\"render_ns\": %.0f, \"contended_ns\": %.2f, \"threads\": %d}\n",
              inc, observe_ns, lookup, site, response, render, contended, threads);
  return counter.value() > 0 ? 0 : 1;
}
