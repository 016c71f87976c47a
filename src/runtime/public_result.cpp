// The executor's results and events as the public structs: the same fields without the
// scheduler's slots, and a tool's error code as the one fact users act on (unavailable: exit 3).

#include "runtime/public_result.hpp"

namespace dagent {

namespace {

// SPEC §1, one rule for both outcomes; `unavailable` tells a step whose tool could not be reached.
template <class Result, class Unavailable>
int exit_code_of(bool has_problems, bool unreachable, const Result& result, Unavailable unavailable) {
  if (has_problems) return unreachable ? 3 : 2;
  if (result.status == RunStatus::succeeded) return 0;
  if (unreachable) return 3;
  for (const auto& s : result.steps)
    if (unavailable(s)) return 3;
  return 1;
}

bool public_unavailable(const StepResult& s) { return s.unavailable; }

}  // namespace

int RunOutcome::exit_code() const noexcept {
  return exit_code_of(!problems.empty(), unreachable, result, public_unavailable);
}

namespace runtime {

int Outcome::exit_code() const noexcept {
  return exit_code_of(!problems.empty(), unreachable, result, executor::failed_unavailable);
}

namespace {

ItemResult item_of(const executor::ItemResult& i) {
  return {.index = i.index, .status = i.status, .attempts = i.attempts, .started_ms = i.started_ms,
          .finished_ms = i.finished_ms, .error = i.error};
}

StepResult step_of(const executor::StepResult& s) {
  StepResult out{.id = s.id, .action = s.action, .level = s.level, .status = s.status, .attempts = s.attempts,
                 .started_ms = s.started_ms, .finished_ms = s.finished_ms, .output = s.output, .error = s.error,
                 .unavailable = executor::failed_unavailable(s), .verification = s.verification,
                 .verification_reason = s.verification_reason, .approval = s.approval,
                 .approval_by = s.approval_by, .fan_out = s.fan_out, .items = {}};
  out.items.reserve(s.items.size());
  for (const auto& i : s.items) out.items.push_back(item_of(i));
  return out;
}

}  // namespace

RunResult to_public(const executor::RunResult& r) {
  RunResult out{.run_id = r.run_id, .task = r.task, .status = r.status, .plan = r.plan, .levels = r.levels,
                .critical_path = r.critical_path, .steps = {}, .answer = r.answer, .intent = r.intent,
                .plan_attempts = r.plan_attempts, .replans = r.replans, .error = r.error,
                .interrupted = r.interrupted, .metrics = r.metrics};
  out.steps.reserve(r.steps.size());
  for (const auto& s : r.steps) out.steps.push_back(step_of(s));
  return out;
}

RunOutcome to_public(Outcome o) {
  return RunOutcome{.problems = std::move(o.problems), .unreachable = o.unreachable, .result = to_public(o.result)};
}

StepEvent to_public(const executor::StepEvent& e) {
  return {.step_id = e.step_id, .action = e.action, .status = e.status, .verification = e.verification,
          .attempt = e.attempt, .at_ms = e.at_ms, .message = e.message, .item = e.item, .items = e.items,
          .items_done = e.items_done, .items_failed = e.items_failed};
}

PlanningEvent to_public(const planner::PlanningEvent& e) {
  return {.phase = e.phase, .finished = e.finished, .at_ms = e.at_ms, .detail = e.detail};
}

}  // namespace runtime

}  // namespace dagent
