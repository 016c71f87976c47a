#pragma once
// --replay-tools: answers each tool call from the recording (matched by step, for_each item, action
// and resolved parameters; repeated calls in their recorded order) instead of running the tool.

#include <deque>
#include <map>
#include <string>

#include "executor/tool_observer.hpp"
#include "record/recording.hpp"

namespace dagent::runtime {

class ToolReplay final : public executor::ToolObserver {
 public:
  /// Indexes the "tool" events of `recording`; `next` (may be null) is told of every call too.
  /// `memory_only`: answer only memory_add and memory_search, whose results depend on the memory's
  /// state and on the order concurrent adds finished in, and let every other tool run.
  ToolReplay(const record::Recording& recording, executor::ToolObserver* next, bool memory_only = false);

  /// The recorded result, or a failure naming the step when the recording has no such call.
  std::optional<ToolResult> answer(executor::CallId call, std::string_view action,
                                   const boost::json::object& params) override;
  void called(executor::CallId call, std::string_view action, const boost::json::object& params,
              const ToolResult& result) override;

 private:
  std::map<std::string, std::deque<ToolResult>> calls_;
  executor::ToolObserver* next_;
  bool memory_only_;
};

}  // namespace dagent::runtime
