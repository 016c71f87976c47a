#pragma once
// Human approval of risky tool calls (config `tools.approval`): what a program's approval
// callback is asked and what it answers.

#include <functional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

namespace dagent {

/// A step whose tool matches `tools.approval` is about to run with these resolved parameters.
struct ApprovalRequest {
  std::string run_id;
  int step_id = 0;
  std::string tool;                ///< the step's action
  boost::json::object parameters;  ///< after references were resolved: what the tool will get
  std::string pattern;             ///< the `tools.approval` entry that matched
};

enum class ApprovalAnswer {
  allow,         ///< this call runs
  deny,          ///< this call does not run; the step fails "denied by the user (tools.approval)"
  allow_always,  ///< this call and every later call of the same tool in this run run without asking
};

std::string_view to_string(ApprovalAnswer a) noexcept;

/// The answer to one ApprovalRequest.
struct ApprovalDecision {
  ApprovalAnswer answer = ApprovalAnswer::deny;
  std::string reason;              ///< optional; a denied step's error quotes it
  std::string given_by = "callback";  ///< how it was given, for the recording (the CLI says "terminal")
};

/// Asked on the runtime's loop, one request at a time in the order the steps reached it (other
/// steps keep running meanwhile). The request lives until the returned awaitable completes.
/// When the run is interrupted while it waits, the awaitable is cancelled.
using ApprovalCallback = std::function<boost::asio::awaitable<ApprovalDecision>(const ApprovalRequest&)>;

}  // namespace dagent
