#pragma once
// What the runtime's memory reports to programs that embed it: search hits and ingest progress.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

namespace dagent {

/// A memory search hit. `source`, `begin` and `end` locate an ingested chunk in its file.
struct MemoryHit {
  std::int64_t id = 0;
  float score = 0;  ///< cosine similarity to the query, in [-1, 1]
  std::string text;
  boost::json::object metadata;
  std::string source;
  std::int64_t begin = 0;
  std::int64_t end = 0;
};

/// What an ingest did.
struct IngestReport {
  std::size_t files_seen = 0;
  std::size_t files_ingested = 0;   ///< new or changed files whose chunks were added
  std::size_t files_unchanged = 0;  ///< skipped: same content hash as when last ingested
  std::size_t files_skipped = 0;    ///< not text (a NUL byte) or unreadable; see `warnings`
  std::size_t chunks_added = 0;
  std::size_t chunks_replaced = 0;  ///< chunks of changed files, no longer returned by search
  std::vector<std::string> warnings;
};

/// Progress of an ingest, reported after each group of embedding requests completes.
struct IngestProgress {
  std::size_t files_done = 0;
  std::size_t files_total = 0;
  std::size_t chunks_done = 0;
  std::size_t chunks_total = 0;  ///< chunks known so far (grows as files are read)
};

}  // namespace dagent
