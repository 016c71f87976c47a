#pragma once
// What the scheduler produces for a run and the events it emits: the public results' fields plus
// the scheduler's own (each step's concurrency `slot`, the tool's `error_code`). The runtime turns
// them into the public dagent::RunResult / StepEvent at its boundary (runtime/public_result.hpp);
// the CLI's result files and `dagent report` keep the slots (SPEC §5 JSON with `slot`).

#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>

#include "dagent/run_common.hpp"

namespace dagent::executor {

/// One item of a for_each step. Times are milliseconds since the run started.
struct ItemResult {
  int index = 0;
  StepStatus status = StepStatus::pending;  ///< skipped: the run was interrupted before it started
  int attempts = 0;                         ///< 0: kept from an earlier run (--resume)
  double started_ms = 0;
  double finished_ms = 0;
  int slot = -1;                            ///< concurrency slot it ran in, -1 if it never ran
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
  int slot = -1;                 ///< concurrency slot the step ran in (trace track), -1 if it never ran
  boost::json::value output;     ///< null unless succeeded
  std::string error;             ///< why it failed or was skipped; empty otherwise
  boost::system::error_code error_code;  ///< the tool's ToolErrc when it failed (ToolErrc::unavailable: exit 3)
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

/// A run as the scheduler and the agent loop fill it.
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
  int slot = -1;
  double at_ms = 0;
  std::string_view message;  ///< error, skip reason or verification reason; may be empty
  /// for_each steps: the item this event is about (-1: the step itself), the number of items
  /// (-1: not a for_each step, or its list is not known yet) and how many have finished / failed.
  int item = -1;
  int items = -1;
  int items_done = 0;
  int items_failed = 0;
};

/// Whether `s` failed because its tool or judge could not be reached (SPEC §1: exit 3).
bool failed_unavailable(const StepResult& s) noexcept;

/// SPEC §5 JSON of a result, with each step's and item's `slot` (the CLI's result file, the
/// service's snapshots, `dagent report`). One writer with dagent::to_json (run_types.cpp).
boost::json::object to_json(const RunResult& r);

}  // namespace dagent::executor
