#pragma once
// Plan validation and DAG derivation: dependencies (explicit ∪ referenced), levels, critical path.

#include <cstddef>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>

#include "executor/plan.hpp"
#include "executor/reference.hpp"

namespace dagent {
class Tool;
}
namespace dagent::tools {
class Registry;
}

namespace dagent::executor {

struct AnalysisOptions {
  bool dependency_analysis = true;            ///< false: `$step` references do not order steps
  int max_steps = 50;
  const boost::json::object* inputs = nullptr;  ///< when given, `$input.x` must name one of them
};

/// What the executor needs to know about one step, by its index in the plan.
struct StepInfo {
  std::vector<std::size_t> deps;        ///< indices of the steps it waits for
  std::vector<std::size_t> dependents;  ///< indices of the steps that wait for it
  int level = 0;
  int height = 1;                       ///< steps on the longest chain from here to the end, itself included
  CompiledParams params;
  Tool* tool = nullptr;
  bool fan_out = false;     ///< the step has for_each
  CompiledParams for_each;  ///< for_each as the parameter {"for_each": ...}: a whole reference or a list
};

struct Analysis {
  std::vector<StepInfo> steps;                     ///< parallel to Plan::steps
  std::vector<std::vector<std::size_t>> levels;    ///< step indices per level
  std::vector<std::size_t> critical_path;          ///< step indices of a longest chain, first to last
  std::unordered_map<int, std::size_t> index_of;   ///< step id → index
  std::vector<PlanProblem> problems;               ///< every reason the plan cannot run

  bool ok() const noexcept { return problems.empty(); }
};

/// Validates `plan` against SPEC §3 and derives its DAG. Reports every problem at once; the DAG
/// fields are filled only when there is no cycle and no dangling dependency.
Analysis analyze(const Plan& plan, const tools::Registry& registry, const AnalysisOptions& options = {});

/// Admits the steps of a plan that arrives one step at a time (streamed planning). A step is
/// admitted once it is valid on its own and every step it depends on was admitted; admitted steps
/// are appended to plan() and analysis() (deps, dependents, level; height 1), in an order where
/// dependencies come first. Steps with problems are never admitted, nor steps past max_steps:
/// analyze() on the finished plan reports them. Each add() costs time linear in the steps it
/// admits and their dependencies, however many steps wait.
class IncrementalAnalysis {
 public:
  IncrementalAnalysis(const tools::Registry& registry, AnalysisOptions options);

  /// Adds `step`; returns the indices of the steps admitted because of it (itself and any that
  /// waited for it), in admission order.
  std::vector<std::size_t> add(Step step);

  const Plan& plan() const noexcept { return plan_; }
  const Analysis& analysis() const noexcept { return analysis_; }
  /// Steps received but not admitted yet (waiting for a dependency).
  std::size_t waiting() const noexcept { return waiting_.size(); }

 private:
  struct Pending {
    Step step;
    StepInfo info;
    std::vector<std::pair<int, bool>> deps;  ///< step id, whether it orders
    std::size_t missing = 0;                 ///< distinct dependencies not admitted yet
  };
  void admit(Pending p, std::vector<std::size_t>& admitted);

  const tools::Registry& registry_;
  AnalysisOptions options_;
  Plan plan_;
  Analysis analysis_;
  std::unordered_map<int, Pending> waiting_;               ///< by step id
  std::unordered_map<int, std::vector<int>> waiting_on_;  ///< step id → ids of the steps waiting for it
  std::unordered_set<int> seen_ids_;
};

}  // namespace dagent::executor
