#pragma once
// The runtime's memory: texts embedded through the batcher and kept in the persistent index.
// Used by the memory tools, `dagent ingest`, `dagent memory search`, background memory updates
// and recall in planning. Runs on the event loop; FAISS work goes to the worker pool.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include "config/config.hpp"
#include "dagent/memory.hpp"
#include "memory/embedding_batcher.hpp"
#include "memory/memory_error.hpp"
#include "memory/memory_index.hpp"
#include "net/llm_provider.hpp"

namespace dagent::memory {

class Memory {
 public:
  /// `provider` must outlive the memory; `pool` runs file reads and FAISS calls.
  Memory(boost::asio::any_io_executor loop, boost::asio::any_io_executor pool, net::LlmProvider& provider,
         const config::Config& cfg);
  ~Memory();

  /// Loads the index under memory.path (relative to the config's folder) on first call; later
  /// calls return the first outcome. Blocking: call before the loop runs.
  MemoryResult<void> open();
  /// The folder holding the index.
  const std::filesystem::path& folder() const noexcept { return folder_; }
  /// Closes the index and uses `folder` from the next open() on (replays use a scratch folder).
  /// Call between runs, with no operation underway.
  void use_folder(std::filesystem::path folder);

  /// Embeds `text` and stores it; returns its id once saved. Metadata the index could not read
  /// back (check_storable) is invalid_argument, before anything is embedded. The embedding's
  /// cost counts to `meter` (null: none), as EmbeddingBatcher::embed counts it.
  boost::asio::awaitable<MemoryResult<std::int64_t>> add(std::string text, boost::json::object metadata,
                                                         std::shared_ptr<net::CallMeter> meter = {});
  /// Embeds and stores several texts in one go (batched) and saves them; returns their ids in order.
  boost::asio::awaitable<MemoryResult<std::vector<std::int64_t>>> add_many(std::vector<std::string> texts,
                                                                           std::vector<boost::json::object> metadata,
                                                                           std::shared_ptr<net::CallMeter> meter = {});
  /// The `k` entries closest to `query`, best first, in the index as last saved by any process.
  /// The query's embedding counts to `meter` as for add().
  boost::asio::awaitable<MemoryResult<std::vector<MemoryHit>>> search(std::string query, int k,
                                                                      std::shared_ptr<net::CallMeter> meter = {});
  /// Chunks, embeds and stores the text files under `paths` (folders recursively), skipping
  /// files whose content hash is unchanged and replacing the chunks of changed ones. Saves at the
  /// end, and on the way whenever what waits grew as large as the index (a commit rewrites it all).
  boost::asio::awaitable<MemoryResult<IngestReport>> ingest(std::vector<std::filesystem::path> paths,
                                                            std::function<void(const IngestProgress&)> on_progress);

  struct IngestFile;    // a file being ingested (defined in the .cpp)
  struct PendingChunk;  // one of its chunks waiting to be embedded

 private:
  /// Embeds `texts` and checks the vectors fit the index; sets *dimension. Counts to `meter`.
  boost::asio::awaitable<MemoryResult<std::vector<float>>> embed(std::vector<std::string> texts, std::size_t* dimension,
                                                                 std::shared_ptr<net::CallMeter> meter);
  /// Embeds a window of chunks into `pending`; counts the files it completes.
  boost::asio::awaitable<MemoryResult<void>> store_window(std::vector<IngestFile>* files,
                                                          std::vector<PendingChunk>* window, Change* pending,
                                                          IngestReport* report, std::size_t* files_done);
  /// Saves `pending` (on the pool, under the folder lock) and empties it.
  boost::asio::awaitable<MemoryResult<void>> commit(Change* pending, IngestReport* report);
  /// Picks up what other processes saved (on the pool).
  boost::asio::awaitable<MemoryResult<void>> refresh();

  boost::asio::any_io_executor loop_;
  boost::asio::any_io_executor pool_;
  const config::Config& cfg_;
  std::filesystem::path folder_;
  EmbeddingBatcher batcher_;
  std::unique_ptr<MemoryIndex> index_;
  std::optional<MemoryError> open_error_;
  bool opened_ = false;
};

}  // namespace dagent::memory
