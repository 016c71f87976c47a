#include "runtime/approval_replay.hpp"

#include <boost/json/serialize.hpp>

#include "net/sha256.hpp"

namespace dagent::runtime {

namespace json = boost::json;

namespace {

std::string key_of(std::int64_t step_id, std::string_view tool, std::string_view digest) {
  return std::to_string(step_id) + "\n" + std::string(tool) + "\n" + std::string(digest);
}

std::optional<ApprovalAnswer> answer_of(std::string_view text) {
  if (text == "allow") return ApprovalAnswer::allow;
  if (text == "deny") return ApprovalAnswer::deny;
  if (text == "allow_always") return ApprovalAnswer::allow_always;
  return std::nullopt;
}

}  // namespace

std::string params_digest(const json::object& params) { return net::sha256_hex(json::serialize(params)); }

ApprovalReplay::ApprovalReplay(const record::Recording& recording) {
  for (const auto& event : recording.events) {
    const auto* type = event.if_contains("type");
    if (!type || *type != "approval") continue;
    const auto* step = event.if_contains("step");
    const auto* tool = event.if_contains("action");
    const auto* digest = event.if_contains("params_sha256");
    const auto* decision = event.if_contains("decision");
    if (!step || !step->is_int64() || !tool || !tool->is_string() || !digest || !digest->is_string() || !decision ||
        !decision->is_string())
      continue;
    const auto answer = answer_of(decision->get_string());
    if (!answer) continue;  // an unknown decision is no decision: the step needs approval again
    ApprovalDecision d;
    d.answer = *answer;
    if (const auto* reason = event.if_contains("reason"); reason && reason->is_string()) d.reason = reason->get_string();
    decisions_[key_of(step->get_int64(), tool->get_string(), digest->get_string())].push_back(std::move(d));
  }
}

std::optional<ApprovalDecision> ApprovalReplay::find(int step_id, std::string_view tool, const json::object& params) {
  auto it = decisions_.find(key_of(step_id, tool, params_digest(params)));
  if (it == decisions_.end() || it->second.empty()) return std::nullopt;
  ApprovalDecision d = it->second.front();
  if (it->second.size() > 1) it->second.pop_front();  // the last decision repeats
  return d;
}

}  // namespace dagent::runtime
