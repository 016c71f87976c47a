#pragma once
// A seam around each tool call of a run: recording sees every call with its resolved parameters
// and result; replay can answer a call from a recording instead of invoking the tool.

#include <optional>
#include <string_view>

#include <boost/json/object.hpp>

#include "dagent/tool.hpp"

namespace dagent::executor {

/// Which call: a step, and for a for_each step the item (its index in the list; -1 otherwise).
struct CallId {
  int step_id = 0;
  int item = -1;
};

class ToolObserver {
 public:
  virtual ~ToolObserver() = default;
  /// Called before a call: a result to use instead of invoking the tool, or nullopt to invoke it.
  virtual std::optional<ToolResult> answer(CallId call, std::string_view action, const boost::json::object& params) {
    (void)call, (void)action, (void)params;
    return std::nullopt;
  }
  /// Called after each call (invoked or answered) with its result.
  virtual void called(CallId call, std::string_view action, const boost::json::object& params,
                      const ToolResult& result) = 0;
};

}  // namespace dagent::executor
