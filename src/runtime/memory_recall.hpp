#pragma once
// The planner's recall, served by the memory: the goal's nearest entries, each clipped so the
// planning prompt stays small. One per run, so the query's embedding counts to the run's meter.

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "net/call_meter.hpp"
#include "planner/planner.hpp"

namespace dagent::memory {
class Memory;
}

namespace dagent::runtime {

class MemoryRecall final : public planner::Recall {
 public:
  /// `memory` must outlive the recall; its embeddings count to `meter` (null: none).
  MemoryRecall(memory::Memory& memory, std::shared_ptr<net::CallMeter> meter)
      : memory_(memory), meter_(std::move(meter)) {}

  /// "[source] text" per entry (no prefix without a source), secrets masked, each at most 800
  /// bytes; none when the memory cannot answer (planning goes on without memories).
  boost::asio::awaitable<std::vector<std::string>> recall(std::string goal, int k) override;

 private:
  memory::Memory& memory_;
  std::shared_ptr<net::CallMeter> meter_;
};

}  // namespace dagent::runtime
