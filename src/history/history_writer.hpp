#pragma once
// Writes finished runs to the history on a thread of its own, so a run never waits on the disk;
// a database that cannot be written is a warning, never a failed run.

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/thread_pool.hpp>

#include "history/history_store.hpp"

namespace dagent::history {

struct WriterOptions {
  std::filesystem::path path;  ///< the database; empty: every write is a warning (no state folder)
  int keep_days = 30;          ///< runs older than this are removed after a write; 0 keeps them all
  int busy_timeout_ms = 1000;
};

class HistoryWriter {
 public:
  static constexpr int k_max_queued = 256;

  explicit HistoryWriter(WriterOptions options);
  /// Writes what is queued, then stops its thread.
  ~HistoryWriter();
  HistoryWriter(const HistoryWriter&) = delete;
  HistoryWriter& operator=(const HistoryWriter&) = delete;

  /// Queues `run` for writing and returns at once; with k_max_queued runs already waiting it is
  /// dropped with a warning instead.
  void submit(RunRecord run);
  /// Waits until every run submitted so far is written (or failed); the warnings since the last
  /// call, each naming the database file.
  std::vector<std::string> flush();

 private:
  void write(const RunRecord& run);  // on the writer's thread
  void warn(std::string message);

  WriterOptions options_;
  std::optional<HistoryStore> store_;  // the writer thread's only; opened at the first write
  std::atomic<int> queued_{0};
  std::mutex warnings_mutex_;
  std::vector<std::string> warnings_;
  boost::asio::thread_pool thread_{1};  // last: joined before the members it uses go away
};

}  // namespace dagent::history
