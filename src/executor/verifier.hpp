#pragma once
// Verification of step results (SPEC.md §3 `verify`): rule objects checked in-process, text
// criteria handed to an LLM judge.

#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>

#include "executor/run_types.hpp"

namespace dagent::executor {

struct Verdict {
  VerificationStatus status = VerificationStatus::not_requested;
  std::string reason;
  /// With status `error`: ToolErrc::unavailable when the judge's provider could not be reached
  /// (a critical step then fails as unreachable, exit 3); otherwise empty.
  boost::system::error_code code;
};

/// Problems with the shape of a `verify` value: a string, a rule object with any of `non_empty`
/// (bool), `contains` (string or list of strings), `json_schema` (object), `field` (string), or
/// a list of those. Empty when well-formed.
std::vector<std::string> check_criterion(const boost::json::value& criterion);

/// Checks every rule of `criterion` against `output`. Text criteria are left to a judge: when
/// the rules pass and text remains, the verdict is not_requested with `text_reason`.
Verdict check_rules(const boost::json::value& criterion, const boost::json::value& output,
                    std::string_view text_reason);

/// Decides whether a step's output meets its criterion; the executor awaits it on the loop.
class Verifier {
 public:
  virtual ~Verifier() = default;
  virtual boost::asio::awaitable<Verdict> verify(boost::json::value criterion, boost::json::value output) = 0;
};

/// Rules only: text criteria report not_requested, with `text_reason` saying why no judge ran.
class RuleVerifier final : public Verifier {
 public:
  explicit RuleVerifier(std::string text_reason = "a text criterion needs the LLM judge (verification.llm_judge)")
      : text_reason_(std::move(text_reason)) {}
  boost::asio::awaitable<Verdict> verify(boost::json::value criterion, boost::json::value output) override;

 private:
  std::string text_reason_;
};

}  // namespace dagent::executor
