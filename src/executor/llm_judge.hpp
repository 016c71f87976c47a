#pragma once
// The LLM judge: text `verify` criteria decided by the model with a structured verdict; rule
// objects are still checked in-process first.

#include <string>

#include "executor/verifier.hpp"
#include "net/llm_provider.hpp"

namespace dagent::executor {

class LlmJudge final : public Verifier {
 public:
  /// `provider` must outlive the judge.
  LlmJudge(net::LlmProvider& provider, std::string model) : provider_(provider), model_(std::move(model)) {}

  /// A judge that cannot answer (unreachable, timed out, a reply that is not a verdict) gives an
  /// `error` verdict, never a pass.
  boost::asio::awaitable<Verdict> verify(boost::json::value criterion, boost::json::value output) override;

  /// The chat request that asks whether `output` meets `criteria` (one per line).
  net::ChatRequest make_request(const std::string& criteria, const boost::json::value& output) const;

 private:
  net::LlmProvider& provider_;
  std::string model_;
};

}  // namespace dagent::executor
