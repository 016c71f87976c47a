#pragma once
// The embedding API: load a config, register tools, run a task or a plan, watch step events.

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "dagent/approval.hpp"
#include "dagent/memory.hpp"
#include "dagent/run_result.hpp"
#include "dagent/tool.hpp"

namespace dagent {

/// Cancels a run from outside it, as Ctrl-C does for the CLI (a service's DELETE). Use it on the
/// runtime's loop. Cancelling before the run starts makes it stop as soon as it starts.
class RunCancel {
 public:
  void cancel();
  bool cancelled() const noexcept { return cancelled_; }
  /// The runtime's side: what cancel() calls while the run is underway (empty once it ended).
  void attach(std::function<void()> interrupt);

 private:
  std::function<void()> interrupt_;
  bool cancelled_ = false;
};

/// How to run: observers and side outputs. Everything is optional.
struct RunOptions {
  std::function<void(const RunResult&)> on_start;  ///< the validated run (id, plan, levels) before any step
  std::function<void(const StepEvent&)> on_event;  ///< called on the runtime's loop thread
  std::function<void(const PlanningEvent&)> on_planning;  ///< planner phases (goal tasks), on the loop
  std::function<void(std::string_view)> on_answer;  ///< the synthesized answer, piece by piece, as it streams
  std::filesystem::path trace_file;                ///< Chrome trace-event JSON, when set
  /// SIGINT interrupts the run (the CLI sets it); a second exits 130 at once. The program's own
  /// handler is put back when the run ends.
  bool stop_on_sigint = false;
  std::filesystem::path record_file;  ///< write the run's recording (SPEC §6) here, event by event
  bool record_replace = false;        ///< with record_file: replace an existing file (refused otherwise; CLI --force)
  std::filesystem::path replay_file;  ///< answer LLM and embedding calls from this recording; no network
  bool replay_tools = false;          ///< with replay_file: tool results come from the recording too
  bool replay_instant = false;        ///< with replay_file: streamed replies at once, not at their recorded pace
  std::filesystem::path resume_file;  ///< continue this interrupted recorded run, recording into it
  /// Asked before each call of a tool that `tools.approval` names (see ApprovalCallback); without
  /// it (and without approve_tools / approve_all) such steps fail "needs approval". Never asked in
  /// a replay: the recorded decisions answer.
  ApprovalCallback approve;
  std::vector<std::string> approve_tools;  ///< tools (or patterns) approved in advance (CLI --approve)
  bool approve_all = false;                ///< every call approved in advance (CLI --yes)
  std::shared_ptr<RunCancel> cancel;       ///< cancel->cancel() interrupts the run (a service's DELETE)
};

/// A validated plan and its DAG, without running it.
struct PlanReport {
  std::vector<std::string> problems;    ///< non-empty: the input is invalid
  std::string task;
  boost::json::value plan;
  std::vector<std::vector<int>> levels;
  std::vector<int> critical_path;
  bool unreachable = false;             ///< planning failed because the provider could not be reached
};

/// A run, or the reasons it could not start.
struct RunOutcome {
  std::vector<std::string> problems;    ///< non-empty: invalid input (or no valid plan), nothing was executed
  /// The provider could not be reached: with problems, for planning; without, for the answer or
  /// replanning (the run failed).
  bool unreachable = false;
  RunResult result;

  /// SPEC §1: 0 succeeded; 1 a step or verification failed, no answer, or interrupted; 2 invalid
  /// input; 3 provider unreachable (planning, answer, or a critical step's tool or judge).
  int exit_code() const noexcept;
};

/// What a memory command did (`ingest` fills `ingest`, `search_memory` fills `hits`), or why it failed.
struct MemoryOutcome {
  std::string error;  ///< non-empty: failed; names the path, key or call at fault
  int exit_code = 0;  ///< SPEC §1: 2 bad input (path, index, dimension), 3 provider unreachable, 1 other failures
  IngestReport ingest;
  std::vector<MemoryHit> hits;
};

/// One tool of a configured MCP server, as plans call it (`SERVER.TOOL`).
struct McpToolInfo {
  std::string server;
  std::string name;  ///< SERVER.TOOL
  std::string description;
  boost::json::object input_schema;
};

/// What `list_mcp_tools` found: the tools of the servers that started, and why others did not.
struct McpListing {
  std::vector<std::string> problems;  ///< each names its server
  std::vector<McpToolInfo> tools;     ///< by server name, each server's in its own order
  bool unknown_server = false;        ///< the server asked for is not configured
};

/// Wires config, tools and executor. Not thread-safe: use one Runtime from one thread at a time.
/// The blocking calls (run_task, run_plan, ...) run one at a time; a service (`dagent serve`)
/// instead drives the loop with run_loop() and starts runs on it (run_task_async, run_plan_async)
/// that go concurrently and share the connection pool, rate limiter, response cache, memory and
/// MCP servers.
class Runtime {
 public:
  /// Loads `config_file` (empty: built-in defaults) and applies `--set`-style overrides.
  /// On failure, every problem is returned as "file:line: key: message".
  static std::variant<Runtime, std::vector<std::string>> load(const std::filesystem::path& config_file,
                                                              const std::vector<std::string>& overrides = {});
  Runtime(Runtime&&) noexcept;
  Runtime& operator=(Runtime&&) noexcept;
  ~Runtime();

  /// Makes `tool` callable from plans; fails when a tool of that name exists.
  boost::system::result<void, ToolError> register_tool(std::shared_ptr<Tool> tool);

  /// Validates a task (file path or name under `tasks:`) and derives its DAG; a task with a goal
  /// and no fixed plan is planned by the model first (the parallel phase, the planning call, one
  /// repair). `options.on_planning` observes the planner.
  PlanReport plan_task(std::string_view task, const RunOptions& options = {});
  /// Validates a plan (SPEC §3 JSON) and derives its DAG; `$input.x` is checked against
  /// `inputs` when given.
  PlanReport plan_json(const boost::json::value& plan, const boost::json::object* inputs = nullptr);
  /// Runs a task (file path or name under `tasks:`). A task without a fixed plan runs the whole
  /// loop: plan (streamed when planner.stream_plan), execute, synthesize the answer, replan.
  RunOutcome run_task(std::string_view task, const RunOptions& options = {});
  /// Runs a plan (SPEC §3 JSON) with `inputs`, its tools confined to `workspace`.
  RunOutcome run_plan(const boost::json::value& plan, const boost::json::object& inputs,
                      const std::filesystem::path& workspace, const RunOptions& options = {},
                      std::string task_name = "plan");
  /// Chunks the text files under `paths` (folders recursively, hidden entries skipped), embeds
  /// the chunks in batches and stores them in the memory index, skipping files whose content is
  /// unchanged since they were last ingested. `on_progress` is called after each group of chunks.
  MemoryOutcome ingest(const std::vector<std::filesystem::path>& paths,
                       std::function<void(const IngestProgress&)> on_progress = {});
  /// The `k` (0: memory.recall_k) memory entries closest in meaning to `query`, best first.
  MemoryOutcome search_memory(const std::string& query, int k = 0);
  /// Stores the pending background memory updates of finished runs (each run's goal, answer and
  /// llm step texts are queued when it returns, so they never delay its result). The next run
  /// and the destructor call this too; returns what could not be stored. Waits too for the run
  /// history (history.enabled) to be written; a history that cannot be is one of the returned
  /// warnings, never a failed run.
  std::vector<std::string> finish_background();

  /// Starts the MCP servers (only `server` when given), lists their tools and stops them.
  McpListing list_mcp_tools(std::string_view server = {});

  // ---- A service's side (dagent serve): one loop, many runs at once ----

  /// The executor of the loop every run uses; a service runs its own server on it.
  boost::asio::any_io_executor executor() const noexcept;
  /// Runs the loop on the calling thread until stop_loop(); the runs a service starts on it and
  /// the caller's own work (a server) go on it. Starts the configured MCP servers first (every
  /// problem is returned and the loop does not run) and stops them before returning.
  std::vector<std::string> run_loop();
  /// Makes run_loop() return once the runs underway have finished (any thread).
  void stop_loop();
  /// As run_task, as a coroutine on executor(), concurrently with the other runs started so: call
  /// it from a coroutine on executor() while run_loop() runs. The Runtime and `options` must
  /// outlive it. Refused (problems): outside run_loop(), and the blocking calls' options
  /// stop_on_sigint, record, replay and resume.
  boost::asio::awaitable<RunOutcome> run_task_async(std::string task, const RunOptions& options);
  /// As run_plan, as a coroutine on executor(); see run_task_async.
  boost::asio::awaitable<RunOutcome> run_plan_async(boost::json::value plan, boost::json::object inputs,
                                                    std::filesystem::path workspace, const RunOptions& options,
                                                    std::string task_name = "plan");

  struct Impl;  ///< the implementation (opaque; named by its own helpers)

 private:
  friend struct RuntimeAccess;  // the in-tree programs' internal entry points (not part of the API)
  explicit Runtime(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dagent
