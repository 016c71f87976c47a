#pragma once
// The `memory_add` tool (SPEC §7): embeds a text and stores it in the runtime's memory.

#include <memory>

#include "dagent/tool.hpp"
#include "memory/memory_error.hpp"

namespace dagent::memory {
class Memory;
}

namespace dagent::net {
struct CallMeter;
}

namespace dagent::tools {

/// Maps a memory failure to a tool failure: an unreachable provider is ToolErrc::unavailable
/// (the run exits 3), a bad argument invalid_parameters, anything else failed.
ToolError to_tool_error(const memory::MemoryError& e);

class MemoryAddTool final : public Tool {
 public:
  /// `memory` must outlive the tool. Its embeddings count to `meter` (a run's; null: none).
  explicit MemoryAddTool(memory::Memory& memory, std::shared_ptr<net::CallMeter> meter = {})
      : memory_(memory), meter_(std::move(meter)) {}

  std::string_view name() const override { return "memory_add"; }
  std::string_view description() const override;
  const boost::json::object& parameters_schema() const override;
  boost::asio::awaitable<ToolResult> invoke(boost::json::object params, ToolContext ctx) override;

 private:
  memory::Memory& memory_;
  std::shared_ptr<net::CallMeter> meter_;
};

}  // namespace dagent::tools
