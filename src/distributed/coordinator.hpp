#pragma once
// The coordinating process's side of distributed steps: finds the live workers, sends jobs to the
// steps stream and routes each result from the run's result stream to the call awaiting it. A
// result is accepted once: by the first call that finds it; a late or repeated one is dropped.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/result.hpp>

#include "dagent/tool.hpp"
#include "distributed/job.hpp"
#include "redis/redis_client.hpp"

namespace dagent::distributed {

struct CoordinatorOptions {
  redis::RedisOptions redis;
  std::string run;                         ///< the run's key: its id, or the recorded one on --resume
  StreamKeys keys;
  std::chrono::milliseconds block{1000};   ///< one blocking read of the result stream at most
};

/// Lives on the run's loop; serve() must run (beside the run's flow) while calls are awaited.
class Coordinator {
 public:
  Coordinator(boost::asio::any_io_executor executor, CoordinatorOptions options);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  /// The workers whose announcement has not expired (stale names are removed from the set).
  boost::asio::awaitable<boost::system::result<std::vector<WorkerInfo>, std::string>> live_workers();

  /// Sends `job` (unless a worker already holds or finished a job with its key) and returns its
  /// result. Cancelled (the step timed out, the run was interrupted), it gives the job up: the key
  /// is marked cancelled in Redis (by serve() or drain()), and a late result is ignored.
  boost::asio::awaitable<ToolResult> call(Job job);

  /// Reads the run's result stream and hands results to the calls awaiting them; sends the
  /// cancellations of given-up calls. Runs until cancelled; Redis failures are retried with backoff.
  boost::asio::awaitable<void> serve();
  /// Sends the cancellations still owed (after the run's flow ended).
  boost::asio::awaitable<void> drain();

  const std::string& run() const noexcept;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace dagent::distributed
