#pragma once
// Writes a run's own events to its recording (--record): the header, the plan a goal run
// executes, each tool call with its resolved parameters and result, each step transition, the
// memories recalled for planning, and the end. LLM exchanges are written by RecordingProvider.

#include <string>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "executor/run_types.hpp"
#include "executor/approval_gate.hpp"
#include "executor/tool_observer.hpp"
#include "record/recording.hpp"

namespace dagent::runtime {

class RunRecorder final : public executor::ToolObserver {
 public:
  /// `writer` must outlive the recorder; `next` (optional) also sees every call.
  explicit RunRecorder(record::RecordWriter& writer) : writer_(writer) {}

  void header(boost::json::object header);
  void plan(const boost::json::array& steps);
  void recall(const std::vector<std::string>& memories);
  void step(const executor::StepEvent& event);
  void end(const executor::RunResult& result);
  /// tools.approval: one decision (which call, what, how it was given).
  void approval(const executor::ApprovalRecord& record);
  /// A "tool" event; a for_each item's carries "item": its index.
  void called(executor::CallId call, std::string_view action, const boost::json::object& params,
              const ToolResult& result) override;

 private:
  record::RecordWriter& writer_;
};

/// The "error" object of a failed tool call or LLM exchange: {"code": "<category>:<value>", "message"}.
boost::json::object to_json(const ToolError& error);
/// The ToolError of a recorded "error" object (an unknown category becomes ToolErrc::failed).
ToolError tool_error_from_json(const boost::json::object& error);

}  // namespace dagent::runtime
