#pragma once
// The memory's vector index: FAISS (flat or HNSW, inner product on normalized vectors) behind our
// own interface, ids mapped to text and metadata, saved atomically to one file under a folder
// that several processes may share.
// FAISS headers stay in memory_index.cpp.

#include <chrono>
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
#include <utility>
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

/// A search result, with a copy of its entry: another process's save may replace the entries.
struct Hit {
  std::int64_t id = 0;
  float score = 0;  ///< inner product of the normalized vectors (cosine similarity)
  Entry entry;
};

struct IndexOptions {
  config::IndexKind kind = config::IndexKind::flat;
  int hnsw_m = 32;                ///< HNSW graph degree
  int hnsw_ef_construction = 40;  ///< HNSW build-time beam width
  int hnsw_ef_search = 64;        ///< HNSW search-time beam width (at least k is used)
  /// The configured embedding model: a saved index built with another is refused (model_mismatch),
  /// one that names none adopts it at its next commit. Empty: not checked.
  std::string model;
  /// How long commit() waits for another process's hold on the folder lock before failing.
  std::chrono::milliseconds lock_timeout = std::chrono::minutes(10);
};

/// Metadata nests at most this deep (the metadata object itself is level 1); deeper is refused
/// when added, so that everything saved reads back.
constexpr int k_max_metadata_depth = 64;

/// invalid_argument, naming the limit or the key, when `metadata` cannot be saved and read back
/// as it is: nested deeper than k_max_metadata_depth, or holding a number that is not finite.
MemoryResult<void> check_storable(const boost::json::object& metadata);

/// Edits committed together: sources removed first, then entries added, then hashes recorded.
struct Change {
  std::vector<std::string> remove_sources;  ///< their entries are marked deleted
  std::vector<float> vectors;               ///< entries.size() rows of `dimension` floats
  std::size_t dimension = 0;
  std::vector<Entry> entries;
  std::vector<std::pair<std::string, std::string>> source_hashes;  ///< source, content hash
};

/// What a commit did.
struct Committed {
  std::vector<std::int64_t> ids;  ///< of the added entries, in order
  std::size_t removed = 0;        ///< entries marked deleted by remove_sources
};

/// Thread-safe: search, entry lookups and saving share a lock; edits and reloads take it alone.
/// Several processes may use one folder: commit() is a read-modify-write under an advisory lock
/// on `memory.lock` in the folder, and refresh() picks up what other processes saved.
class MemoryIndex {
 public:
  /// The file that holds an index saved under `folder`.
  static std::filesystem::path file_in(const std::filesystem::path& folder);
  /// The file locked by commit() in `folder`.
  static std::filesystem::path lock_file_in(const std::filesystem::path& folder);

  /// Opens the index saved under `folder`, or an empty one when nothing was saved yet. A saved
  /// index of another kind than `options.kind` is rebuilt as that kind from its stored vectors
  /// (and saved so by the next commit). Errors: corrupt (truncated, checksum, unparsable, a
  /// dimension that disagrees with the header), model_mismatch, io_error. Temporary files of
  /// saves whose writer is gone (their lock is free) are removed. Never waits for a lock.
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

  /// Re-reads the saved index when another process saved since this one last read or wrote it
  /// (told by the file's identity and the generation in its header). A no-op while a commit of
  /// this object is underway, which brings it up to date itself.
  MemoryResult<void> refresh();

  /// Under the folder lock (waiting at most options.lock_timeout, then io_error naming the lock
  /// file): re-reads the saved index if another process saved since, applies `change` and saves.
  /// Errors leave the saved index as it was; an invalid change (see add) is refused before anything changes.
  /// Commits from several threads that arrive while one is underway are applied together by the
  /// next one, under one lock and with one save (a group commit): parallel memory_add steps do
  /// not rewrite the file once each. Each caller still gets its own result.
  MemoryResult<Committed> commit(Change change);
  /// Changes waiting for a commit to take them (for tests and diagnostics).
  std::size_t queued() const;

  /// In memory only (commit() saves): adds `entries.size()` vectors, row-major in `vectors` (each
  /// `dimension` floats; normalized here, zero vectors refused); returns their ids. The first add
  /// fixes the dimension; later ones must match (dimension_mismatch, naming both). Metadata that
  /// check_storable() refuses is invalid_argument.
  MemoryResult<std::vector<std::int64_t>> add(std::span<const float> vectors, std::size_t dimension,
                                              std::vector<Entry> entries);

  /// The `k` best live entries for `query` (normalized here), best first. Fewer when the index
  /// holds fewer. dimension_mismatch when the query's size differs; empty on an empty index.
  MemoryResult<std::vector<Hit>> search(std::span<const float> query, int k) const;

  /// A copy of the entry with `id`, if there is one.
  std::optional<Entry> entry(std::int64_t id) const;

  /// In memory only: marks every entry ingested from `source` deleted; returns how many.
  std::size_t remove_source(const std::string& source);
  /// The content hash recorded for an ingested file, if any.
  std::optional<std::string> source_hash(const std::string& source) const;
  /// In memory only: records the content hash of an ingested file.
  void set_source_hash(const std::string& source, std::string hash);

  /// What identifies one save of the file; equal identities mean nothing was saved in between.
  struct FileIdentity {
    bool exists = false;
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::int64_t size = 0;
    std::int64_t mtime_ns = 0;
    std::uint64_t generation = 0;  ///< counted up by each save (0 in files of format 1)
    bool operator==(const FileIdentity&) const = default;
  };

 private:
  struct Faiss;  // the FAISS index, defined in the .cpp
  struct Queued;  // a change waiting for a group commit, defined in the .cpp
  MemoryIndex(std::filesystem::path folder, IndexOptions options);

  /// Reads the saved file when its identity differs from loaded_ (or loaded_ is unknown).
  MemoryResult<void> reload_if_changed();
  /// Validated edits, applied together or not at all.
  MemoryResult<Committed> apply(Change change);
  /// Writes the contents to a locked temporary file and renames it over the saved one.
  MemoryResult<void> save();

  std::filesystem::path folder_;
  IndexOptions options_;
  mutable std::shared_mutex mutex_;
  std::unique_ptr<Faiss> faiss_;
  std::size_t dimension_ = 0;
  std::string model_;
  std::deque<Entry> entries_;  ///< id = position
  std::size_t deleted_ = 0;
  std::map<std::string, std::string, std::less<>> source_hashes_;
  std::mutex write_mutex_;         ///< one commit or reload at a time in this process
  mutable std::mutex queue_mutex_;  ///< guards queued_
  std::vector<std::shared_ptr<Queued>> queued_;  ///< changes not yet taken by a commit
  std::optional<FileIdentity> loaded_;  ///< the save the contents match; unknown after a failed commit
};

}  // namespace dagent::memory
