#pragma once
// The `memory_search` tool (SPEC §7): the memory's entries closest to a query.

#include <memory>

#include "dagent/memory.hpp"
#include "dagent/tool.hpp"

namespace dagent::memory {
class Memory;
}

namespace dagent::net {
struct CallMeter;
}

namespace dagent::tools {

class MemorySearchTool final : public Tool {
 public:
  /// `memory` must outlive the tool; `default_k` is memory.recall_k. Its embeddings count to
  /// `meter` (a run's; null: none).
  MemorySearchTool(memory::Memory& memory, int default_k, std::shared_ptr<net::CallMeter> meter = {})
      : memory_(memory), default_k_(default_k), meter_(std::move(meter)) {}

  std::string_view name() const override { return "memory_search"; }
  std::string_view description() const override;
  const boost::json::object& parameters_schema() const override;
  boost::asio::awaitable<ToolResult> invoke(boost::json::object params, ToolContext ctx) override;

 private:
  memory::Memory& memory_;
  int default_k_;
  std::shared_ptr<net::CallMeter> meter_;
};

/// A hit as memory_search returns it: {"id", "text", "score", "metadata"}; an ingested chunk's
/// metadata also names its "source" file and byte offsets "begin" and "end".
boost::json::object to_json(const MemoryHit& hit);

}  // namespace dagent::tools
