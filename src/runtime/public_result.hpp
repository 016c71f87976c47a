#pragma once
// The runtime's boundary: the executor's and planner's own results and events turned into the
// public plain structs of dagent/run_result.hpp. The one place they are converted.

#include <functional>
#include <string>
#include <vector>

#include "dagent/run_result.hpp"
#include "dagent/runtime.hpp"
#include "executor/run_types.hpp"
#include "planner/planning_event.hpp"

namespace dagent::runtime {

/// A run as the runtime produced it (the executor's result, with slots and error codes), or the
/// reasons it could not start; the public RunOutcome is made from it by to_public.
struct Outcome {
  std::vector<std::string> problems;  ///< non-empty: invalid input (or no valid plan), nothing was executed
  bool unreachable = false;           ///< as RunOutcome::unreachable
  executor::RunResult result;

  /// SPEC §1 exit code, as RunOutcome::exit_code().
  int exit_code() const noexcept;
};

RunResult to_public(const executor::RunResult& r);
RunResult to_public(executor::RunResult&& r);  ///< moves the outputs, the plan and the texts
RunOutcome to_public(Outcome o);               ///< moves o's result
StepEvent to_public(const executor::StepEvent& e);
PlanningEvent to_public(const planner::PlanningEvent& e);

/// The caller's public observers, fed with the internal events.
struct PublicStepEvents {
  std::function<void(const StepEvent&)> user;
  void operator()(const executor::StepEvent& e) const { user(to_public(e)); }
};
struct PublicPlanningEvents {
  std::function<void(const PlanningEvent&)> user;
  void operator()(const planner::PlanningEvent& e) const { user(to_public(e)); }
};

}  // namespace dagent::runtime
