#pragma once
// A plan as plain data (SPEC.md §3), parsed from JSON.

#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

namespace dagent::executor {

/// One tool call of a plan.
struct Step {
  int id = 0;
  std::string action;
  boost::json::object parameters;
  std::vector<int> dependencies;           ///< the explicit list only
  std::optional<boost::json::value> verify;
  bool critical = false;
  /// Fan-out: a whole reference string ("$step2.entries") or an inline JSON array; the step runs
  /// once per element, with `$item` and `$index` in its parameters. Absent: an ordinary step.
  std::optional<boost::json::value> for_each;
};

struct Plan {
  std::vector<Step> steps;
};

/// A reason a plan cannot run; `step_id` 0 means the plan as a whole.
struct PlanProblem {
  int step_id = 0;
  std::string message;

  /// "step 3: unknown action 'foo'" or "plan: ...".
  std::string to_string() const;
};

/// A parsed plan and the structural problems found on the way (every one, not the first).
struct ParsedPlan {
  Plan plan;
  std::vector<PlanProblem> problems;
};

/// Reads a JSON array of steps, or {"steps": [...]}. Steps whose id is missing or invalid are
/// reported and left out; other malformed fields are reported and the step is kept.
ParsedPlan parse_plan(const boost::json::value& json);

/// Parses JSON text (a plan file; comments and trailing commas allowed); a syntax error names
/// its line and column.
boost::system::result<boost::json::value, std::string> parse_json_text(std::string_view text);

}  // namespace dagent::executor
