// Scheduler benchmark: seeded random DAGs run through the real executor::Scheduler.
//
//   trivial: every step calls an inline tool, so run wall time / steps is the scheduling
//            overhead per step (reference resolution, parameter checks, timeout race included).
//   latency: every step waits its own simulated latency on a timer; the makespan is compared
//            with the weighted critical path of the DAG.
//
// Usage: bench_scheduler [--steps N] [--mode trivial|latency] [--scheduling eager|levels]
//                        [--parallel P] [--repeat R] [--seed S] [--window W]
//                        [--min-latency MS] [--max-latency MS]
// Prints one JSON line (prefixed "json ") and one human line per run of the program.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <sys/resource.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "dagent/tool.hpp"
#include "executor/analysis.hpp"
#include "executor/plan.hpp"
#include "executor/scheduler.hpp"
#include "executor/verifier.hpp"
#include "tools/registry.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent;
using Clock = std::chrono::steady_clock;

enum class Mode { trivial, latency };

struct BenchOptions {
  std::size_t steps = 1000;
  Mode mode = Mode::trivial;
  config::Scheduling scheduling = config::Scheduling::eager;
  int parallel = 0;             ///< 0: 64 for trivial, 4096 for latency (never binding there)
  int repeat = 5;
  std::uint64_t seed = 1;
  std::size_t window = 0;       ///< 0: 4·√steps: ~30 levels for 1 000 steps, ~100 for 10 000
  int min_latency_ms = 5;
  int max_latency_ms = 20;
};

// The shape every step's output has, so `$stepN.n` and `$stepN.tag` always resolve.
json::value step_output(int step_id) { return json::object{{"n", step_id}, {"tag", "ok"}}; }

/// "noop": returns a tiny object without suspending.
class NoopTool final : public Tool {
 public:
  std::string_view name() const override { return "noop"; }
  std::string_view description() const override { return "returns at once"; }
  const json::object& parameters_schema() const override {
    static const json::object schema = json::parse(R"({"type":"object"})").as_object();
    return schema;
  }
  asio::awaitable<ToolResult> invoke(json::object, ToolContext ctx) override { co_return step_output(ctx.step_id); }
};

/// "wait" {ms}: waits `ms` on a steady_timer, then returns a tiny object.
class WaitTool final : public Tool {
 public:
  std::string_view name() const override { return "wait"; }
  std::string_view description() const override { return "waits a simulated latency"; }
  const json::object& parameters_schema() const override {
    static const json::object schema = json::parse(
        R"({"type":"object","properties":{"ms":{"type":"integer","minimum":0}},"required":["ms"]})").as_object();
    return schema;
  }
  asio::awaitable<ToolResult> invoke(json::object params, ToolContext ctx) override {
    auto ms = params.at("ms").to_number<std::int64_t>();
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return tool_error(ToolErrc::cancelled, "wait cancelled");
    co_return step_output(ctx.step_id);
  }
};

// Step i depends on 0–3 distinct steps among the previous `window` (0 deps with 10 %, else 1–3
// evenly). Each dependency is written one of three ways, evenly: an explicit `dependencies`
// entry, a whole reference "$stepN.n" (typed), or an embedded one "from $stepN.tag" (text).
// The draws do not depend on the mode, so both modes of one seed run the same DAG.
executor::Plan make_plan(const BenchOptions& o) {
  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int> percent(0, 99);
  std::uniform_int_distribution<int> latency(o.min_latency_ms, o.max_latency_ms);
  std::uniform_int_distribution<int> spelling(0, 2);
  const std::string action = o.mode == Mode::trivial ? "noop" : "wait";
  executor::Plan plan;
  plan.steps.reserve(o.steps);
  std::vector<std::size_t> deps;
  for (std::size_t i = 0; i < o.steps; ++i) {
    executor::Step step;
    step.id = static_cast<int>(i) + 1;
    step.action = action;
    step.parameters["ms"] = latency(rng);
    const int p = percent(rng);
    const std::size_t wanted = std::min<std::size_t>(i, p < 10 ? 0 : p < 40 ? 1 : p < 70 ? 2 : 3);
    const std::size_t lo = i > o.window ? i - o.window : 0;
    std::uniform_int_distribution<std::size_t> pick(lo, i == 0 ? 0 : i - 1);
    deps.clear();
    while (deps.size() < wanted) {
      auto d = pick(rng);
      if (std::find(deps.begin(), deps.end(), d) == deps.end()) deps.push_back(d);
    }
    for (std::size_t k = 0; k < deps.size(); ++k) {
      const int dep_id = static_cast<int>(deps[k]) + 1;
      const auto key = "ref" + std::to_string(k);
      switch (spelling(rng)) {
        case 0: step.dependencies.push_back(dep_id); break;
        case 1: step.parameters[key] = "$step" + std::to_string(dep_id) + ".n"; break;
        default: step.parameters[key] = "from $step" + std::to_string(dep_id) + ".tag"; break;
      }
    }
    plan.steps.push_back(std::move(step));
  }
  return plan;
}

double latency_of(const executor::Step& step) { return step.parameters.at("ms").to_number<double>(); }

// Longest chain by summed latency; levels in ascending order are a topological order.
double weighted_critical_path_ms(const executor::Plan& plan, const executor::Analysis& a) {
  std::vector<double> finish(plan.steps.size(), 0);
  double longest = 0;
  for (const auto& level : a.levels)
    for (auto i : level) {
      double start = 0;
      for (auto d : a.steps[i].deps) start = std::max(start, finish[d]);
      finish[i] = start + latency_of(plan.steps[i]);
      longest = std::max(longest, finish[i]);
    }
  return longest;
}

struct ReportSink {
  executor::ExecutionReport* out;
  void operator()(std::exception_ptr e, executor::ExecutionReport r) const {
    if (e) std::rethrow_exception(e);
    *out = std::move(r);
  }
};

struct RunSample {
  double wall_ms = 0;
  double makespan_ms = 0;  ///< latest finished_ms of a step
  int max_concurrent = 0;
  // Where the makespan went, along the chain that ended last (each step's latest-finishing
  // dependency, back to a source): makespan = chain latency + ready delays + step overheads.
  std::size_t chain_steps = 0;
  double chain_latency_ms = 0;
  double chain_ready_delay_ms = 0;    ///< dependency finished (or run start) → step started
  double chain_step_overhead_ms = 0;  ///< started → finished, less the step's own latency
  double mean_ready_delay_ms = 0;     ///< over every step
  double mean_step_overhead_ms = 0;
};

void explain_makespan(const executor::Plan& plan, const executor::Analysis& a, const executor::ExecutionReport& report,
                      RunSample& s) {
  const auto& r = report.steps;
  auto ready_at = [&](std::size_t i) {
    double t = 0;
    for (auto d : a.steps[i].deps) t = std::max(t, r[d].finished_ms);
    return t;
  };
  for (std::size_t i = 0; i < r.size(); ++i) {
    s.mean_ready_delay_ms += r[i].started_ms - ready_at(i);
    s.mean_step_overhead_ms += r[i].finished_ms - r[i].started_ms - latency_of(plan.steps[i]);
  }
  s.mean_ready_delay_ms /= static_cast<double>(r.size());
  s.mean_step_overhead_ms /= static_cast<double>(r.size());

  std::size_t cur = 0;
  for (std::size_t i = 1; i < r.size(); ++i)
    if (r[i].finished_ms > r[cur].finished_ms) cur = i;
  for (;;) {
    ++s.chain_steps;
    s.chain_latency_ms += latency_of(plan.steps[cur]);
    s.chain_step_overhead_ms += r[cur].finished_ms - r[cur].started_ms - latency_of(plan.steps[cur]);
    s.chain_ready_delay_ms += r[cur].started_ms - ready_at(cur);
    const auto& deps = a.steps[cur].deps;
    if (deps.empty()) break;
    cur = *std::max_element(deps.begin(), deps.end(),
                            [&](auto x, auto y) { return r[x].finished_ms < r[y].finished_ms; });
  }
}

// One execution on a fresh single-threaded loop, as the runtime does it; wall time covers the
// scheduler's construction, the whole run and the report.
RunSample run_once(const executor::Plan& plan, const executor::Analysis& analysis,
                   const executor::SchedulerOptions& options) {
  executor::RuleVerifier verifier;
  asio::io_context io(1);
  executor::ExecutionReport report;
  const auto t0 = Clock::now();
  {
    executor::Scheduler scheduler(plan, analysis, options, ToolContext{}, {}, verifier);
    asio::co_spawn(io, scheduler.run(), ReportSink{&report});
    io.run();
  }
  RunSample s;
  s.wall_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  for (const auto& r : report.steps) {
    if (r.status != StepStatus::succeeded) {
      std::fprintf(stderr, "step %d did not succeed: %s\n", r.id, r.error.c_str());
      std::exit(1);
    }
    s.makespan_ms = std::max(s.makespan_ms, r.finished_ms);
  }
  s.max_concurrent = report.max_concurrent;
  explain_makespan(plan, analysis, report, s);
  return s;
}

double best(std::vector<double> v) { return *std::min_element(v.begin(), v.end()); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// A field of /proc/self/status ("VmHWM:", "VmRSS:") in KiB, or -1 where there is none.
long proc_status_kb(std::string_view field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(field)) return std::stol(line.substr(field.size()));
  return -1;
}

long ru_maxrss_kb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;  // KiB on Linux
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

int usage(const char* why) {
  std::fprintf(stderr,
               "bench_scheduler: %s\nusage: bench_scheduler [--steps N] [--mode trivial|latency] "
               "[--scheduling eager|levels] [--parallel P] [--repeat R] [--seed S] [--window W] "
               "[--min-latency MS] [--max-latency MS]\n",
               why);
  return 2;
}

// Fills `o` from argv; returns an error message, empty on success.
std::string parse_args(int argc, char** argv, BenchOptions& o) {
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (i + 1 >= argc) return "missing value after " + std::string(flag);
    std::string_view value = argv[++i];
    bool ok = true;
    if (flag == "--steps") ok = parse_number(value, o.steps) && o.steps > 0;
    else if (flag == "--parallel") ok = parse_number(value, o.parallel) && o.parallel >= 0;
    else if (flag == "--repeat") ok = parse_number(value, o.repeat) && o.repeat > 0;
    else if (flag == "--seed") ok = parse_number(value, o.seed);
    else if (flag == "--window") ok = parse_number(value, o.window);
    else if (flag == "--min-latency") ok = parse_number(value, o.min_latency_ms) && o.min_latency_ms >= 0;
    else if (flag == "--max-latency") ok = parse_number(value, o.max_latency_ms) && o.max_latency_ms >= 0;
    else if (flag == "--mode") {
      ok = value == "trivial" || value == "latency";
      o.mode = value == "latency" ? Mode::latency : Mode::trivial;
    } else if (flag == "--scheduling") {
      ok = value == "eager" || value == "levels";
      o.scheduling = value == "levels" ? config::Scheduling::levels : config::Scheduling::eager;
    } else {
      return "unknown option " + std::string(flag);
    }
    if (!ok) return "bad value '" + std::string(value) + "' for " + std::string(flag);
  }
  if (o.min_latency_ms > o.max_latency_ms) return "--min-latency is above --max-latency";
  if (o.window == 0) o.window = std::max<std::size_t>(4, static_cast<std::size_t>(4 * std::sqrt(double(o.steps)) + 0.5));
  if (o.parallel == 0) o.parallel = o.mode == Mode::trivial ? 64 : 4096;
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  BenchOptions o;
  if (auto error = parse_args(argc, argv, o); !error.empty()) return usage(error.c_str());

  tools::Registry registry;
  (void)registry.add(std::make_shared<NoopTool>());
  (void)registry.add(std::make_shared<WaitTool>());
  const auto plan = make_plan(o);

  executor::AnalysisOptions analysis_options;
  analysis_options.max_steps = static_cast<int>(o.steps);
  std::vector<double> analysis_ms;
  executor::Analysis analysis;
  for (int r = 0; r < o.repeat; ++r) {
    const auto t0 = Clock::now();
    auto a = executor::analyze(plan, registry, analysis_options);
    analysis_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (r + 1 == o.repeat) analysis = std::move(a);  // one analysis alive at a time, for the peak RSS
  }
  if (!analysis.ok()) {
    for (const auto& p : analysis.problems) std::fprintf(stderr, "%s\n", p.to_string().c_str());
    return 1;
  }
  std::size_t edges = 0, max_width = 0, templated = 0;
  for (const auto& s : analysis.steps) {
    edges += s.deps.size();
    templated += s.params.slots.size();
  }
  for (const auto& l : analysis.levels) max_width = std::max(max_width, l.size());

  executor::SchedulerOptions options;
  options.max_parallel_steps = o.parallel;
  options.scheduling = o.scheduling;
  const long rss_before_run_kb = proc_status_kb("VmRSS:");  // the plan and its analysis
  std::vector<double> wall_ms, makespan_ms;
  int max_concurrent = 0;
  RunSample fastest;
  for (int r = 0; r < o.repeat; ++r) {
    auto s = run_once(plan, analysis, options);
    wall_ms.push_back(s.wall_ms);
    makespan_ms.push_back(s.makespan_ms);
    max_concurrent = std::max(max_concurrent, s.max_concurrent);
    if (r == 0 || s.makespan_ms < fastest.makespan_ms) fastest = s;
  }

  const bool trivial = o.mode == Mode::trivial;
  const bool eager = o.scheduling == config::Scheduling::eager;
  const auto n = static_cast<double>(o.steps);
  json::object out{
      {"bench", "scheduler"},
      {"steps", o.steps},
      {"mode", trivial ? "trivial" : "latency"},
      {"scheduling", eager ? "eager" : "levels"},
      {"parallel", o.parallel},
      {"repeat", o.repeat},
      {"seed", o.seed},
      {"window", o.window},
      {"edges", edges},
      {"templated_parameters", templated},
      {"levels", analysis.levels.size()},
      {"critical_path_steps", analysis.critical_path.size()},
      {"max_level_width", max_width},
      {"max_concurrent", max_concurrent},
      {"analysis_ms_best", best(analysis_ms)},
      {"analysis_ms_median", median(analysis_ms)},
      {"run_ms_best", best(wall_ms)},
      {"run_ms_median", median(wall_ms)},
  };
  if (trivial) {
    out["us_per_step_best"] = best(wall_ms) * 1000 / n;
    out["us_per_step_median"] = median(wall_ms) * 1000 / n;
  } else {
    const double cp = weighted_critical_path_ms(plan, analysis);
    out["weighted_critical_path_ms"] = cp;
    out["makespan_ms_best"] = best(makespan_ms);
    out["makespan_ms_median"] = median(makespan_ms);
    out["makespan_over_cp_best"] = best(makespan_ms) / cp;
    out["makespan_over_cp_median"] = median(makespan_ms) / cp;
    // The breakdown of the best run's makespan (see RunSample).
    out["chain_steps"] = fastest.chain_steps;
    out["chain_latency_ms"] = fastest.chain_latency_ms;
    out["chain_ready_delay_ms"] = fastest.chain_ready_delay_ms;
    out["chain_step_overhead_ms"] = fastest.chain_step_overhead_ms;
    out["mean_ready_delay_ms"] = fastest.mean_ready_delay_ms;
    out["mean_step_overhead_ms"] = fastest.mean_step_overhead_ms;
  }
  out["vm_rss_before_run_kb"] = rss_before_run_kb;
  out["ru_maxrss_kb"] = ru_maxrss_kb();
  out["vm_hwm_kb"] = proc_status_kb("VmHWM:");
  std::printf("json %s\n", json::serialize(out).c_str());

  std::printf("%s %s steps=%zu parallel=%d: %zu levels, critical path %zu steps, %zu edges, %zu templated "
              "parameters; analysis %.2f ms; ",
              trivial ? "trivial" : "latency", eager ? "eager" : "levels", o.steps, o.parallel,
              analysis.levels.size(), analysis.critical_path.size(), edges, templated, best(analysis_ms));
  if (trivial) {
    std::printf("%.2f us/step best, %.2f median", out["us_per_step_best"].as_double(),
                out["us_per_step_median"].as_double());
  } else {
    std::printf("makespan %.1f ms best, %.1f median vs critical path %.1f ms (x%.4f median)",
                best(makespan_ms), median(makespan_ms), out["weighted_critical_path_ms"].as_double(),
                out["makespan_over_cp_median"].as_double());
    std::printf("; best run's last chain: %zu steps, %.1f ms latency + %.1f ms ready delay + %.1f ms step overhead",
                fastest.chain_steps, fastest.chain_latency_ms, fastest.chain_ready_delay_ms,
                fastest.chain_step_overhead_ms);
  }
  std::printf("; max concurrent %d; RSS %.1f MB before the runs, peak %.1f MB (VmHWM %.1f MB)\n", max_concurrent,
              rss_before_run_kb / 1024.0, ru_maxrss_kb() / 1024.0, proc_status_kb("VmHWM:") / 1024.0);
  return 0;
}
