// Rate-limiter utilization benchmark: net::OpenAiClient with its RPM/TPM limiter against the test
// server started with --rpm R --tpm T (a sliding 60 s window, tests/server/rate_window.hpp).
//
// C concurrent callers issue identical chat calls back to back for --windows consecutive windows
// of --window seconds (demand far above the limits, since the server answers at once). Just
// before the end of each window (t0: just before the first call) the server's /_stats is read:
// the 200s since the previous snapshot are the requests the server accepted in that window (the
// first one is the server's first 60 s window: nothing can have expired from it yet). Then no
// call is started; calls still queued in the limiter finish (at most --drain-max seconds) and
// /_stats is read again for the totals.
//
// Token accounting. The server counts, for every admitted request, ceil(body bytes / 4) plus the
// body's max_tokens (max_completion_tokens first), and never refunds it; the reply's usage is
// ceil(message text bytes / 4) prompt + ceil(reply bytes / 4) completion. The client reserves
// estimate_tokens(body) + max_tokens, i.e. the same number, and reconciles with the usage. With
// --reply matched the benchmark scripts a reply whose usage equals the declared tokens exactly,
// so reconciliation is a no-op and both sides count the same tokens; with --reply echo the
// server's default reply makes the usage smaller than what the server counted.
//
// --gate window puts a bench-side prototype of a sliding-window admission in front of the client
// (the proposed fix; the client's own limiter is then normally off with --limiter off).
//
// Usage: bench_limiter --port P --rpm R --tpm T [--declared-tokens D] [--concurrency C]
//                      [--window W] [--windows K] [--drain-max S] [--reply matched|echo]
//                      [--limiter on|off] [--gate none|window] [--safety-margin F] [--window rolling|bucket]
//                      [--server-pid PID] [--label NAME]
// Prints one JSON line (prefixed "json ") and human lines.
//
// Load mode (issue 15): bench_limiter --load bursty|steady --port P --rpm R [--tpm T]
//     [--period-ms M] [--window bucket|rolling] [--server-model bucket|rolling] [--calls N]
//     [--limiter on|off] [--label NAME]
// N calls (default 1.1 R) of a plan: bursty, all N ready at t0 (330 llm steps at once); steady,
// call i ready at t0 + i × M / (1.1 R) (1.1 times the limit's rate for one period). Each call is
// one client->chat() as soon as it is ready; the client's limiter decides when it is sent and
// retries a 429 (max_retries 5) after its retry-after, as dagent does. The server enforces R
// requests (and T tokens) per M ms (60000 unless scaled) with --rate-model = --server-model.
// The ideal: the time the server's own rule lets the last call through when every call is sent
// the moment the rule allows it, in order, with no latency. achieved = ideal / measured time of
// the last success (the share of the allowed budget used over the run).
//
// Shared mode (issue 16): --redis URL draws from the budget shared in Redis by every process
// started with the same URL (--expected-processes N for the fallback); --duration-ms D stops the
// process after D ms whatever is left; --no-reset leaves the server's counters alone (the script
// running several processes resets and reads them itself).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "net/llm_provider.hpp"
#include "net/openai_client.hpp"
#include "net/rate_limiter.hpp"
#include "redis/redis_budget.hpp"
#include "net_bench_common.hpp"

namespace {

using namespace dagent;
using namespace dagent::bench;
using namespace std::chrono_literals;

constexpr auto k_token = asio::as_tuple(asio::use_awaitable);
constexpr auto k_server_window = 60s;

// The server's own count for a request (tests/server/server_state.cpp, declared_tokens).
std::int64_t server_declared_tokens(const std::string& body, std::int64_t max_tokens) {
  return static_cast<std::int64_t>((body.size() + 3) / 4) + max_tokens;
}

// Prototype of the proposed fix: the server's sliding-window rule applied on the client. An
// entry holds a call's declared tokens and is timestamped when its response arrives, which is
// never earlier than the server's admission, so the client never frees budget before the server.
class WindowGate {
 public:
  WindowGate(std::int64_t rpm, std::int64_t tpm) : rpm_(rpm), tpm_(tpm) {}

  /// Admits one call of `tokens` as soon as the window allows it; nullopt if that is after
  /// `deadline`. Returns the entry's id for settle().
  asio::awaitable<std::optional<std::uint64_t>> acquire(std::int64_t tokens, Clock::time_point deadline) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex);
    for (;;) {
      const auto now = Clock::now();
      expire(now);
      if (static_cast<std::int64_t>(entries_.size()) + 1 <= rpm_ && sum_ + tokens <= tpm_) {
        entries_.push_back(Entry{now, tokens});
        sum_ += tokens;
        co_return first_id_ + entries_.size() - 1;
      }
      const auto wake = free_at(tokens);
      if (wake > deadline) co_return std::nullopt;
      timer.expires_at(wake);
      co_await timer.async_wait(k_token);
    }
  }

  /// The call's response arrived (or it failed): its entry now expires 60 s from here.
  void settle(std::uint64_t id, Clock::time_point at) {
    if (id < first_id_) return;
    auto& e = entries_[id - first_id_];
    e.at = std::max(e.at, at);
  }

 private:
  struct Entry {
    Clock::time_point at;
    std::int64_t tokens;
  };

  void expire(Clock::time_point now) {
    while (!entries_.empty() && now - entries_.front().at >= k_server_window) {
      sum_ -= entries_.front().tokens;
      entries_.pop_front();
      ++first_id_;
    }
  }

  // When the oldest entries have left the window so that one more call of `tokens` fits.
  // Entries are in admission order; a settled one may be later than the next, hence the max.
  Clock::time_point free_at(std::int64_t tokens) const {
    std::int64_t count = static_cast<std::int64_t>(entries_.size()), sum = sum_;
    Clock::time_point latest = Clock::now();
    for (const auto& e : entries_) {
      if (count + 1 <= rpm_ && sum + tokens <= tpm_) break;
      latest = std::max(latest, e.at + k_server_window);
      --count;
      sum -= e.tokens;
    }
    return latest + 1ms;  // the server compares with >= on a clock read a little later
  }

  std::int64_t rpm_, tpm_;
  std::deque<Entry> entries_;
  std::uint64_t first_id_ = 0;
  std::int64_t sum_ = 0;
};

struct Run {
  net::ChatRequest request;
  std::int64_t declared = 0;
  Clock::time_point t0, stop_issuing;
  WindowGate* gate = nullptr;
  std::int64_t ok = 0, rejected_429 = 0, other_errors = 0;
  std::int64_t ok_in_window = 0;           // successes that completed before t0 + window
  std::int64_t prompt_tokens = 0, completion_tokens = 0;
  std::string first_error;
  std::vector<std::int64_t> ok_per_5s;     // successes by completion time, 5 s bins from t0
  std::vector<std::int64_t> r429_per_5s;
  Clock::time_point window_end;
  int running = 0;
};

void bin(std::vector<std::int64_t>& bins, Clock::time_point t0, Clock::time_point at) {
  const auto i = static_cast<std::size_t>(std::chrono::duration_cast<std::chrono::seconds>(at - t0).count() / 5);
  if (bins.size() <= i) bins.resize(i + 1, 0);
  ++bins[i];
}

// Counts a caller out however its coroutine ends (normally, or cancelled at the drain limit).
struct Running {
  Run* run;
  ~Running() { --run->running; }
};

asio::awaitable<void> caller(Run* run, net::OpenAiClient* client) {
  Running running{run};
  while (Clock::now() < run->stop_issuing) {
    std::optional<std::uint64_t> entry;
    if (run->gate) {
      auto admitted = run->gate->acquire(run->declared, run->stop_issuing);
      entry = co_await std::move(admitted);
      if (!entry) break;
    }
    net::ChatRequest request = run->request;
    auto call = client->chat(std::move(request));
    auto result = co_await std::move(call);
    const auto now = Clock::now();
    if (entry) run->gate->settle(*entry, now);
    if (result) {
      ++run->ok;
      if (now < run->window_end) ++run->ok_in_window;
      run->prompt_tokens += result->usage.prompt_tokens;
      run->completion_tokens += result->usage.completion_tokens;
      bin(run->ok_per_5s, run->t0, now);
    } else if (result.error().status == 429) {
      ++run->rejected_429;
      bin(run->r429_per_5s, run->t0, now);
    } else {
      ++run->other_errors;
      if (run->first_error.empty()) run->first_error = result.error().message;
    }
  }
}

struct Snapshot {
  json::value stats;
  double at_s = 0;  // when the server answered, seconds after t0
};

asio::awaitable<void> snapshot_at(ServerControl* control, Clock::time_point when, Clock::time_point t0,
                                  std::optional<Snapshot>* out) {
  asio::steady_timer timer(co_await asio::this_coro::executor, when);
  co_await timer.async_wait(k_token);
  auto fetch = control->async_stats();
  json::value stats = co_await std::move(fetch);
  *out = Snapshot{std::move(stats), std::chrono::duration<double>(Clock::now() - t0).count()};
}

// A prompt of about `bytes` bytes of plain words.
std::string filler(std::size_t bytes) {
  static const char* words[] = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"};
  std::string out = "Summarize the following notes in one line:";
  for (std::size_t i = 0; out.size() < bytes; ++i) {
    out += ' ';
    out += words[i % 8];
  }
  out.resize(bytes);
  return out;
}

// ---- load mode ------------------------------------------------------------------------------

struct Load {
  net::ChatRequest request;
  Clock::time_point t0;
  asio::io_context* io = nullptr;
  std::int64_t ok = 0, failed = 0, calls = 0;
  Clock::time_point last_ok;
  std::string first_error;
};

asio::awaitable<void> planned_call(Load* load, net::OpenAiClient* client, Clock::time_point ready) {
  asio::steady_timer timer(co_await asio::this_coro::executor, ready);
  co_await timer.async_wait(k_token);
  net::ChatRequest request = load->request;
  auto call = client->chat(std::move(request));
  auto result = co_await std::move(call);
  if (result) {
    ++load->ok;
    load->last_ok = std::max(load->last_ok, Clock::now());
  } else {
    ++load->failed;
    if (load->first_error.empty()) load->first_error = result.error().message;
  }
  // The pool's idle connections keep the loop busy: stop it when the plan is done.
  if (load->ok + load->failed == load->calls) load->io->stop();
}

// When the server's rule lets the last of the calls (ready at `ready`, seconds, ascending)
// through if each is sent the moment the rule allows, in order, with no latency. Requests only.
double ideal_finish(const std::vector<double>& ready, double limit, double period, const std::string& model) {
  double t = 0;
  if (model == "bucket") {
    double level = limit, at = 0;
    for (double r : ready) {
      t = std::max(t, r);
      level = std::min(limit, level + (t - at) * limit / period);
      at = t;
      if (level < 1.0) {
        t += (1.0 - level) * period / limit;
        level = 1.0;
        at = t;
      }
      level -= 1.0;
    }
    return t;
  }
  std::deque<double> window;  // admission times within the last period
  for (double r : ready) {
    t = std::max(t, r);
    while (!window.empty() && window.front() + period <= t) window.pop_front();
    if (static_cast<double>(window.size()) + 1 > limit) {
      t = window[window.size() - static_cast<std::size_t>(limit)] + period;
      while (!window.empty() && window.front() + period <= t) window.pop_front();
    }
    window.push_back(t);
  }
  return t;
}

int run_load(const Args& args) {
  const std::int64_t port = args.integer("port", 0);
  const std::int64_t rpm = args.integer("rpm", 300);
  const std::int64_t tpm = args.integer("tpm", 1'000'000'000);
  const std::int64_t period_ms = args.integer("period-ms", 60000);
  const std::string load_kind = args.str("load", "bursty");
  const std::string window = args.str("window", "bucket");
  const std::string server_model = args.str("server-model", "bucket");
  const std::int64_t calls = args.integer("calls", rpm + rpm / 10);
  const bool limiter = args.flag("limiter", true);
  const std::string label = args.str("label", load_kind + "-" + window + "-on-" + server_model);
  const std::string redis_url = args.str("redis", "");
  const std::int64_t duration_ms = args.integer("duration-ms", 0);
  if (port <= 0 || (window != "bucket" && window != "rolling") || (load_kind != "bursty" && load_kind != "steady")) {
    std::fprintf(stderr, "usage: bench_limiter --load bursty|steady --port P --rpm R [--window bucket|rolling] ...\n");
    return 2;
  }
  const double period = static_cast<double>(period_ms) / 1000.0;
  std::vector<double> ready(static_cast<std::size_t>(calls), 0.0);
  if (load_kind == "steady")
    for (std::size_t i = 0; i < ready.size(); ++i)
      ready[i] = static_cast<double>(i) * period / (1.1 * static_cast<double>(rpm));
  const double ideal = ideal_finish(ready, static_cast<double>(rpm), period, server_model);

  Load load;
  load.request.model = "gpt-4o-mini";
  load.request.messages.push_back({"user", "Say hi."});
  load.request.max_tokens = 8;

  asio::io_context io(1);
  ServerControl control(io, loopback(port));
  if (!args.has("no-reset")) control.reset();

  net::OpenAiOptions options;
  options.base_url = net::BaseUrl{loopback(port), "/v1"};
  options.api_key = "sk-bench";
  options.rate_limiting = limiter;
  options.rpm_limit = rpm;
  options.tpm_limit = tpm;
  options.safety_margin = 1.0;
  options.rate_window = window == "bucket" ? config::RateWindow::bucket : config::RateWindow::rolling;
  options.rate_period = std::chrono::milliseconds(period_ms);
  options.max_retries = 5;
  options.retry_budget = 1.0;
  options.retry_budget_min = 1000;
  options.circuit_breaker = false;
  options.http.max_connections = 64;
  if (!redis_url.empty()) {
    config::RedisConfig redis_cfg;
    redis_cfg.url = redis_url;
    auto redis_options = redis::RedisOptions::from(redis_cfg, ".");
    if (!redis_options) {
      std::fprintf(stderr, "%s\n", redis_options.error().message.c_str());
      return 2;
    }
    options.shared_budget = std::make_shared<redis::RedisBudget>(
        redis::RedisClient(io.get_executor(), std::move(*redis_options)), "bench", redis::RedisBudget::process_member());
    options.expected_processes = static_cast<int>(args.integer("expected-processes", 1));
  }
  load.calls = calls;
  load.io = &io;
  auto client = std::make_unique<net::OpenAiClient>(io.get_executor(), nullptr, options);
  load.t0 = Clock::now() + 20ms;
  load.last_ok = load.t0;
  for (double r : ready)
    asio::co_spawn(io,
                   planned_call(&load, client.get(),
                                load.t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(r))),
                   asio::detached);
  if (duration_ms > 0) io.run_for(std::chrono::milliseconds(duration_ms));
  else io.run_for(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(ideal * 3 + 2 * period + 10)));
  if (duration_ms > 0) {
    // A process of a fleet stops here: the script reads the server's counters for them all.
    // Why leak: calls still pending hold reservations on the client; the loop is not run again.
    std::printf("%s: %lld calls ok, %lld failed in %lld ms\n", label.c_str(), static_cast<long long>(load.ok),
                static_cast<long long>(load.failed), static_cast<long long>(duration_ms));
    (void)client.release();
    return 0;
  }
  const double elapsed = std::chrono::duration<double>(load.last_ok - load.t0).count();
  // Calls still pending at the time limit hold reservations on the client: it must outlive them.
  if (load.ok + load.failed < calls) (void)client.release();
  client.reset();
  io.restart();
  const json::value stats = control.stats();
  const auto accepted = static_cast<std::int64_t>(json_number(stats, {"status", "200"}));
  const auto r429 = static_cast<std::int64_t>(json_number(stats, {"rate_limited"}));
  const bool complete = load.ok == calls;
  const double achieved = complete && elapsed > 0 ? std::min(1.0, ideal / elapsed) : 0.0;
  json::object out{{"label", label},       {"load", load_kind},     {"window", window},
                   {"server_model", server_model}, {"rpm", rpm},    {"tpm", tpm},
                   {"period_s", period},   {"calls", calls},        {"limiter", limiter},
                   {"ok", load.ok},        {"failed", load.failed}, {"server_accepted", accepted},
                   {"r429", r429},         {"ideal_s", ideal},      {"elapsed_s", elapsed},
                   {"achieved", achieved}, {"first_error", load.first_error}};
  std::printf("json %s\n", json::serialize(out).c_str());
  std::printf("%s: %lld/%lld calls ok in %.3f s (ideal %.3f s): %.1f%% of the allowed budget, %lld 429s%s%s\n",
              label.c_str(), static_cast<long long>(load.ok), static_cast<long long>(calls), elapsed, ideal,
              100 * achieved, static_cast<long long>(r429), load.first_error.empty() ? "" : "; first error: ",
              load.first_error.c_str());
  return complete ? 0 : 1;
}

int run_bench(const Args& args) {
  if (args.has("load")) return run_load(args);
  const std::int64_t port = args.integer("port", 0);
  const std::int64_t rpm = args.integer("rpm", 600);
  const std::int64_t tpm = args.integer("tpm", 60000);
  const std::int64_t declared_target = args.integer("declared-tokens", 200);
  const int concurrency = static_cast<int>(args.integer("concurrency", 16));
  const double window_s = args.number("window", 60);
  const int windows = static_cast<int>(args.integer("windows", 1));
  const double drain_max = args.number("drain-max", 15);
  const std::string reply_mode = args.str("reply", "matched");
  const bool limiter = args.flag("limiter", true);
  const std::string gate_mode = args.str("gate", "none");
  const double safety = args.number("safety-margin", 1.0);
  const long server_pid = static_cast<long>(args.integer("server-pid", 0));
  const std::string label = args.str("label", "");
  if (port <= 0) {
    std::fprintf(stderr, "usage: bench_limiter --port P --rpm R --tpm T [...]\n");
    return 2;
  }

  // The request: the prompt is a quarter of the declared tokens, max_tokens the rest, adjusted
  // until ceil(body / 4) + max_tokens is exactly the target.
  Run run;
  run.request.model = "gpt-4o-mini";
  const auto prompt_bytes = static_cast<std::size_t>(std::max<std::int64_t>(declared_target, 40));
  run.request.messages.push_back({"user", filler(prompt_bytes)});
  std::int64_t max_tokens = 1;
  std::string body;
  for (int i = 0; i < 10; ++i) {
    run.request.max_tokens = max_tokens;
    body = json::serialize(net::to_json(run.request, false));
    const auto next = declared_target - static_cast<std::int64_t>((body.size() + 3) / 4);
    if (next == max_tokens || next < 1) break;
    max_tokens = next;
  }
  run.request.max_tokens = max_tokens;
  body = json::serialize(net::to_json(run.request, false));
  run.declared = server_declared_tokens(body, max_tokens);
  const std::int64_t client_estimate = net::estimate_tokens(body) + max_tokens;
  const std::int64_t prompt_usage = static_cast<std::int64_t>((run.request.messages[0].content.size() + 3) / 4);

  asio::io_context io(1);
  ServerControl control(io, loopback(port));
  std::string script;
  if (reply_mode == "matched") {
    // ceil(reply / 4) = declared - prompt usage, so the usage equals the declared tokens.
    const auto reply_bytes = static_cast<std::size_t>(std::max<std::int64_t>(run.declared - prompt_usage, 1) * 4);
    json::object rule{{"path", "/v1/chat/completions"}, {"reply", std::string(reply_bytes, 'z')}};
    script = json::serialize(json::object{{"rules", json::array{rule}}});
  } else {
    script = R"({"rules": []})";
  }

  // Probe: one request outside the measurement shows what the server counts and what the usage
  // is; then the window is cleared.
  control.reset();
  control.script(script);
  net::HttpRequest probe;
  probe.target = "/v1/chat/completions";
  probe.headers.push_back({"content-type", "application/json"});
  probe.headers.push_back({"authorization", "Bearer sk-bench"});
  probe.body = body;
  std::int64_t probe_counted = -1, probe_usage = -1;
  {
    net::HttpClient http(io.get_executor(), nullptr, net::HttpOptions{});
    std::optional<net::HttpResult<net::HttpResponse>> got;
    asio::co_spawn(io, send_into(&http, loopback(port), probe, &got), asio::detached);
    io.restart();
    io.run();
    io.restart();
    if (!got || !*got || (*got)->status != 200) throw std::runtime_error("the probe request failed");
    if (const auto* rem = (*got)->header("x-ratelimit-remaining-tokens")) probe_counted = tpm - std::stoll(*rem);
    const auto doc = json::parse((*got)->body);
    probe_usage = static_cast<std::int64_t>(json_number(doc, {"usage", "total_tokens"}));
  }
  control.reset();
  control.script(script);

  net::OpenAiOptions options;
  options.base_url = net::BaseUrl{loopback(port), "/v1"};
  options.api_key = "sk-bench";
  options.rate_limiting = limiter;
  options.rpm_limit = rpm;
  options.tpm_limit = tpm;
  options.safety_margin = safety;
  // The test server counts a rolling window unless told otherwise (--rate-model).
  options.rate_window = args.str("window", "rolling") == "bucket" ? config::RateWindow::bucket : config::RateWindow::rolling;
  options.max_retries = 0;  // a 429 is counted and the caller moves on (a retry would sleep up to 60 s)
  std::optional<WindowGate> gate;
  if (gate_mode == "window") {
    gate.emplace(rpm, tpm);
    run.gate = &*gate;
  }

  const auto server_cpu0 = process_cpu_seconds(server_pid);
  const double cpu0 = self_cpu_seconds();
  // One snapshot just before the end of each window: nothing admitted in a window has left the
  // server's sliding window yet when its snapshot is taken.
  std::vector<std::optional<Snapshot>> snapshots(static_cast<std::size_t>(windows));
  int still_running = 0;
  {
    net::OpenAiClient client(io.get_executor(), nullptr, options);
    run.t0 = Clock::now();
    auto secs = [](double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); };
    run.window_end = run.t0 + secs(window_s);
    run.stop_issuing = run.t0 + secs(window_s * windows);
    run.running = concurrency;
    std::vector<asio::cancellation_signal> cancel(static_cast<std::size_t>(concurrency));
    for (auto& signal : cancel)
      asio::co_spawn(io, caller(&run, &client), asio::bind_cancellation_slot(signal.slot(), asio::detached));
    for (int k = 0; k < windows; ++k)
      asio::co_spawn(io, snapshot_at(&control, run.t0 + secs(window_s * (k + 1)) - 20ms, run.t0, &snapshots[k]),
                     asio::detached);
    // Returns when every caller has finished and the snapshots are in, or at the drain limit.
    io.run_until(run.stop_issuing + secs(drain_max));
    if (run.running > 0) {
      // Callers still queued in the limiter: cancel them (they leave the queue) before the client
      // goes away.
      still_running = run.running;
      for (auto& signal : cancel) signal.emit(asio::cancellation_type::terminal);
      io.run_for(5s);
    }
    io.restart();
  }
  const double cpu = self_cpu_seconds() - cpu0;
  const auto server_cpu1 = process_cpu_seconds(server_pid);
  const double elapsed = std::chrono::duration<double>(Clock::now() - run.t0).count();
  const Snapshot at_end{control.stats(), elapsed};
  for (const auto& snap : snapshots)
    if (!snap) throw std::runtime_error("a /_stats snapshot at the end of a window is missing");

  // The binding limit: the one that allows fewer requests of this size per window.
  const bool tpm_binds = tpm / run.declared < rpm;
  json::array per_window;
  double accepted_before = 0, r429_before = 0;
  for (int k = 0; k < windows; ++k) {
    const auto& w = snapshots[k]->stats;
    const auto accepted = static_cast<std::int64_t>(json_number(w, {"status", "200"}) - accepted_before);
    const auto r429 = static_cast<std::int64_t>(json_number(w, {"rate_limited"}) - r429_before);
    accepted_before = json_number(w, {"status", "200"});
    r429_before = json_number(w, {"rate_limited"});
    const std::int64_t tokens = accepted * run.declared;
    const double req_util = static_cast<double>(accepted) / static_cast<double>(rpm);
    const double tok_util = static_cast<double>(tokens) / static_cast<double>(tpm);
    const double util = tpm_binds ? tok_util : req_util;
    per_window.push_back(json::object{{"window", k + 1},
                                      {"snapshot_at_s", snapshots[k]->at_s},
                                      {"accepted", accepted},
                                      {"tokens", tokens},
                                      {"request_utilization", req_util},
                                      {"token_utilization", tok_util},
                                      {"binding_utilization", util},
                                      {"r429", r429}});
    std::printf("%s: window %d (%.0f-%.0f s): the server accepted %lld requests, %lld tokens: %s utilization "
                "%.1f%%; %lld 429s\n",
                label.c_str(), k + 1, window_s * k, window_s * (k + 1), static_cast<long long>(accepted),
                static_cast<long long>(tokens), tpm_binds ? "TPM" : "RPM", 100 * util, static_cast<long long>(r429));
  }
  const auto accepted_total = static_cast<std::int64_t>(json_number(at_end.stats, {"status", "200"}));
  const auto r429_total = static_cast<std::int64_t>(json_number(at_end.stats, {"rate_limited"}));

  json::object flat;  // the per-window numbers again as flat keys (w1_accepted, ...) for shell scripts
  for (const auto& v : per_window) {
    const auto& w = v.as_object();
    const std::string k = "w" + std::to_string(w.at("window").as_int64()) + "_";
    flat[k + "accepted"] = w.at("accepted");
    flat[k + "tokens"] = w.at("tokens");
    flat[k + "util"] = w.at("binding_utilization");
    flat[k + "r429"] = w.at("r429");
    flat[k + "at_s"] = w.at("snapshot_at_s");
  }
  json::array ok_bins, r429_bins;
  for (auto n : run.ok_per_5s) ok_bins.push_back(n);
  for (auto n : run.r429_per_5s) r429_bins.push_back(n);
  json::object out{
      {"label", label},
      {"rpm", rpm},
      {"tpm", tpm},
      {"limiter", limiter},
      {"gate", gate_mode},
      {"reply", reply_mode},
      {"safety_margin", safety},
      {"concurrency", concurrency},
      {"body_bytes", body.size()},
      {"max_tokens", max_tokens},
      {"server_declared_tokens", run.declared},
      {"client_estimate_tokens", client_estimate},
      {"probe_server_counted", probe_counted},
      {"probe_usage", probe_usage},
      {"binding", tpm_binds ? "tpm" : "rpm"},
      {"window_s", window_s},
      {"windows", per_window},
      {"accepted_total", accepted_total},
      {"r429_total", r429_total},
      {"r429_after_windows", r429_total - static_cast<std::int64_t>(r429_before)},
      {"client_ok", run.ok},
      {"client_ok_in_window", run.ok_in_window},
      {"client_429", run.rejected_429},
      {"client_other_errors", run.other_errors},
      {"usage_prompt_tokens", run.prompt_tokens},
      {"usage_completion_tokens", run.completion_tokens},
      {"elapsed_s", elapsed},
      {"ok_per_5s", ok_bins},
      {"r429_per_5s", r429_bins},
      {"client_cpu_s", cpu},
      {"server_cpu_s", server_cpu0 && server_cpu1 ? *server_cpu1 - *server_cpu0 : -1.0},
      {"callers_cancelled_at_drain_limit", still_running},
      {"first_error", run.first_error},
  };
  for (const auto& kv : flat) out[kv.key()] = kv.value();
  std::printf("json %s\n", json::serialize(out).c_str());
  std::printf("%s: body %zu B, max_tokens %lld: server counts %lld tokens per request (probe: %lld), client "
              "estimate %lld, usage %lld; %lld accepted and %lld 429s in all (%lld 429s while draining)\n",
              label.c_str(), body.size(), static_cast<long long>(max_tokens), static_cast<long long>(run.declared),
              static_cast<long long>(probe_counted), static_cast<long long>(client_estimate),
              static_cast<long long>(probe_usage), static_cast<long long>(accepted_total),
              static_cast<long long>(r429_total), static_cast<long long>(r429_total - static_cast<std::int64_t>(r429_before)));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_bench(Args(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_limiter: %s\n", e.what());
    return 2;
  }
}
