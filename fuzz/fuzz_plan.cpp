// Plan parsing and DAG analysis (src/executor/plan, analysis): a plan file's text through
// parse_json_text, parse_plan, analyze and IncrementalAnalysis, with the built-in tools' schemas.
// Checks that the derived DAG is a DAG of the plan (levels, heights, critical path, mirrored
// edges), that the streamed admission agrees with the whole analysis, and that every problem
// message is valid UTF-8 (they reach --json).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>

#include "check.hpp"
#include "executor/analysis.hpp"
#include "executor/plan.hpp"
#include "text/utf8.hpp"
#include "tools/registry.hpp"

namespace {

namespace json = boost::json;
using namespace dagent::executor;

using dagent::fuzz::check;

const dagent::tools::Registry& registry() {
  static const auto r = dagent::tools::make_builtin_registry({"read_file", "write_file", "list_dir", "search_files"});
  return r;
}

void check_messages(const std::vector<PlanProblem>& problems) {
  for (const auto& p : problems) check(dagent::text::is_valid_utf8(p.to_string()), "problem message is not UTF-8");
}

void check_dag(const Plan& plan, const Analysis& a) {
  const std::size_t n = plan.steps.size();
  check(a.steps.size() == n, "analysis steps not parallel to the plan");
  check(a.index_of.size() == n, "index_of does not cover the plan");
  for (std::size_t i = 0; i < n; ++i) check(a.index_of.at(plan.steps[i].id) == i, "index_of is wrong");
  std::size_t in_levels = 0;
  for (std::size_t l = 0; l < a.levels.size(); ++l) {
    check(!a.levels[l].empty(), "an empty level");
    for (auto i : a.levels[l]) {
      check(i < n && a.steps[i].level == static_cast<int>(l), "a step in the wrong level");
      ++in_levels;
    }
  }
  check(in_levels == n, "levels do not partition the steps");
  int longest = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& s = a.steps[i];
    int level = 0, height = 1;
    for (auto d : s.deps) {
      check(d < n && d != i, "a dependency out of range or on itself");
      check(a.steps[d].level < s.level, "a dependency on the same or a later level");
      check(std::count(a.steps[d].dependents.begin(), a.steps[d].dependents.end(), i) == 1,
            "dependents do not mirror deps");
      level = std::max(level, a.steps[d].level + 1);
    }
    for (auto d : s.dependents) {
      check(d < n && std::count(a.steps[d].deps.begin(), a.steps[d].deps.end(), i) == 1,
            "deps do not mirror dependents");
      height = std::max(height, a.steps[d].height + 1);
    }
    check(s.level == level, "a level is not the longest path from a source");
    check(s.height == height, "a height is not the longest path to a sink");
    // Every explicit dependency orders the step.
    for (int dep : plan.steps[i].dependencies)
      check(std::count(s.deps.begin(), s.deps.end(), a.index_of.at(dep)) == 1, "an explicit dependency was lost");
    longest = std::max(longest, height);
  }
  if (n == 0) return;
  check(a.critical_path.size() == static_cast<std::size_t>(longest), "the critical path is not a longest chain");
  check(a.steps[a.critical_path.front()].deps.empty(), "the critical path does not start at a source");
  for (std::size_t k = 1; k < a.critical_path.size(); ++k) {
    const auto& deps = a.steps[a.critical_path[k]].deps;
    check(std::count(deps.begin(), deps.end(), a.critical_path[k - 1]) == 1, "the critical path is not a chain");
  }
}

// Feeding the steps one by one admits every step of a valid plan, each after its dependencies,
// with the same edges and levels as the whole analysis.
void check_incremental(const Plan& plan, const Analysis& whole, const AnalysisOptions& options) {
  IncrementalAnalysis inc(registry(), options);
  std::size_t admitted_total = 0;
  for (const auto& step : plan.steps) {
    for (auto idx : inc.add(step)) {
      check(idx == admitted_total++, "admission indices are not consecutive");
      for (auto d : inc.analysis().steps[idx].deps) check(d < idx, "a step admitted before its dependency");
    }
  }
  check(admitted_total == inc.plan().steps.size(), "admitted steps and plan disagree");
  check(admitted_total + inc.waiting() <= plan.steps.size(), "more steps admitted than given");
  if (!whole.ok()) return;
  check(inc.waiting() == 0 && admitted_total == plan.steps.size(), "a valid plan was not admitted whole");
  const auto& ia = inc.analysis();
  for (std::size_t k = 0; k < admitted_total; ++k) {
    const int id = inc.plan().steps[k].id;
    const auto& mine = ia.steps[k];
    const auto& theirs = whole.steps[whole.index_of.at(id)];
    check(mine.level == theirs.level, "incremental level differs");
    std::vector<int> a, b;
    for (auto d : mine.deps) a.push_back(inc.plan().steps[d].id);
    for (auto d : theirs.deps) b.push_back(plan.steps[d].id);
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    check(a == b, "incremental dependencies differ");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed_json = parse_json_text(text);
  {
    // The plan file reader accepts exactly what Boost.JSON's own parse accepts with the same
    // options: nothing after the value is dropped silently.
    json::parse_options opts;
    opts.allow_comments = true;
    opts.allow_trailing_commas = true;
    boost::system::error_code ec;
    const json::value reference = json::parse(text, ec, {}, opts);
    check(parsed_json.has_value() == !ec, "parse_json_text disagrees with json::parse");
    if (parsed_json) check(*parsed_json == reference, "parse_json_text returned another value");
    else check(dagent::text::is_valid_utf8(parsed_json.error()), "parse error is not UTF-8");
  }
  if (!parsed_json) return 0;
  const ParsedPlan parsed = parse_plan(*parsed_json);
  check_messages(parsed.problems);
  const json::object inputs{{"topic", "x"}, {"path", "a.txt"}};
  for (int variant = 0; variant < 3; ++variant) {
    AnalysisOptions options;
    options.dependency_analysis = variant != 1;
    if (variant == 2) {
      options.inputs = &inputs;
      options.max_steps = 4;
    }
    const Analysis a = analyze(parsed.plan, registry(), options);
    check_messages(a.problems);
    if (a.ok()) check_dag(parsed.plan, a);
    check_incremental(parsed.plan, a, options);
  }
  return 0;
}
