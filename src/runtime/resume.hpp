#pragma once
// --resume: what an interrupted recorded run had finished, read from its recording.

#include <optional>
#include <vector>

#include <boost/json/array.hpp>

#include "dagent/run_result.hpp"
#include "record/recording.hpp"

namespace dagent::runtime {

struct ResumePoint {
  std::optional<boost::json::array> plan;  ///< the plan a goal run executed (its last "plan" event)
  std::vector<StepResult> kept;            ///< steps whose last transition was a success, with their outputs
  bool finished = false;                   ///< the last run recorded ended in success: nothing to resume
};

/// Steps recorded as succeeded (and not failed by verification) with the output of their last
/// successful tool call; a step whose output is missing (torn away) is run again.
ResumePoint resume_point(const record::Recording& recording);

}  // namespace dagent::runtime
