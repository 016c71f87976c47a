#pragma once
// The terminal's answer to tools.approval: shows the step, its tool and resolved parameters and
// asks "Allow? [y]es / [n]o / [a]lways for this run", reading the answer on the run's loop (other
// steps keep running meanwhile).

#include <cstdio>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "dagent/approval.hpp"

namespace dagent::cli {

class LiveView;

class ApprovalPrompt {
 public:
  /// Asks on `out` (a terminal) and reads the terminal on stdin; `view` is paused while asking.
  ApprovalPrompt(LiveView& view, std::FILE* out);
  ~ApprovalPrompt();
  ApprovalPrompt(const ApprovalPrompt&) = delete;
  ApprovalPrompt& operator=(const ApprovalPrompt&) = delete;

  /// True when stdin and stderr are both terminals: only then is anyone there to ask.
  static bool available();

  struct Impl;

 private:
  friend struct ApprovalPromptHook;
  std::unique_ptr<Impl> impl_;
};

/// The RunOptions::approve callback that asks through `prompt`.
struct ApprovalPromptHook {
  ApprovalPrompt* prompt;
  boost::asio::awaitable<ApprovalDecision> operator()(const ApprovalRequest& request) const;
};

/// What the prompt shows of `request`: step, tool, the matching tools.approval entry and each
/// parameter as JSON, every value cut to a readable size. Not yet filtered for the terminal.
std::string describe_request(const ApprovalRequest& request);

}  // namespace dagent::cli
