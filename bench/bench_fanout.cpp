// Fan-out benchmark (issue 14, part 6): one for_each step over N trivial items, run through the
// real executor::Scheduler, against the same work written as N ordinary steps.
//
//   fanout: step 1 returns a list of N objects; step 2 fans out over it with parameters built
//           from $item and $index; step 3 reads one element of step 2's list. Wall time / N is
//           the overhead per item (list resolution, per-item references, slot, coroutine).
//   steps:  N independent steps with the same parameters written out, plus the two around them:
//           the per-step overhead of the ordinary path, for comparison.
//
// Usage: bench_fanout [--items N] [--mode fanout|steps] [--parallel P] [--repeat R]
// Prints one JSON line (prefixed "json ") and one human line. Run each mode in its own process
// for a clean peak RSS.

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <sys/resource.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
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

/// "noop": returns {"n": step id} without suspending; with {"list": N} returns {"items": [...]}.
class NoopTool final : public Tool {
 public:
  std::string_view name() const override { return "noop"; }
  std::string_view description() const override { return "returns at once"; }
  const json::object& parameters_schema() const override {
    static const json::object schema = json::parse(R"({"type":"object"})").as_object();
    return schema;
  }
  asio::awaitable<ToolResult> invoke(json::object params, ToolContext ctx) override {
    if (const auto* n = params.if_contains("list")) {
      json::array items;
      const auto count = n->to_number<std::int64_t>();
      items.reserve(static_cast<std::size_t>(count));
      for (std::int64_t i = 0; i < count; ++i) items.push_back(json::object{{"name", "file" + std::to_string(i)}, {"n", i}});
      co_return json::value(json::object{{"items", std::move(items)}});
    }
    co_return json::value(json::object{{"n", ctx.step_id}});
  }
};

struct Options {
  std::size_t items = 1000;
  bool fanout = true;
  int parallel = 64;
  int repeat = 20;
};

executor::Plan make_plan(const Options& o) {
  executor::Plan plan;
  executor::Step list;
  list.id = 1;
  list.action = "noop";
  list.parameters["list"] = o.items;
  plan.steps.push_back(list);
  if (o.fanout) {
    executor::Step each;
    each.id = 2;
    each.action = "noop";
    each.for_each = json::string("$step1.items");
    each.parameters = json::object{{"path", "$item.name"}, {"index", "$index"}, {"label", "#$index: $item.name"}};
    plan.steps.push_back(each);
    executor::Step after;
    after.id = 3;
    after.action = "noop";
    after.parameters = json::object{{"first", "$step2[0].n"}};
    plan.steps.push_back(after);
    return plan;
  }
  const int first = 2;
  for (std::size_t i = 0; i < o.items; ++i) {
    executor::Step s;
    s.id = first + static_cast<int>(i);
    s.action = "noop";
    const auto k = std::to_string(i);
    s.parameters = json::object{{"path", "$step1.items[" + k + "].name"}, {"index", static_cast<std::int64_t>(i)},
                                {"label", "#" + k + ": $step1.items[" + k + "].name"}};
    plan.steps.push_back(std::move(s));
  }
  executor::Step after;
  after.id = first + static_cast<int>(o.items);
  after.action = "noop";
  after.parameters = json::object{{"first", "$step2.n"}};
  plan.steps.push_back(after);
  return plan;
}

struct ReportSink {
  executor::ExecutionReport* out;
  void operator()(std::exception_ptr e, executor::ExecutionReport r) const {
    if (e) std::rethrow_exception(e);
    *out = std::move(r);
  }
};

long proc_status_kb(std::string_view field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(field)) return std::stol(line.substr(field.size()));
  return -1;
}

double best(std::vector<double> v) { return *std::min_element(v.begin(), v.end()); }
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i], value = argv[i + 1];
    bool ok = true;
    if (flag == "--items") ok = parse_number(value, o.items) && o.items > 0;
    else if (flag == "--parallel") ok = parse_number(value, o.parallel) && o.parallel > 0;
    else if (flag == "--repeat") ok = parse_number(value, o.repeat) && o.repeat > 0;
    else if (flag == "--mode") ok = value == "fanout" || value == "steps", o.fanout = value == "fanout";
    else ok = false;
    if (!ok) {
      std::fprintf(stderr, "usage: bench_fanout [--items N] [--mode fanout|steps] [--parallel P] [--repeat R]\n");
      return 2;
    }
  }
  tools::Registry registry;
  (void)registry.add(std::make_shared<NoopTool>());
  const auto plan = make_plan(o);
  executor::AnalysisOptions analysis_options;
  analysis_options.max_steps = static_cast<int>(plan.steps.size());
  const auto analysis = executor::analyze(plan, registry, analysis_options);
  if (!analysis.ok()) {
    for (const auto& p : analysis.problems) std::fprintf(stderr, "%s\n", p.to_string().c_str());
    return 1;
  }
  executor::SchedulerOptions options;
  options.max_parallel_steps = o.parallel;
  options.max_fan_out = o.items;
  const long rss_before_kb = proc_status_kb("VmRSS:");
  std::vector<double> wall_ms;
  int max_concurrent = 0;
  for (int r = 0; r < o.repeat; ++r) {
    executor::RuleVerifier verifier;
    asio::io_context io(1);
    executor::ExecutionReport report;
    const auto t0 = Clock::now();
    {
      executor::Scheduler scheduler(plan, analysis, options, ToolContext{}, {}, verifier);
      asio::co_spawn(io, scheduler.run(), ReportSink{&report});
      io.run();
    }
    wall_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    for (const auto& s : report.steps)
      if (s.status != StepStatus::succeeded) {
        std::fprintf(stderr, "step %d: %s\n", s.id, s.error.c_str());
        return 1;
      }
    if (o.fanout && report.steps[1].output.as_array().size() != o.items) return 1;
    max_concurrent = std::max(max_concurrent, report.max_concurrent);
  }
  const double n = static_cast<double>(o.items);
  const long hwm_kb = proc_status_kb("VmHWM:");
  json::object out{{"bench", "fanout"},
                   {"mode", o.fanout ? "fanout" : "steps"},
                   {"items", o.items},
                   {"parallel", o.parallel},
                   {"repeat", o.repeat},
                   {"run_ms_best", best(wall_ms)},
                   {"run_ms_median", median(wall_ms)},
                   {"us_per_item_best", best(wall_ms) * 1000 / n},
                   {"us_per_item_median", median(wall_ms) * 1000 / n},
                   {"max_concurrent", max_concurrent},
                   {"vm_rss_before_run_kb", rss_before_kb},
                   {"vm_hwm_kb", hwm_kb}};
  std::printf("json %s\n", json::serialize(out).c_str());
  std::printf("%s items=%zu parallel=%d: %.2f us/item best, %.2f median; max concurrent %d; RSS %.1f MB before "
              "the runs, peak %.1f MB\n",
              o.fanout ? "fanout" : "steps", o.items, o.parallel, out["us_per_item_best"].as_double(),
              out["us_per_item_median"].as_double(), max_concurrent, rss_before_kb / 1024.0, hwm_kb / 1024.0);
  return 0;
}
