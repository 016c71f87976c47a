#pragma once
// A tool whose calls run on `dagent worker` processes (README "Running on many machines").

#include <chrono>
#include <string_view>

#include "dagent/tool.hpp"
#include "distributed/coordinator.hpp"
#include "distributed/job.hpp"

namespace dagent::distributed {

/// Same name, description and schema as the workers' tool; invoke() sends a Job through the
/// coordinator and returns the worker's result. The coordinator must outlive it.
class RemoteTool final : public Tool {
 public:
  RemoteTool(ToolSpec spec, Coordinator& coordinator, std::chrono::milliseconds step_timeout);

  std::string_view name() const override { return spec_.name; }
  std::string_view description() const override { return spec_.description; }
  const boost::json::object& parameters_schema() const override { return spec_.parameters; }
  bool runs_on_worker() const override { return true; }
  boost::asio::awaitable<ToolResult> invoke(boost::json::object params, ToolContext ctx) override;

 private:
  ToolSpec spec_;
  Coordinator* coordinator_;
  std::chrono::milliseconds step_timeout_;
};

}  // namespace dagent::distributed
