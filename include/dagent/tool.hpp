#pragma once
// The tool interface: what a plan step's `action` names. Built-in tools and tools registered by
// programs that embed dagent implement it the same way.

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace dagent {

class Workspace;

/// Why a tool call failed.
enum class ToolErrc {
  invalid_parameters = 1,  ///< parameters missing, of the wrong type, or out of range
  outside_workspace,       ///< a path is absolute, escapes with `..` or a symlink, or holds NUL
  not_found,               ///< a named file or folder does not exist
  io_error,                ///< the operating system refused a read or write
  timed_out,               ///< the step's time limit ran out
  cancelled,               ///< the run was interrupted
  failed,                  ///< any other failure the tool reports
  unavailable,             ///< a service the tool needs (the LLM provider) could not be reached or refused us
};

const boost::system::error_category& tool_category() noexcept;
boost::system::error_code make_error_code(ToolErrc e) noexcept;

/// A failed tool call: a code to branch on and a message for people (names the path or field).
struct ToolError {
  boost::system::error_code code;
  std::string message;
};
[[noreturn]] void throw_exception_from_error(const ToolError& e, const boost::source_location& loc);

/// A tool's output (a JSON value, usually an object) or why it failed.
using ToolResult = boost::system::result<boost::json::value, ToolError>;

/// Shorthand for a failed ToolResult.
ToolResult tool_error(ToolErrc code, std::string message);

/// How far a long call has come (an MCP server's notifications/progress), for the live view.
struct ToolProgress {
  double progress = 0;
  std::optional<double> total;  ///< when known
  std::string message;          ///< may be empty; untrusted text (the view strips it for the terminal)
};

/// What a tool call may use besides its parameters.
struct ToolContext {
  int step_id = 0;
  int item = -1;     ///< a for_each item's index; -1 for a plain step
  int attempt = 1;   ///< 1 for the first call of this step (or item), counting retries and re-runs
  const Workspace* workspace = nullptr;           ///< the sandbox every path must stay inside
  std::shared_ptr<const std::atomic<bool>> cancelled;  ///< set when the step is timed out or the run interrupted
  boost::asio::any_io_executor worker;            ///< pool for blocking work (BlockingTool uses it)
  std::function<void(const ToolProgress&)> on_progress;  ///< set by the runtime; call on the loop thread

  bool is_cancelled() const noexcept { return cancelled && cancelled->load(std::memory_order_relaxed); }
  /// Reports progress of this call to the run's observers (nothing when no one listens).
  void report_progress(const ToolProgress& p) const {
    if (on_progress) on_progress(p);
  }
};

/// A named capability that plans call as a step's `action`.
class Tool {
 public:
  virtual ~Tool() = default;

  virtual std::string_view name() const = 0;
  virtual std::string_view description() const = 0;
  /// JSON Schema of the parameters object (subset: type, properties, required, items, enum,
  /// additionalProperties, minimum, maximum); checked at plan validation and before each call.
  virtual const boost::json::object& parameters_schema() const = 0;
  /// Tools that call the LLM count against `max_parallel_llm_calls`.
  virtual bool uses_llm() const { return false; }
  /// Runs in another process (a `dagent worker`): bounded by the workers' capacity
  /// (execution.max_remote_in_flight), not by max_parallel_steps.
  virtual bool runs_on_worker() const { return false; }

  /// Performs the call. Awaited on the event loop, so it must not block; honour cancellation of
  /// the awaiting coroutine (the step's timeout races it).
  virtual boost::asio::awaitable<ToolResult> invoke(boost::json::object params, ToolContext ctx) = 0;
};

/// Base for tools whose work blocks (file system, subprocesses): run() executes on the worker
/// pool and the step resumes on the loop. On timeout or interrupt the step completes at once
/// and ctx.cancelled is set; run() should check it in long loops, and its late result is dropped.
class BlockingTool : public Tool {
 public:
  boost::asio::awaitable<ToolResult> invoke(boost::json::object params, ToolContext ctx) final;
  virtual ToolResult run(const boost::json::object& params, const ToolContext& ctx) = 0;
};

}  // namespace dagent

namespace boost::system {
template <>
struct is_error_code_enum<dagent::ToolErrc> : std::true_type {};
}  // namespace boost::system
