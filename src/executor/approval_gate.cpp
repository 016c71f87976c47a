#include "executor/approval_gate.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include "tools/glob_pattern.hpp"

namespace dagent {

std::string_view to_string(ApprovalAnswer a) noexcept {
  switch (a) {
    case ApprovalAnswer::allow: return "allow";
    case ApprovalAnswer::deny: return "deny";
    case ApprovalAnswer::allow_always: return "allow_always";
  }
  return "deny";
}

}  // namespace dagent

namespace dagent::executor {

namespace asio = boost::asio;
namespace json = boost::json;

struct ApprovalGate::Waiter {
  explicit Waiter(const asio::any_io_executor& ex) : wake(ex, asio::steady_timer::time_point::max()) {}
  asio::steady_timer wake;  // cancelled when the waiter becomes the head
};

// A place in the queue for as long as a request waits or is being asked; leaving it (answered,
// cancelled, or the callback threw) hands the turn to the next request.
class ApprovalGate::Queued {
 public:
  Queued(ApprovalGate* gate, const asio::any_io_executor& ex)
      : gate_(gate), self_(gate->queue_.emplace(gate->queue_.end(), ex)) {}
  ~Queued() {
    const bool was_head = self_ == gate_->queue_.begin();
    gate_->queue_.erase(self_);
    if (was_head && !gate_->queue_.empty()) gate_->queue_.front().wake.cancel();
  }
  Queued(const Queued&) = delete;
  Queued& operator=(const Queued&) = delete;

  bool at_head() const noexcept { return self_ == gate_->queue_.begin(); }
  asio::steady_timer& timer() const noexcept { return self_->wake; }

 private:
  ApprovalGate* gate_;
  std::list<Waiter>::iterator self_;
};

ApprovalGate::ApprovalGate(ApprovalGateOptions options) : options_(std::move(options)) {}
ApprovalGate::~ApprovalGate() = default;

bool ApprovalGate::matches_any(const std::vector<std::string>& patterns, std::string_view tool) {
  for (const auto& p : patterns)
    if (tools::GlobPattern::match_name(p, tool)) return true;
  return false;
}

const std::string* ApprovalGate::pattern_for(std::string_view tool) const {
  for (const auto& p : options_.patterns)
    if (tools::GlobPattern::match_name(p, tool)) return &p;
  return nullptr;
}

ApprovalVerdict ApprovalGate::settle(int step_id, const std::string& tool, const json::object& params,
                                     const std::string& pattern, const ApprovalDecision& decision) {
  if (decision.answer == ApprovalAnswer::allow_always) always_.insert(tool);
  if (options_.on_decision) {
    ApprovalRecord record{step_id, tool, &params, pattern, decision.answer, decision.given_by, decision.reason};
    options_.on_decision(record);
  }
  ApprovalVerdict verdict;
  verdict.allowed = decision.answer != ApprovalAnswer::deny;
  verdict.decision = to_string(decision.answer);
  verdict.given_by = decision.given_by;
  if (!verdict.allowed)
    verdict.error = "denied by the user (tools.approval)" + (decision.reason.empty() ? "" : ": " + decision.reason);
  return verdict;
}

std::optional<ApprovalVerdict> ApprovalGate::decide_now(int step_id, const std::string& tool,
                                                        const json::object& params) {
  const auto* matched = pattern_for(tool);
  const std::string pattern = matched ? *matched : tool;
  if (options_.recorded) {  // a replay: the recording answers, or the flags, never the callback
    if (auto replayed = options_.recorded(step_id, tool, params)) {
      replayed->given_by = "recording";
      return settle(step_id, tool, params, pattern, *replayed);
    }
  } else if (always_.contains(tool)) {
    return settle(step_id, tool, params, pattern, ApprovalDecision{ApprovalAnswer::allow, {}, "always"});
  }
  if (options_.approve_all || matches_any(options_.approved, tool))
    return settle(step_id, tool, params, pattern, ApprovalDecision{ApprovalAnswer::allow, {}, "flag"});
  if (options_.recorded || !options_.ask) {
    ApprovalVerdict refused;
    refused.allowed = false;
    refused.error = "needs approval (tools.approval: " + pattern + "); give --approve " + tool + " or --yes";
    if (options_.recorded) refused.error += " (the recording holds no decision for this call)";
    return refused;
  }
  return std::nullopt;
}

asio::awaitable<ApprovalVerdict> ApprovalGate::ask(int step_id, std::string tool, json::object params) {
  const auto* matched = pattern_for(tool);
  const std::string pattern = matched ? *matched : tool;
  // One request is asked at a time, in arrival order; the others wait on their own timer, which
  // the departing head cancels.
  Queued queued(this, co_await asio::this_coro::executor);
  while (!queued.at_head()) {
    co_await queued.timer().async_wait(asio::as_tuple(asio::use_awaitable));
    const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none)
      throw boost::system::system_error(asio::error::operation_aborted);
  }
  if (always_.contains(tool))  // answered "always" while this request waited
    co_return settle(step_id, tool, params, pattern, ApprovalDecision{ApprovalAnswer::allow, {}, "always"});
  const ApprovalRequest request{run_id_, step_id, tool, std::move(params), pattern};
  ApprovalDecision decision = co_await options_.ask(request);
  if (decision.given_by.empty()) decision.given_by = "callback";
  co_return settle(step_id, tool, request.parameters, pattern, decision);
}

}  // namespace dagent::executor
