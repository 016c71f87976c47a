#pragma once
// The runtime's memory: texts embedded through the batcher and kept in the persistent index.
// Used by the memory tools, `dagent ingest`, `dagent memory search`, background memory updates
// and recall in planning. Runs on the event loop; FAISS work goes to the worker pool.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include "config/config.hpp"
#include "memory/embedding_batcher.hpp"
#include "memory/memory_error.hpp"
#include "memory/memory_index.hpp"
#include "net/llm_provider.hpp"

namespace dagent::memory {

/// A search hit with its own copy of the entry's fields.
struct Found {
  std::int64_t id = 0;
  float score = 0;
  std::string text;
  boost::json::object metadata;
  std::string source;
  std::int64_t begin = 0;
  std::int64_t end = 0;
};

/// What `dagent ingest` did.
struct IngestReport {
  std::size_t files_seen = 0;
  std::size_t files_ingested = 0;   ///< new or changed files whose chunks were added
  std::size_t files_unchanged = 0;  ///< skipped: same content hash as last time
  std::size_t files_skipped = 0;    ///< not text (a NUL byte) or unreadable; see `warnings`
  std::size_t chunks_added = 0;
  std::size_t chunks_replaced = 0;  ///< chunks of changed files marked deleted
  std::vector<std::string> warnings;
};

/// Progress of an ingest, reported on the loop after each embedding request completes.
struct IngestProgress {
  std::size_t files_done = 0;
  std::size_t files_total = 0;
  std::size_t chunks_done = 0;
  std::size_t chunks_total = 0;  ///< chunks known so far (grows as files are read)
};

class Memory {
 public:
  /// `provider` must outlive the memory; `pool` runs file reads and FAISS calls.
  Memory(boost::asio::any_io_executor loop, boost::asio::any_io_executor pool, net::LlmProvider& provider,
         const config::Config& cfg);
  ~Memory();

  /// Loads the index under memory.path (relative to the config's folder) on first call; later
  /// calls return the first outcome. Blocking: call before the loop runs.
  MemoryResult<void> open();
  bool is_open() const noexcept { return index_ != nullptr; }
  /// The folder holding the index.
  const std::filesystem::path& folder() const noexcept { return folder_; }
  /// The open index (nullptr before open()).
  MemoryIndex* index() noexcept { return index_.get(); }

  /// Embeds `text` and stores it; returns its id. Saves in the background (see save()).
  boost::asio::awaitable<MemoryResult<std::int64_t>> add(std::string text, boost::json::object metadata);
  /// Embeds and stores several texts in one go (batched); returns their ids in order.
  boost::asio::awaitable<MemoryResult<std::vector<std::int64_t>>> add_many(std::vector<std::string> texts,
                                                                           std::vector<boost::json::object> metadata);
  /// The `k` entries closest to `query`, best first.
  boost::asio::awaitable<MemoryResult<std::vector<Found>>> search(std::string query, int k);
  /// Chunks, embeds and stores the text files under `paths` (folders recursively), skipping
  /// files whose content hash is unchanged and replacing the chunks of changed ones; saves at the end.
  boost::asio::awaitable<MemoryResult<IngestReport>> ingest(std::vector<std::filesystem::path> paths,
                                                            std::function<void(const IngestProgress&)> on_progress);
  /// Saves the index when it changed, on the pool; concurrent calls share one write and a call
  /// during a write waits for it and writes again.
  boost::asio::awaitable<MemoryResult<void>> save();

  const EmbeddingBatcher& batcher() const noexcept { return batcher_; }

 private:
  boost::asio::any_io_executor loop_;
  boost::asio::any_io_executor pool_;
  const config::Config& cfg_;
  std::filesystem::path folder_;
  EmbeddingBatcher batcher_;
  std::unique_ptr<MemoryIndex> index_;
  std::optional<MemoryError> open_error_;
  bool opened_ = false;
  bool saving_ = false;
  bool save_again_ = false;
};

}  // namespace dagent::memory
