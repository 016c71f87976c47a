#pragma once
// Merges embedding requests from concurrent callers into requests of up to batch_size inputs,
// sent when full or after max_delay (performance.batch_embeddings). Runs on the event loop.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "net/llm_provider.hpp"

namespace dagent::memory {

struct BatcherOptions {
  bool enabled = true;          ///< false: one input per request, sent at once
  std::size_t batch_size = 100;
  std::chrono::milliseconds max_delay{10};
  std::string model;            ///< llm.embedding_model
  std::optional<int> dimensions;  ///< asks the model for shorter vectors (memory.dimensions)
};

/// Not thread-safe: call embed() on the loop given to the constructor. The provider must outlive
/// every request the batcher sent: requests finish even if their callers were cancelled or the
/// batcher is gone. Destroying the batcher fails the calls whose texts were not sent yet.
class EmbeddingBatcher {
 public:
  EmbeddingBatcher(boost::asio::any_io_executor loop, net::LlmProvider& provider, BatcherOptions options);
  EmbeddingBatcher(const EmbeddingBatcher&) = delete;
  EmbeddingBatcher& operator=(const EmbeddingBatcher&) = delete;
  ~EmbeddingBatcher();

  /// The vectors of `texts` in order (one EmbedResponse holding all of them). The texts join the
  /// queue shared with other callers; a request that fails fails every caller with a text in it.
  /// `usage` is the caller's share of its requests' usage, split by input length, so the
  /// shares of all callers add up to what the provider reported. A cancelled caller returns
  /// NetErrc::cancelled at once; its texts not yet sent are dropped. What the requests cost counts
  /// to `meter` (null: none) as the .cpp's settle() splits it: each request to the caller whose
  /// text opened it, the tokens by input length.
  boost::asio::awaitable<net::LlmResult<net::EmbedResponse>> embed(std::vector<std::string> texts,
                                                                   std::shared_ptr<net::CallMeter> meter = {});

  /// Embedding requests sent so far.
  std::int64_t requests_sent() const noexcept;
  /// Embedding requests sent and not finished yet.
  std::int64_t requests_in_flight() const noexcept;

  struct Waiter;  // one embed() call's texts, results and wake-up timer (defined in the .cpp)
  struct State;   // the queue, the delay timer and the counters (defined in the .cpp)

 private:
  // Shared with the delay timer's handler and the requests in flight, which may outlive us.
  std::shared_ptr<State> state_;
};

}  // namespace dagent::memory
