// SPEC §5 JSON of a run, and the names of its enums: one writer for the executor's result (with
// slots) and the public one (without).

#include "executor/run_types.hpp"

#include "dagent/run_result.hpp"
#include "dagent/tool.hpp"

#include <algorithm>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

namespace dagent {

namespace json = boost::json;

std::string_view to_string(StepStatus s) noexcept {
  switch (s) {
    case StepStatus::pending: return "pending";
    case StepStatus::running: return "running";
    case StepStatus::succeeded: return "succeeded";
    case StepStatus::failed: return "failed";
    case StepStatus::skipped: return "skipped";
  }
  return "unknown";
}

std::string_view to_string(VerificationStatus s) noexcept {
  switch (s) {
    case VerificationStatus::not_requested: return "not_requested";
    case VerificationStatus::pending: return "pending";
    case VerificationStatus::passed: return "passed";
    case VerificationStatus::failed: return "failed";
    case VerificationStatus::error: return "error";
  }
  return "unknown";
}

std::string_view to_string(RunStatus s) noexcept { return s == RunStatus::succeeded ? "succeeded" : "failed"; }

std::string_view to_string(PlanningPhase p) noexcept {
  switch (p) {
    case PlanningPhase::routing: return "routing";
    case PlanningPhase::intent: return "intent";
    case PlanningPhase::recall: return "recall";
    case PlanningPhase::catalog: return "catalog";
    case PlanningPhase::planning: return "planning";
    case PlanningPhase::plan_step: return "plan step";
    case PlanningPhase::repair: return "repair";
    case PlanningPhase::synthesis: return "answer";
    case PlanningPhase::replan: return "replan";
  }
  return "?";
}

namespace {

json::array ids_to_json(const std::vector<int>& ids) {
  json::array a;
  a.reserve(ids.size());
  for (int id : ids) a.emplace_back(id);
  return a;
}

// Milliseconds rounded to microseconds: enough precision, shorter JSON.
double round_ms(double ms) { return static_cast<double>(static_cast<std::int64_t>(ms * 1000.0 + 0.5)) / 1000.0; }

// The one SPEC §5 writer: `slot` is written where the result type has it (the executor's), and
// left out of the public result's JSON.
template <class Result>
json::object result_json(const Result& r) {
  json::object o;
  o["run_id"] = r.run_id;
  o["task"] = r.task;
  o["status"] = to_string(r.status);
  o["plan"] = r.plan;
  json::array levels;
  for (const auto& level : r.levels) levels.emplace_back(ids_to_json(level));
  o["levels"] = std::move(levels);
  o["critical_path"] = ids_to_json(r.critical_path);
  json::array steps;
  steps.reserve(r.steps.size());
  for (const auto& s : r.steps) {
    json::object j;
    j["id"] = s.id;
    j["action"] = s.action;
    j["level"] = s.level;
    j["status"] = to_string(s.status);
    j["attempts"] = s.attempts;
    j["started_ms"] = round_ms(s.started_ms);
    j["finished_ms"] = round_ms(s.finished_ms);
    if constexpr (requires { s.slot; }) j["slot"] = s.slot;
    j["output"] = s.output;
    j["error"] = s.error.empty() ? json::value(nullptr) : json::value(s.error);
    json::object v;
    v["status"] = to_string(s.verification);
    v["reason"] = s.verification_reason;
    j["verification"] = std::move(v);
    if (s.fan_out) {
      json::array items;
      items.reserve(s.items.size());
      for (const auto& item : s.items) {
        json::object i{{"index", item.index},
                       {"status", to_string(item.status)},
                       {"attempts", item.attempts},
                       {"duration_ms", round_ms(std::max(0.0, item.finished_ms - item.started_ms))},
                       {"started_ms", round_ms(item.started_ms)},
                       {"finished_ms", round_ms(item.finished_ms)}};
        if constexpr (requires { item.slot; }) i["slot"] = item.slot;
        if (!item.error.empty()) i["error"] = item.error;
        items.emplace_back(std::move(i));
      }
      j["items"] = std::move(items);
    }
    if (!s.approval.empty()) j["approval"] = json::object{{"decision", s.approval}, {"by", s.approval_by}};
    steps.emplace_back(std::move(j));
  }
  o["steps"] = std::move(steps);
  o["answer"] = r.answer.empty() ? json::value(nullptr) : json::value(r.answer);
  if (r.plan_attempts > 0) {
    o["planning"] = json::object{{"intent", r.intent}, {"attempts", r.plan_attempts}, {"replans", r.replans}};
  }
  o["error"] = r.error.empty() ? json::value(nullptr) : json::value(r.error);
  const auto& m = r.metrics;
  o["metrics"] = json::object{{"wall_ms", round_ms(m.wall_ms)},
                              {"llm_calls", m.llm_calls},
                              {"prompt_tokens", m.prompt_tokens},
                              {"completion_tokens", m.completion_tokens},
                              {"embedding_calls", m.embedding_calls},
                              {"retries", m.retries},
                              {"retries_refused", m.retries_refused},
                              {"rate_limit_wait_ms", round_ms(m.rate_limit_wait_ms)},
                              {"cache_hits", m.cache_hits},
                              {"cache_l2_hits", m.cache_l2_hits},
                              {"cache_l2_errors", m.cache_l2_errors},
                              {"connections_opened", m.connections_opened},
                              {"rate_limit_fallback_calls", m.rate_limit_fallback_calls},
                              {"max_concurrent_steps", m.max_concurrent_steps},
                              {"planning_ms", round_ms(m.planning_ms)}};
  return o;
}

}  // namespace

json::object to_json(const RunResult& r) { return result_json(r); }

namespace executor {

json::object to_json(const RunResult& r) { return result_json(r); }

bool failed_unavailable(const StepResult& s) noexcept {
  return s.status == StepStatus::failed && s.error_code == ToolErrc::unavailable;
}

}  // namespace executor

}  // namespace dagent
