#pragma once
// `dagent worker`: takes jobs from the steps stream (consumer group "workers"), runs them with its
// own tools and sandbox, and writes each result once. A job whose worker died is taken again
// after the visibility timeout (XAUTOCLAIM) and run with the same idempotency key; a result for
// a key that already has one is dropped (SET NX), so a coordinator accepts one result per call.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "dagent/workspace.hpp"
#include "distributed/job.hpp"
#include "redis/redis_client.hpp"
#include "tools/registry.hpp"

namespace dagent::distributed {

struct WorkerOptions {
  redis::RedisOptions redis;
  std::string name;                                  ///< unique among the workers (the consumer name)
  int concurrency = 4;                               ///< jobs run at once
  std::chrono::milliseconds visibility_timeout{30000};
  /// A reclaimed job delivered more often than this fails (its workers died running it).
  int max_deliveries = 3;
  /// A job's workspace must be one of these folders or inside one (after resolving symlinks).
  std::vector<std::filesystem::path> workspace_roots;
  Protection protection;                             ///< what tools may not write (tools.protected)
  StreamKeys keys;
  std::function<void(const std::string&)> log;       ///< one line per notable event; none when empty
};

/// One worker on one event loop; tools' blocking work runs on `pool`. `registry` must outlive it.
class Worker {
 public:
  struct Stats {
    std::uint64_t started = 0;    ///< jobs whose tool was called
    std::uint64_t accepted = 0;   ///< results stored (the first for their key)
    std::uint64_t duplicates = 0; ///< results dropped: the key had one already
    std::uint64_t reclaimed = 0;  ///< jobs taken from a worker that stopped refreshing them
    std::uint64_t rejected = 0;   ///< malformed or refused jobs
  };

  Worker(boost::asio::any_io_executor loop, boost::asio::any_io_executor pool, const tools::Registry& registry,
         WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  /// Announces the worker and takes jobs until stop(); then finishes the jobs underway and
  /// withdraws the announcement. Redis failures are retried with backoff (logged once each).
  boost::asio::awaitable<void> run();
  /// Stops taking jobs (call on the loop, e.g. from a signal handler); run() completes once the
  /// jobs underway are done.
  void stop();

  Stats stats() const noexcept;
  /// The announcement: the tools this worker offers (LLM-bound ones are not offered).
  WorkerInfo info() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace dagent::distributed
