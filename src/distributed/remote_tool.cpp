#include "distributed/remote_tool.hpp"

#include <utility>

#include "dagent/workspace.hpp"

namespace dagent::distributed {

RemoteTool::RemoteTool(ToolSpec spec, Coordinator& coordinator, std::chrono::milliseconds step_timeout)
    : spec_(std::move(spec)), coordinator_(&coordinator), step_timeout_(step_timeout) {}

boost::asio::awaitable<ToolResult> RemoteTool::invoke(boost::json::object params, ToolContext ctx) {
  if (!ctx.workspace) co_return tool_error(ToolErrc::failed, "a remote call needs the run's workspace");
  Job job;
  job.run = coordinator_->run();
  job.step = ctx.step_id;
  job.item = ctx.item;
  job.attempt = ctx.attempt;
  job.action = spec_.name;
  job.key = job_key(job.run, job.step, job.item, job.attempt, job.action, params);
  job.params = std::move(params);
  job.timeout_ms = step_timeout_.count();
  job.workspace = ctx.workspace->root().string();
  co_return co_await coordinator_->call(std::move(job));
}

}  // namespace dagent::distributed
