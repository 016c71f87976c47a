#pragma once
// Runs an analysed plan on the event loop: eager or level-by-level, bounded concurrency, typed
// reference resolution, per-step timeouts and retries, background verification, interruption.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include "config/config.hpp"
#include "executor/run_types.hpp"
#include "dagent/tool.hpp"
#include "executor/analysis.hpp"
#include "executor/approval_gate.hpp"
#include "executor/plan.hpp"
#include "executor/tool_observer.hpp"
#include "executor/verifier.hpp"

namespace dagent::executor {

struct SchedulerOptions {
  bool parallel = true;                      ///< false: one step at a time, in dependency order
  int max_parallel_steps = 5;
  int max_parallel_llm_calls = 3;
  int max_remote_steps = 0;                  ///< steps (or items) of remote tools running at once, besides the others
  config::Scheduling scheduling = config::Scheduling::eager;
  std::chrono::milliseconds step_timeout{120000};
  int step_retries = 0;                      ///< extra attempts after a failure that may pass on retry
  /// for_each: the most items one step may fan out to; a longer list fails the step.
  std::size_t max_fan_out = 10000;
  /// true: a non-critical step's verdict is awaited in the background (its dependents start at
  /// once); false: in the foreground, the step is done when its verdict is. Critical steps
  /// always wait for theirs.
  bool background_verification = true;
  int max_reruns = 1;                        ///< re-runs of a critical step whose verdict failed
  /// Step times are measured from here (the run's start, which planning may precede); unset: run().
  std::optional<std::chrono::steady_clock::time_point> epoch;
  /// Sees every tool call and may answer it instead of the tool (recording, replay); must outlive run().
  ToolObserver* observer = nullptr;
  /// tools.approval: asked after a step's references are resolved, before its first attempt; the
  /// wait is not part of step_timeout. Null: no approval. Must outlive run().
  ApprovalGate* approval = nullptr;

  /// The options of a Config (performance.parallel_execution, executor, verification, background_tasks).
  static SchedulerOptions from(const config::Config& cfg);
};

/// What execution produced: step results in plan order plus scheduler counters.
struct ExecutionReport {
  std::vector<StepResult> steps;
  int max_concurrent = 0;
  std::int64_t retries = 0;
  bool interrupted = false;
};

/// Whether the plan is complete when run() starts, or still arriving (streamed planning).
enum class PlanGrowth { fixed, streamed };

/// One execution of one plan. Lives on a single-threaded event loop: run(), admit(), close() and
/// interrupt() must be called there, and the plan, analysis and verifier must outlive run().
class Scheduler final : private ReferenceSource {
 public:
  /// `streamed`: the plan and analysis start empty or partial and grow while run() is underway;
  /// each appended step is announced with admit(), and close() says no more will come. Only
  /// eager scheduling is meaningful then: levels are not known before the plan is.
  Scheduler(const Plan& plan, const Analysis& analysis, SchedulerOptions options, ToolContext base,
            boost::json::object inputs, Verifier& verifier, PlanGrowth growth = PlanGrowth::fixed);
  ~Scheduler() override;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  /// Called on the loop at every step transition.
  void on_event(std::function<void(const StepEvent&)> callback) { on_event_ = std::move(callback); }

  /// Runs every step; completes when all steps and background verifications are done. When the
  /// awaiting coroutine is cancelled, the steps and verifications it spawned are interrupted and
  /// joined before run() completes (with the report of what ran): none outlives it.
  boost::asio::awaitable<ExecutionReport> run();

  /// Starts no new step, cancels the running ones and skips the rest; run() then completes
  /// (a streamed plan must still be closed). May be called before run().
  void interrupt();

  /// Before run(): the step at `index` already succeeded (an earlier plan of this run, or a
  /// recording); it keeps `previous` and is not run again. A for_each step cut short (`previous`
  /// pending, its finished items succeeded with their outputs at their index of `output`) runs
  /// only its other items.
  void reuse(std::size_t index, StepResult previous);

  /// Streamed plans: the step at `index` (the next one) was appended to the plan and analysis,
  /// with its dependencies among the steps admitted before it.
  void admit(std::size_t index);
  /// Streamed plans: no more steps will be admitted; run() completes once the admitted ones are done.
  void close();

  bool interrupted() const noexcept { return interrupted_; }

 private:
  struct Outcome;
  struct StepDone;
  struct VerifyDone;
  struct StepState;
  struct FanOut;
  struct ItemOutcome;
  struct ItemDone;
  struct FanVerifyDone;

  boost::asio::awaitable<Outcome> run_step(std::size_t index);
  boost::asio::awaitable<ItemOutcome> run_item(std::size_t index, std::size_t item);
  /// A step's (or item's) parameters with references resolved from `source` and checked against
  /// the tool's schema, or the message saying why not.
  boost::system::result<boost::json::object, std::string> call_parameters(std::size_t index,
                                                                         const ReferenceSource& source) const;
  /// tools.approval's question for a step (item -1) or an item: nullopt when the call may go ahead.
  boost::asio::awaitable<std::optional<ToolError>> seek_approval(std::size_t index, int item,
                                                                 const boost::json::object& params);
  /// The tool call with the step's retries; `attempts` counts each (it outlives the call), after
  /// `earlier` attempts of this step or item (each call gets its own number, ToolContext::attempt).
  boost::asio::awaitable<ToolResult> call_with_retries(std::size_t index, int item, boost::json::object params,
                                                       int& attempts, int earlier = 0);
  boost::asio::awaitable<ToolResult> invoke_once(std::size_t index, int item, int attempt, boost::json::object params);
  boost::asio::awaitable<ToolResult> invoke_tool(std::size_t index, int item, int attempt, boost::json::object params);
  boost::asio::awaitable<Verdict> verify_in_background(std::size_t index);

  void init(std::size_t index);
  void make_ready(std::size_t index);
  void dispatch();
  void start(std::size_t index);
  void finish(std::size_t index, std::exception_ptr error, Outcome outcome);
  void settle(std::size_t index, Outcome outcome);
  bool open_fan_out(std::size_t index);
  void start_item(std::size_t index);
  void finish_item(std::size_t index, std::size_t item, std::exception_ptr error, ItemOutcome outcome);
  void complete_fan_out(std::size_t index);
  void finish_fan_verification(std::size_t index, std::exception_ptr error, Verdict verdict);
  void stop_fan_out(std::size_t index);
  void emit_item(std::size_t index, std::size_t item, std::string_view message = {});
  void finish_verification(std::size_t index, std::exception_ptr error, Verdict verdict);
  void stop_all();
  void skip_dependents(std::size_t failed);
  void mark_terminal(std::size_t index);
  void advance_level();
  void emit(std::size_t index, std::string_view message = {});
  void wake();
  bool finished() const noexcept;
  bool joined() const noexcept { return running_ == 0 && background_ == 0; }
  boost::asio::awaitable<void> join_children();
  double now_ms() const noexcept;
  int acquire_slot();

  const boost::json::value* step_output(int step_id) const override;
  const boost::json::object& inputs() const override { return inputs_; }

  const Plan& plan_;
  const Analysis& analysis_;
  SchedulerOptions options_;
  ToolContext base_;
  boost::json::object inputs_;
  Verifier& verifier_;
  std::function<void(const StepEvent&)> on_event_;

  std::deque<StepState> steps_;  // a deque: streamed steps are appended while others run
  std::vector<std::size_t> reused_;
  PlanGrowth growth_;
  bool started_ = false;
  bool closed_ = false;
  struct ReadyOrder {
    const Analysis* analysis;
    bool operator()(std::size_t a, std::size_t b) const noexcept;  // longest remaining chain first
  };
  std::priority_queue<std::size_t, std::vector<std::size_t>, ReadyOrder> ready_;
  std::priority_queue<std::size_t, std::vector<std::size_t>, ReadyOrder> ready_llm_;
  std::priority_queue<std::size_t, std::vector<std::size_t>, ReadyOrder> ready_remote_;
  std::vector<std::size_t> level_remaining_;
  std::size_t current_level_ = 0;
  std::vector<bool> slot_busy_;
  int running_ = 0;
  int running_llm_ = 0;
  int running_remote_ = 0;
  int background_ = 0;
  std::size_t terminal_ = 0;
  bool interrupted_ = false;
  bool joining_ = false;  // run() is waiting for its children after a cancellation
  ExecutionReport report_;
  std::chrono::steady_clock::time_point start_;
  std::unique_ptr<boost::asio::steady_timer> wake_;
  bool settled_in_dispatch_ = false;  // a for_each step finished while dispatch() opened it
};

}  // namespace dagent::executor
