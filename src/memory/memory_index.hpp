#pragma once
// The memory's vector index: FAISS (flat or HNSW, inner product on normalized vectors) behind our
// own interface, ids mapped to text and metadata, saved atomically to one file under a folder.
// FAISS headers stay in memory_index.cpp.

#include <atomic>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "config/config.hpp"
#include "memory/memory_error.hpp"

namespace dagent::memory {

/// What an id stands for. `source`, `begin` and `end` locate an ingested chunk in its file.
struct Entry {
  std::string text;
  boost::json::object metadata;
  std::string source;      ///< the file an ingested chunk came from; empty otherwise
  std::int64_t begin = 0;  ///< byte offsets of the chunk in `source`
  std::int64_t end = 0;
  bool deleted = false;    ///< superseded (its file changed); never returned by search
};

/// A search result; `entry` stays valid while the index lives (entries are never moved).
struct Hit {
  std::int64_t id = 0;
  float score = 0;  ///< inner product of the normalized vectors (cosine similarity)
  const Entry* entry = nullptr;
};

struct IndexOptions {
  config::IndexKind kind = config::IndexKind::flat;
  int hnsw_m = 32;                ///< HNSW graph degree
  int hnsw_ef_construction = 40;  ///< HNSW build-time beam width
  int hnsw_ef_search = 64;        ///< HNSW search-time beam width (at least k is used)
};

/// Thread-safe: search, entry lookups and save share a lock; add and remove take it alone.
class MemoryIndex {
 public:
  /// The file that holds an index saved under `folder`.
  static std::filesystem::path file_in(const std::filesystem::path& folder);

  /// Opens the index saved under `folder`, or an empty one when nothing was saved yet. A saved
  /// index of another kind than `options.kind` is rebuilt as that kind from its stored vectors.
  /// Errors: corrupt (truncated, checksum, unparsable, a dimension that disagrees with the
  /// header), io_error. Leftover temporary files of an interrupted save are removed.
  static MemoryResult<std::unique_ptr<MemoryIndex>> open(std::filesystem::path folder, IndexOptions options = {});

  MemoryIndex(const MemoryIndex&) = delete;
  MemoryIndex& operator=(const MemoryIndex&) = delete;
  ~MemoryIndex();

  /// 0 until the first vector is added; then fixed.
  std::size_t dimension() const;
  /// Entries not marked deleted.
  std::size_t size() const;
  /// The embedding model the vectors came from (stored with the index); empty when unknown.
  std::string model() const;
  void set_model(std::string model);

  /// Adds `entries.size()` vectors, row-major in `vectors` (each `dimension` floats; normalized
  /// here, zero vectors refused); returns their ids. The first add fixes the dimension; later
  /// ones must match (dimension_mismatch, naming both).
  MemoryResult<std::vector<std::int64_t>> add(std::span<const float> vectors, std::size_t dimension,
                                              std::vector<Entry> entries);

  /// The `k` best live entries for `query` (normalized here), best first. Fewer when the index
  /// holds fewer. dimension_mismatch when the query's size differs; empty on an empty index.
  MemoryResult<std::vector<Hit>> search(std::span<const float> query, int k) const;

  /// The entry with `id`, or nullptr.
  const Entry* entry(std::int64_t id) const;

  /// Marks every entry ingested from `source` deleted; returns how many.
  std::size_t remove_source(const std::string& source);
  /// The content hash recorded for an ingested file, if any.
  std::optional<std::string> source_hash(const std::string& source) const;
  void set_source_hash(const std::string& source, std::string hash);

  /// Whether anything changed since open or the last save.
  bool dirty() const;

  /// Writes index and metadata to one temporary file in the folder, fsyncs it, renames it over
  /// the saved file and fsyncs the folder: a crash at any point leaves the previous save or the
  /// new one, never a mix. Creates the folder when missing.
  MemoryResult<void> save();

 private:
  struct Faiss;  // the FAISS index, defined in the .cpp
  MemoryIndex(std::filesystem::path folder, IndexOptions options);

  std::filesystem::path folder_;
  IndexOptions options_;
  mutable std::shared_mutex mutex_;
  std::unique_ptr<Faiss> faiss_;
  std::size_t dimension_ = 0;
  std::string model_;
  std::deque<Entry> entries_;  ///< id = position; a deque so Hit::entry pointers stay valid
  std::size_t deleted_ = 0;
  std::map<std::string, std::string, std::less<>> source_hashes_;
  std::atomic<bool> dirty_ = false;  ///< cleared by save(), which holds only the shared lock
  std::mutex save_mutex_;             ///< one save at a time: saves share the temporary file
};

}  // namespace dagent::memory
