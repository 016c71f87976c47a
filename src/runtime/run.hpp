#pragma once
// One run as an object: everything that belongs to a run (its provider chain — live, replayed,
// recorded —, its memory folder, recall, verifier, planner, tool registry, event sinks and
// cancellation) is created with it and dropped with it. The runtime's long-lived parts are only
// read, so a run that fails to set up, fails or throws leaves the Runtime as it was.

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "config/config.hpp"
#include "dagent/runtime.hpp"
#include "dagent/workspace.hpp"
#include "executor/analysis.hpp"
#include "executor/plan.hpp"
#include "executor/verifier.hpp"
#include "planner/planner.hpp"
#include "record/recording.hpp"
#include "record/recording_provider.hpp"
#include "record/replay_provider.hpp"
#include "executor/approval_gate.hpp"
#include "runtime/approval_replay.hpp"
#include "runtime/budget.hpp"
#include "runtime/resume.hpp"
#include "runtime/run_recorder.hpp"
#include "runtime/tool_replay.hpp"
#include "tools/registry.hpp"

namespace dagent::memory {
class Memory;
}

namespace dagent::executor {
class Scheduler;
}

namespace dagent::distributed {
class Coordinator;
}

namespace dagent::runtime {

/// The runtime's long-lived parts a run reads. None of them changes for the length of a run.
struct Shared {
  const config::Config* cfg = nullptr;
  boost::asio::any_io_executor loop;
  boost::asio::any_io_executor pool;     ///< blocking tool work and the memory's file and FAISS calls
  const tools::Registry* registry = nullptr;  ///< every tool; the built-in ones below are replaced per run
  net::LlmProvider* live = nullptr;      ///< the live provider (behind the response cache when it is on)
  memory::Memory* memory = nullptr;      ///< the user's memory; null when memory.enabled is false
  planner::Recall* recall = nullptr;     ///< the planner's view of `memory`
  const Tool* llm_tool = nullptr;        ///< the runtime's built-in `llm` tool, if enabled
  const Tool* memory_add_tool = nullptr;
  const Tool* memory_search_tool = nullptr;
};

/// Everything analysis derives from a plan, or why it cannot run.
struct Prepared {
  std::vector<std::string> problems;
  executor::Plan plan;
  executor::Analysis analysis;
};

/// Parses and analyses `plan` against `registry` and the config's limits.
Prepared prepare_plan(const boost::json::value& plan, const boost::json::object* inputs,
                      const tools::Registry& registry, const config::Config& cfg);

/// The recording header's fields that identify a run's task, plan and config.
boost::json::object describe_run(const config::Task& task, const config::Config& cfg);

/// A short change detector for recordings: equal configs give equal digests.
std::string config_digest(const config::Config& cfg);

/// Milliseconds from `epoch` to now.
double ms_since(std::chrono::steady_clock::time_point epoch);
/// Appends `message` to the run-level error ("; " between messages).
void add_error(executor::RunResult& result, const std::string& message);
/// `items` joined with "; ".
std::string joined(const std::vector<std::string>& items);
/// The ids of `plan`'s steps at `indices`.
std::vector<int> ids_of(const executor::Plan& plan, const std::vector<std::size_t>& indices);

struct WarmUp;

/// A distributed run's part (execution.backend redis): the coordinator its remote tools send
/// through, and how many remote calls it keeps in flight.
struct Distribution {
  std::unique_ptr<distributed::Coordinator> coordinator;
  int capacity = 0;
  ~Distribution();
};

class Run {
 public:
  /// `options` must outlive the run.
  Run(Shared shared, const RunOptions& options);
  ~Run();
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  /// Builds the run's parts for its options and `task` (the recording read for --replay or
  /// --resume and checked against `task` and the config, the recording opened for --record);
  /// every problem when it cannot. Nothing outside the run is changed either way.
  std::vector<std::string> set_up(const config::Task& task);

  /// With --replay-tools: the MCP tools the recording's header lists, added to this run's tools
  /// (their servers are not started; the recording answers their calls). Problems otherwise none.
  std::vector<std::string> add_recorded_mcp_tools();

  /// Writes the recording header (a resumed run: a "resume" event) once `result` has its run id.
  /// `task_ref` is how the task was named (a file or a configured name). The problem when it
  /// could not be written, e.g. a file that appeared at the --record path since the CLI looked:
  /// nothing has run yet.
  std::optional<std::string> record_header(std::string_view task_ref);

  /// Ctrl-C: cancels the planner call underway and interrupts the scheduler; idempotent.
  void interrupt();
  /// Completes when interrupt() is called (at once if it was).
  boost::asio::awaitable<void> interruption();

  /// The parsed and analysed `plan` against this run's tools.
  Prepared prepare(const boost::json::value& plan) const;

  /// How many model calls the run may have in flight at once: for a fixed (or resumed) plan
  /// plan_width(); for a goal, whose plan is still to come, its llm slots and the streamed plan
  /// call. At most max_connections; 0 when a fixed plan calls no model.
  int warm_width() const;
  /// The model calls `prepared` may have in flight at once, level by level: its llm steps (at
  /// most the llm slots), the background judges of the level before, one embedding request.
  int plan_width(const Prepared& prepared) const;
  /// `flow`, with the provider's connections for warm_width() calls opened alongside it
  /// (performance.connection_pooling.warm_connections, live runs). The warm-up never delays
  /// `flow`, never fails it, and is cancelled when `flow` ends, however it ends.
  boost::asio::awaitable<void> with_warm_connections(boost::asio::awaitable<void> flow);
  /// Once a goal's plan is known: opens more connections if `prepared` needs more than the
  /// warm-up opened so far (plan_width). Nothing while no warm-up runs or after the flow ended.
  void warm_for(const Prepared& prepared);

  bool live() const noexcept { return !replay_; }
  const config::Config& cfg() const noexcept { return *shared_.cfg; }
  const Shared& shared() const noexcept { return shared_; }
  const RunOptions& options() const noexcept { return *options_; }
  net::LlmProvider& provider() noexcept { return *provider_; }
  Budget& budget() noexcept { return *budget_; }  ///< the head of the provider chain (limits.*)
  planner::Planner& planner() noexcept { return *planner_; }
  const tools::Registry& registry() const noexcept { return registry_; }
  executor::Verifier& verifier() noexcept { return *verifier_; }
  executor::ToolObserver* observer() const noexcept { return observer_; }
  RunRecorder* recorder() const noexcept { return recorder_.get(); }
  executor::ApprovalGate* approval() const noexcept { return approval_.get(); }  ///< null: tools.approval is empty
  record::RecordWriter* writer() noexcept { return writer_ ? &*writer_ : nullptr; }
  const std::optional<ResumePoint>& resume() const noexcept { return resume_; }
  ToolContext tool_context() const;

  // State of the run underway, shared by its coroutines and the signal handler (one loop thread).
  config::Task task;                         ///< inputs and, for a goal, the goal
  std::optional<Workspace> workspace;
  std::chrono::steady_clock::time_point epoch;
  executor::RunResult* result = nullptr;
  std::vector<std::string> problems;         ///< non-empty: nothing ran (invalid input, no valid plan)
  bool unreachable = false;                  ///< the provider could not be reached (exit 3)
  executor::Scheduler* active = nullptr;     ///< the scheduler running now, for Ctrl-C
  bool interrupted = false;
  std::int64_t retries = 0;
  int max_concurrent = 0;
  std::string streamed_answer;               ///< the answer as streamed so far (kept if it is cut)
  std::unique_ptr<Distribution> distribution;  ///< set when steps go to workers; outlives the run's tools

  /// Replaces the run's tools (distributed runs: the tools the workers offer become remote).
  void replace_tools(tools::Registry tools) { registry_ = std::move(tools); }

 private:
  void write_header(std::string_view task_ref);
  std::vector<std::string> check_resumable(const record::Recording& recording, const config::Task& task) const;

  Shared shared_;
  const RunOptions* options_;
  std::optional<record::Recording> source_;  ///< the recording replayed
  std::unique_ptr<record::ReplayProvider> replay_;
  std::optional<record::RecordWriter> writer_;
  std::unique_ptr<record::RecordingProvider> recording_;
  std::unique_ptr<Budget> budget_;  ///< wraps the chain above: a refused call is neither sent nor recorded
  std::unique_ptr<RunRecorder> recorder_;
  std::unique_ptr<ToolReplay> tool_replay_;
  std::unique_ptr<ApprovalReplay> approval_replay_;
  std::unique_ptr<executor::ApprovalGate> approval_;
  std::optional<ResumePoint> resume_;
  std::unique_ptr<planner::Recall> recall_tap_;
  std::unique_ptr<planner::Recall> memory_recall_;  ///< live runs with memory: recall counted to the run's meter
  std::filesystem::path scratch_memory_;      ///< a replay's own memory folder, removed afterwards
  std::unique_ptr<memory::Memory> replay_memory_;
  net::LlmProvider* provider_ = nullptr;     ///< the head of the chain every part of this run calls
  executor::ToolObserver* observer_ = nullptr;
  tools::Registry registry_;
  std::unique_ptr<executor::Verifier> verifier_;
  std::unique_ptr<planner::Planner> planner_;
  boost::asio::steady_timer interrupt_timer_;
  config::Task header_task_;
  std::shared_ptr<WarmUp> warm_;  ///< the warm-ups of with_warm_connections(), while its flow runs
  int warmed_ = 0;                ///< the most connections a warm-up was asked for
};

}  // namespace dagent::runtime
