#include "mcp/mcp_tool.hpp"

#include <algorithm>

namespace dagent::mcp {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// A server's progress passed on to the step's observers (live view, recording): when the total is
// known, only when the whole percentage or the message changes, so a server that reports every
// step of a long job cannot flood the terminal or the recording.
struct ForwardProgress {
  ToolContext ctx;
  int last_percent = -1;
  std::string last_message;
  void operator()(const Progress& p) {
    if (p.total && *p.total > 0) {
      const int percent = static_cast<int>(std::clamp(100 * p.progress / *p.total, 0.0, 100.0));
      if (percent == last_percent && p.message == last_message) return;
      last_percent = percent;
    }
    last_message = p.message;
    ToolProgress out;
    out.progress = p.progress;
    out.total = p.total;
    out.message = p.message;
    ctx.report_progress(out);
  }
};

}  // namespace

McpTool::McpTool(Server* server, std::string server_name, RemoteTool tool)
    : server_(server), server_name_(std::move(server_name)), tool_(std::move(tool)), name_(server_name_ + "." + tool_.name) {}

asio::awaitable<ToolResult> McpTool::invoke(json::object params, ToolContext ctx) {
  if (!server_) {
    co_return tool_error(ToolErrc::unavailable, "MCP server '" + server_name_ +
                                                    "' is not started in this replay (--replay-tools answers "
                                                    "only recorded calls)");
  }
  std::function<void(const Progress&)> on_progress;
  if (ctx.on_progress) on_progress = ForwardProgress{ctx};
  co_return co_await server_->call(tool_.name, std::move(params), std::move(on_progress));
}

json::object McpTool::to_json() const {
  return json::object{{"name", name_}, {"description", tool_.description}, {"input_schema", tool_.input_schema}};
}

std::shared_ptr<McpTool> McpTool::from_json(const json::object& recorded) {
  const auto* name = recorded.if_contains("name");
  const auto* description = recorded.if_contains("description");
  const auto* schema = recorded.if_contains("input_schema");
  if (!name || !name->is_string() || !schema || !schema->is_object()) return nullptr;
  const std::string full(name->get_string());
  const auto dot = full.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == full.size()) return nullptr;
  RemoteTool tool;
  tool.name = full.substr(dot + 1);
  if (description && description->is_string()) tool.description = description->get_string();
  tool.input_schema = schema->get_object();
  return std::make_shared<McpTool>(nullptr, full.substr(0, dot), std::move(tool));
}

}  // namespace dagent::mcp
