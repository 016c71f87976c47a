#pragma once
// The `llm` tool (SPEC §7): one chat call through the runtime's LLM provider.

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "dagent/tool.hpp"
#include "net/llm_provider.hpp"

namespace dagent::tools {

/// Maps a provider failure to a tool failure: unreachable, TLS, auth and breaker failures are
/// ToolErrc::unavailable (the run exits 3); other API errors are ToolErrc::failed.
ToolError to_tool_error(const net::LlmError& e);

/// What the `llm` tool allows a plan.
struct LlmToolOptions {
  std::string default_model;            ///< llm.model: used when a step names none
  std::vector<std::string> models;      ///< llm.models: the other models a step may name
  std::int64_t max_tokens_per_call = 0; ///< limits.max_tokens_per_call: a larger max_tokens is clamped,
                                        ///< a missing one set to it; 0: no cap
};

class LlmTool final : public Tool {
 public:
  /// `provider` must outlive the tool.
  LlmTool(net::LlmProvider& provider, LlmToolOptions options) : provider_(provider), options_(std::move(options)) {}
  /// `default_model` is llm.model, the only model allowed; no max_tokens cap.
  LlmTool(net::LlmProvider& provider, std::string default_model)
      : LlmTool(provider, LlmToolOptions{.default_model = std::move(default_model)}) {}

  /// The options of `cfg`: llm.model, llm.models, limits.max_tokens_per_call.
  static LlmToolOptions options_of(const config::Config& cfg);

  std::string_view name() const override { return "llm"; }
  std::string_view description() const override;
  const boost::json::object& parameters_schema() const override;
  bool uses_llm() const override { return true; }
  boost::asio::awaitable<ToolResult> invoke(boost::json::object params, ToolContext ctx) override;

 private:
  net::LlmProvider& provider_;
  LlmToolOptions options_;
};

}  // namespace dagent::tools
