#pragma once
// The runs of `dagent serve`: admission (running, queued, refused), their results and events,
// cancellation and drain. HTTP-free: the server turns requests into these calls.

#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/steady_timer.hpp>

#include "serve/reply.hpp"
#include "serve/run_events.hpp"

namespace dagent {
class Runtime;
}

namespace dagent::runtime {
struct Outcome;
}

namespace dagent::serve {

struct ServiceRun;

/// Every run the service took, by id. Runs start on the runtime's loop with run_task_async, up
/// to serve.max_concurrent_runs at once, then wait in a queue of serve.max_queued_runs. Finished
/// runs stay in memory (serve.runs_kept, oldest evicted first); older ones are read from the run
/// history. Use it on the runtime's loop only; it must outlive run_loop().
class Service {
 public:
  explicit Service(Runtime& runtime);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  /// POST /v1/runs: `body` is a task (the task file's fields as JSON) or {"task": NAME} of a
  /// configured task. 201 with the id; 400 with the problems of `dagent validate`; 503 when
  /// draining or the queue is full.
  Reply submit(std::string_view body);
  /// GET /v1/runs/{id}: the result JSON (SPEC §5; `status` queued or running before its end).
  /// `id` is the id POST answered or the run's own run_id.
  Reply get(std::string_view id);
  /// GET /v1/runs: the runs in memory, newest first, as {id, run_id, task, status}.
  Reply list() const;
  /// DELETE /v1/runs/{id}: a queued run ends at once, a running one is interrupted (202).
  Reply cancel(std::string_view id);
  /// GET /metrics: the process's metrics (observe::render(): model calls, tokens, steps, runs...)
  /// with the service's own counters and the runs in flight and queued, Prometheus text format.
  Reply metrics() const;
  /// The events of run `id` in memory, or null.
  std::shared_ptr<RunEvents> events(std::string_view id) const;

  /// Stops taking runs (503), ends the queued ones, lets the running ones finish for
  /// serve.drain_ms and then cancels them; calls `drained` once none is left.
  void drain(std::function<void()> drained);
  bool draining() const noexcept { return draining_; }

  /// The completion of one run's coroutine (public for its handler).
  void finish(const std::shared_ptr<ServiceRun>& run, std::exception_ptr error, runtime::Outcome outcome);
  /// The drain's deadline passed: interrupt every running run.
  void cancel_running();

 private:
  std::shared_ptr<ServiceRun> find(std::string_view id) const;
  void start(const std::shared_ptr<ServiceRun>& run);
  void start_queued();
  void end_unstarted(const std::shared_ptr<ServiceRun>& run);
  void retire(const std::shared_ptr<ServiceRun>& run);
  void check_drained();

  Runtime& runtime_;
  std::map<std::string, std::shared_ptr<ServiceRun>, std::less<>> runs_;
  std::map<std::string, std::string, std::less<>> aliases_;  // the runtime's run_id -> our id
  std::deque<std::shared_ptr<ServiceRun>> queue_;
  std::deque<std::string> finished_order_;                    // oldest first, for eviction
  int running_ = 0;
  bool draining_ = false;
  std::function<void()> drained_;
  boost::asio::steady_timer drain_timer_;
  std::uint64_t next_id_ = 1;
  std::string id_prefix_;

};

}  // namespace dagent::serve
