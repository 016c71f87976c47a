#pragma once
// A seam around each tool call of a run: recording sees every call with its resolved parameters
// and result; replay can answer a call from a recording instead of invoking the tool.

#include <optional>
#include <string_view>

#include <boost/json/object.hpp>

#include "dagent/tool.hpp"

namespace dagent::executor {

class ToolObserver {
 public:
  virtual ~ToolObserver() = default;
  /// Called before a call: a result to use instead of invoking the tool, or nullopt to invoke it.
  virtual std::optional<ToolResult> answer(int step_id, std::string_view action, const boost::json::object& params) {
    (void)step_id, (void)action, (void)params;
    return std::nullopt;
  }
  /// Called after each call (invoked or answered) with its result.
  virtual void called(int step_id, std::string_view action, const boost::json::object& params,
                      const ToolResult& result) = 0;
};

}  // namespace dagent::executor
