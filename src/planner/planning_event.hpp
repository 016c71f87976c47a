#pragma once
// The planner's progress events (the live view's planning lines, a service's event stream); the
// runtime hands them to RunOptions::on_planning as dagent::PlanningEvent.

#include <string_view>

#include "dagent/run_common.hpp"

namespace dagent::planner {

/// A planner phase starting or finishing (plan_step: one streamed step arrived), on the loop.
struct PlanningEvent {
  PlanningPhase phase = PlanningPhase::planning;
  bool finished = false;
  double at_ms = 0;             ///< since the run started
  std::string_view detail;      ///< e.g. the intent, the route, the problems; may be empty
};

}  // namespace dagent::planner
