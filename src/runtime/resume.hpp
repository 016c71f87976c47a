#pragma once
// --resume: what an interrupted recorded run had finished, read from its recording.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/array.hpp>

#include "executor/run_types.hpp"
#include "record/recording.hpp"

namespace dagent::runtime {

struct ResumePoint {
  std::optional<boost::json::array> plan;  ///< the plan a goal run executed (its last "plan" event)
  /// Steps whose last transition was a success, with their outputs; and for_each steps cut short
  /// (status pending), with the items whose last call succeeded (executor::ItemResult succeeded, the output at
  /// its index of `output`): only the other items run again.
  std::vector<executor::StepResult> kept;
  std::string run_id;                      ///< the run id of the recording's header (distributed steps' keys)
  bool finished = false;                   ///< the last run recorded ended in success: nothing to resume
};

/// Steps recorded as succeeded (and not failed by verification) with the output of their last
/// successful tool call; a step whose output is missing (torn away) is run again. A for_each
/// step's items are matched by their index in the list.
ResumePoint resume_point(const record::Recording& recording);

/// A file a recording's header names (`field`: "task_ref" or "config"), relative to the
/// recording's folder. A recording is code (issue 13): the file is used only when it stays inside
/// that folder once symlinks and `..` are resolved. Returns the file (lexically normal, as joined),
/// std::nullopt when `ref` names no regular file there, or sets *refused to the error naming the
/// recording, the field and the path.
std::optional<std::filesystem::path> recorded_file(const std::filesystem::path& recording, std::string_view field,
                                                   std::string_view ref, std::string* refused);

}  // namespace dagent::runtime
