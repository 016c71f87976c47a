#pragma once
// A tool of an MCP server as a dagent Tool, named `SERVER.TOOL`.

#include <memory>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "dagent/tool.hpp"
#include "mcp/server.hpp"

namespace dagent::mcp {

class McpTool final : public Tool {
 public:
  /// `server` null: a tool known from a recording (--replay-tools answers its calls; invoking it
  /// fails).
  McpTool(Server* server, std::string server_name, RemoteTool tool);

  std::string_view name() const override { return name_; }
  std::string_view description() const override { return tool_.description; }
  const boost::json::object& parameters_schema() const override { return tool_.input_schema; }
  boost::asio::awaitable<ToolResult> invoke(boost::json::object params, ToolContext ctx) override;

  const std::string& server_name() const noexcept { return server_name_; }
  const RemoteTool& remote() const noexcept { return tool_; }

  /// The recording's form of this tool ({"name", "description", "input_schema"}), and back.
  boost::json::object to_json() const;
  static std::shared_ptr<McpTool> from_json(const boost::json::object& recorded);

 private:
  Server* server_;
  std::string server_name_;
  RemoteTool tool_;
  std::string name_;
};

}  // namespace dagent::mcp
