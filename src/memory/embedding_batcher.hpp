#pragma once
// Merges embedding requests from concurrent callers into requests of up to batch_size inputs,
// sent when full or after max_delay (performance.batch_embeddings). Runs on the event loop.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "net/llm_provider.hpp"

namespace dagent::memory {

struct BatcherOptions {
  bool enabled = true;          ///< false: one input per request, sent at once
  std::size_t batch_size = 100;
  std::chrono::milliseconds max_delay{10};
  std::string model;            ///< llm.embedding_model
  std::optional<int> dimensions;  ///< asks the model for shorter vectors (memory.dimensions)
};

/// Not thread-safe: call embed() on the loop given to the constructor. The batcher must outlive
/// every embed() call; requests it has sent finish even if their callers were cancelled.
class EmbeddingBatcher {
 public:
  EmbeddingBatcher(boost::asio::any_io_executor loop, net::LlmProvider& provider, BatcherOptions options);
  EmbeddingBatcher(const EmbeddingBatcher&) = delete;
  EmbeddingBatcher& operator=(const EmbeddingBatcher&) = delete;
  ~EmbeddingBatcher();

  /// The vectors of `texts` in order (one EmbedResponse holding all of them). The texts join the
  /// queue shared with other callers; a request that fails fails every caller with a text in it.
  boost::asio::awaitable<net::LlmResult<net::EmbedResponse>> embed(std::vector<std::string> texts);

  /// Embedding requests sent so far.
  std::int64_t requests_sent() const noexcept { return requests_sent_; }

  struct Waiter;  // one embed() call's texts, results and wake-up timer (defined in the .cpp)

 private:
  struct Item {
    std::shared_ptr<Waiter> waiter;
    std::size_t index = 0;  ///< which of the waiter's texts
  };

  void enqueue(const std::shared_ptr<Waiter>& waiter);
  void flush();  ///< sends up to batch_size queued items as one request
  void arm_timer();

  boost::asio::any_io_executor loop_;
  net::LlmProvider& provider_;
  BatcherOptions options_;
  std::deque<Item> queue_;
  boost::asio::steady_timer timer_;
  bool timer_armed_ = false;
  std::int64_t requests_sent_ = 0;
};

}  // namespace dagent::memory
