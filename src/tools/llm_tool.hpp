#pragma once
// The `llm` tool (SPEC §7): one chat call through the runtime's LLM provider.

#include <string>

#include "dagent/tool.hpp"
#include "net/llm_provider.hpp"

namespace dagent::tools {

/// Maps a provider failure to a tool failure: unreachable, TLS, auth and breaker failures are
/// ToolErrc::unavailable (the run exits 3); other API errors are ToolErrc::failed.
ToolError to_tool_error(const net::LlmError& e);

class LlmTool final : public Tool {
 public:
  /// `provider` must outlive the tool; `default_model` is llm.model.
  LlmTool(net::LlmProvider& provider, std::string default_model)
      : provider_(provider), default_model_(std::move(default_model)) {}

  std::string_view name() const override { return "llm"; }
  std::string_view description() const override;
  const boost::json::object& parameters_schema() const override;
  bool uses_llm() const override { return true; }
  boost::asio::awaitable<ToolResult> invoke(boost::json::object params, ToolContext ctx) override;

 private:
  net::LlmProvider& provider_;
  std::string default_model_;
};

}  // namespace dagent::tools
