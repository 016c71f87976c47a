#pragma once
// What a run produces (SPEC.md §5) and the events it emits while it goes: plain structs, filled
// by the runtime from its executor's and planner's own types.

#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "dagent/run_common.hpp"  // IWYU pragma: export

namespace dagent {

/// One item of a for_each step. Times are milliseconds since the run started.
struct ItemResult {
  int index = 0;
  StepStatus status = StepStatus::pending;  ///< skipped: the run was interrupted before it started
  int attempts = 0;                         ///< 0: kept from an earlier run (--resume)
  double started_ms = 0;
  double finished_ms = 0;
  std::string error;
};

/// One step's outcome. Times are milliseconds since the run started (monotonic clock).
struct StepResult {
  int id = 0;
  std::string action;
  int level = 0;
  StepStatus status = StepStatus::pending;
  int attempts = 0;
  double started_ms = 0;
  double finished_ms = 0;
  boost::json::value output;     ///< null unless succeeded
  std::string error;             ///< why it failed or was skipped; empty otherwise
  /// It failed because its tool (or a judge) could not be reached (ToolErrc::unavailable): the
  /// run exits 3, not 1.
  bool unavailable = false;
  VerificationStatus verification = VerificationStatus::not_requested;
  std::string verification_reason;
  /// tools.approval: "allow", "deny" or "allow_always" and how it was given ("terminal", "flag",
  /// "callback", "always", "recording"); empty when the step needed no approval or none was given.
  std::string approval;
  std::string approval_by;
  /// for_each: the step fanned out; `output` is the list of the items' outputs, in item order.
  bool fan_out = false;
  std::vector<ItemResult> items;  ///< for_each: one per element of the list, in order
};

struct RunResult {
  std::string run_id;
  std::string task;
  RunStatus status = RunStatus::failed;
  boost::json::value plan;                 ///< the executed plan, as given
  std::vector<std::vector<int>> levels;    ///< step ids per level
  std::vector<int> critical_path;          ///< step ids on a longest dependency chain
  std::vector<StepResult> steps;           ///< in plan order
  std::string answer;
  std::string intent;                      ///< what intent analysis or a keyword route made of the goal
  int plan_attempts = 0;                   ///< planning calls: 1, or 2 after a repair (0: fixed plan)
  int replans = 0;                         ///< times new steps were planned after execution
  std::string error;                       ///< run-level problem (e.g. "interrupted"); empty otherwise
  bool interrupted = false;
  RunMetrics metrics;
};

/// A change of one step's state, delivered on the event loop as it happens.
struct StepEvent {
  int step_id = 0;
  std::string_view action;
  StepStatus status = StepStatus::pending;
  VerificationStatus verification = VerificationStatus::not_requested;
  int attempt = 0;
  double at_ms = 0;
  std::string_view message;  ///< error, skip reason or verification reason; may be empty
  /// for_each steps: the item this event is about (-1: the step itself), the number of items
  /// (-1: not a for_each step, or its list is not known yet) and how many have finished / failed.
  int item = -1;
  int items = -1;
  int items_done = 0;
  int items_failed = 0;
};

/// A planner phase starting or finishing (plan_step: one streamed step arrived), on the loop.
struct PlanningEvent {
  PlanningPhase phase = PlanningPhase::planning;
  bool finished = false;
  double at_ms = 0;             ///< since the run started
  std::string_view detail;      ///< e.g. the intent, the route, the problems; may be empty
};

/// SPEC §5 JSON of a result (without the internal `slot` fields of the CLI's result files).
boost::json::object to_json(const RunResult& r);

}  // namespace dagent
