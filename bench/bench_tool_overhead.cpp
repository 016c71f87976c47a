// bench_tool_overhead: the C++ side of bench/run_python.sh (README "Python bindings"), through the
// public API only. Two measurements, each printed as a `json {...}` line:
//   --plan trivial: a plan of STEPS steps calling a trivial tool, chained (each step depends on the
//     one before, so calls never overlap: wall / STEPS is the cost of one call) or independent
//     (one level, max_parallel_steps 64). Tools: `cpp` (returns at once on the loop), `blocking`
//     (a BlockingTool: a hop to the worker pool and back, as a sync Python tool makes).
//   --plan builtin: the plan bench/bench_python.py runs too (10 write_file, then 10 read_file each
//     after its write), wall time of run_plan per run.
// Usage: bench_tool_overhead [--plan trivial|builtin] [--tool cpp|blocking] [--shape chained|independent]
//                            [--steps N (1000)] [--repeat R (10)]

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include <boost/json.hpp>

#include "dagent/dagent.hpp"

namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

const json::object& noop_schema() {
  static const json::object schema = json::parse(R"({"type": "object", "properties": {"i": {"type": "integer"}}})").as_object();
  return schema;
}

// Returns {"n": i} without suspending.
class CppNoop final : public dagent::Tool {
 public:
  std::string_view name() const override { return "noop"; }
  std::string_view description() const override { return "returns its parameter"; }
  const json::object& parameters_schema() const override { return noop_schema(); }
  boost::asio::awaitable<dagent::ToolResult> invoke(json::object params, dagent::ToolContext) override {
    co_return json::value(json::object{{"n", params["i"]}});
  }
};

// The same on the worker pool.
class BlockingNoop final : public dagent::BlockingTool {
 public:
  std::string_view name() const override { return "noop"; }
  std::string_view description() const override { return "returns its parameter"; }
  const json::object& parameters_schema() const override { return noop_schema(); }
  dagent::ToolResult run(const json::object& params, const dagent::ToolContext&) override {
    return json::value(json::object{{"n", params.at("i")}});
  }
};

json::array trivial_plan(int steps, bool chained) {
  json::array plan;
  for (int i = 1; i <= steps; ++i) {
    json::object step{{"id", i}, {"action", "noop"}, {"parameters", json::object{{"i", i}}}};
    if (chained && i > 1) step["dependencies"] = json::array{i - 1};
    plan.push_back(std::move(step));
  }
  return plan;
}

// bench/bench_python.py builds the same plan.
json::array builtin_plan() {
  json::array plan;
  for (int i = 1; i <= 10; ++i)
    plan.push_back(json::object{{"id", i}, {"action", "write_file"},
                                {"parameters", json::object{{"path", "f" + std::to_string(i) + ".txt"}, {"content", "some text"}}}});
  for (int i = 1; i <= 10; ++i)
    plan.push_back(json::object{{"id", 10 + i}, {"action", "read_file"},
                                {"parameters", json::object{{"path", "$step" + std::to_string(i) + ".path"}}}});
  return plan;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string plan_kind = "trivial", tool = "cpp", shape = "chained";
  int steps = 1000, repeat = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view arg = argv[i];
    if (arg == "--plan") plan_kind = argv[i + 1];
    else if (arg == "--tool") tool = argv[i + 1];
    else if (arg == "--shape") shape = argv[i + 1];
    else if (arg == "--steps") steps = std::atoi(argv[i + 1]);
    else if (arg == "--repeat") repeat = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  auto loaded = dagent::Runtime::load("", {"history.enabled=false", "memory.enabled=false", "planner.max_steps=10000",
                                           "performance.parallel_execution.max_parallel_steps=64"});
  if (auto* problems = std::get_if<std::vector<std::string>>(&loaded)) {
    for (const auto& p : *problems) std::fprintf(stderr, "%s\n", p.c_str());
    return 2;
  }
  auto& rt = std::get<dagent::Runtime>(loaded);
  if (tool == "cpp") (void)rt.register_tool(std::make_shared<CppNoop>());
  else (void)rt.register_tool(std::make_shared<BlockingNoop>());

  char dir_template[] = "/tmp/bench_tool_overhead.XXXXXX";
  const std::filesystem::path ws = ::mkdtemp(dir_template);
  const bool builtin = plan_kind == "builtin";
  const json::value plan = builtin ? builtin_plan() : trivial_plan(steps, shape == "chained");
  const int calls = builtin ? 20 : steps;

  std::vector<double> wall_ms;
  (void)rt.run_plan(plan, {}, ws);  // warm-up: the worker pool, the first allocations
  for (int r = 0; r < repeat; ++r) {
    const auto t0 = Clock::now();
    auto outcome = rt.run_plan(plan, {}, ws);
    wall_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (outcome.exit_code() != 0) {
      std::fprintf(stderr, "run failed: %s\n",
                   outcome.problems.empty() ? outcome.result.error.c_str() : outcome.problems.front().c_str());
      return 1;
    }
  }
  std::filesystem::remove_all(ws);
  const double med = median(wall_ms);
  const double best = *std::min_element(wall_ms.begin(), wall_ms.end());
  std::printf("json {\"side\": \"c++\", \"plan\": \"%s\", \"tool\": \"%s\", \"shape\": \"%s\", \"steps\": %d, "
              "\"repeat\": %d, \"median_ms\": %.3f, \"best_ms\": %.3f, \"median_us_per_call\": %.2f}\n",
              plan_kind.c_str(), builtin ? "builtin" : tool.c_str(), builtin ? "-" : shape.c_str(), calls, repeat, med,
              best, med * 1000.0 / calls);
  return 0;
}
