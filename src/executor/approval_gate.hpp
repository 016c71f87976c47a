#pragma once
// tools.approval: decides, before a step's tool is called with its resolved parameters, whether
// the call may run — from a replayed recording, the run's flags (--approve, --yes), an earlier
// "always", or by asking the run's approval callback, one request at a time in arrival order.

#include <functional>
#include <list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include "dagent/approval.hpp"

namespace dagent::executor {

/// A decision as it is recorded: which call, what was decided, how.
struct ApprovalRecord {
  int step_id = 0;
  std::string tool;
  const boost::json::object* parameters = nullptr;  ///< valid during the on_decision call only
  std::string pattern;
  ApprovalAnswer answer = ApprovalAnswer::deny;
  std::string given_by;  ///< terminal, flag, callback, always, recording (or the callback's own word)
  std::string reason;
};

/// What a step may do: run its tool, or fail with `error`.
struct ApprovalVerdict {
  bool allowed = true;
  std::string error;     ///< when not allowed: "denied by the user (tools.approval)…" or "needs approval (…)…"
  std::string decision;  ///< empty: no approval was needed (or none could be had); else allow | deny | allow_always
  std::string given_by;
};

struct ApprovalGateOptions {
  std::vector<std::string> patterns;  ///< tools.approval
  std::vector<std::string> approved;  ///< approved in advance (--approve), names or patterns
  bool approve_all = false;           ///< --yes
  ApprovalCallback ask;               ///< may be empty: then calls not answered otherwise fail
  /// A replay: the recorded decision for a call, or nullopt when the recording has none; the
  /// callback is never asked then.
  std::function<std::optional<ApprovalDecision>(int step_id, std::string_view tool, const boost::json::object&)>
      recorded;
  std::function<void(const ApprovalRecord&)> on_decision;  ///< sees each decision (recording)
};

/// One per run, on the run's loop (not thread-safe); "always" answers last for the run.
class ApprovalGate {
 public:
  explicit ApprovalGate(ApprovalGateOptions options);
  ~ApprovalGate();
  ApprovalGate(const ApprovalGate&) = delete;
  ApprovalGate& operator=(const ApprovalGate&) = delete;

  void set_run_id(std::string id) { run_id_ = std::move(id); }

  /// The tools.approval entry that `tool` matches, or nullptr: no approval needed. Cheap.
  const std::string* pattern_for(std::string_view tool) const;

  /// Decides at once on one call of `tool` (pattern_for(tool) non-null) when no one needs to be
  /// asked: a replayed decision, --approve / --yes, an earlier "always", or no callback to ask
  /// (then "needs approval"). nullopt: ask().
  std::optional<ApprovalVerdict> decide_now(int step_id, const std::string& tool, const boost::json::object& params);
  /// Asks the callback about one call, after the requests before it; cancellable (a cancelled
  /// wait throws and leaves the queue). Time spent here is not part of a step's timeout.
  boost::asio::awaitable<ApprovalVerdict> ask(int step_id, std::string tool, boost::json::object params);

 private:
  struct Waiter;
  class Queued;

  static bool matches_any(const std::vector<std::string>& patterns, std::string_view tool);
  ApprovalVerdict settle(int step_id, const std::string& tool, const boost::json::object& params,
                         const std::string& pattern, const ApprovalDecision& decision);

  ApprovalGateOptions options_;
  std::string run_id_;
  std::set<std::string, std::less<>> always_;  // tools answered "always" in this run
  std::list<Waiter> queue_;                    // requests waiting for the callback; the head is being asked
};

}  // namespace dagent::executor
