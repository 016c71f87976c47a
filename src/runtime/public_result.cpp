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

ItemResult item_of(executor::ItemResult&& i) {
  return {.index = i.index, .status = i.status, .attempts = i.attempts, .started_ms = i.started_ms,
          .finished_ms = i.finished_ms, .error = std::move(i.error)};
}

// Moves: a step's output may be a whole file, and the executor's result is not needed after.
StepResult step_of(executor::StepResult&& s) {
  const bool unavailable = executor::failed_unavailable(s);
  StepResult out{.id = s.id, .action = std::move(s.action), .level = s.level, .status = s.status,
                 .attempts = s.attempts, .started_ms = s.started_ms, .finished_ms = s.finished_ms,
                 .output = std::move(s.output), .error = std::move(s.error), .unavailable = unavailable,
                 .verification = s.verification, .verification_reason = std::move(s.verification_reason),
                 .approval = std::move(s.approval), .approval_by = std::move(s.approval_by), .fan_out = s.fan_out,
                 .items = {}};
  out.items.reserve(s.items.size());
  for (auto& i : s.items) out.items.push_back(item_of(std::move(i)));
  return out;
}

}  // namespace

RunResult to_public(executor::RunResult&& r) {
  RunResult out{.run_id = std::move(r.run_id), .task = std::move(r.task), .status = r.status,
                .plan = std::move(r.plan), .levels = std::move(r.levels), .critical_path = std::move(r.critical_path),
                .steps = {}, .answer = std::move(r.answer), .intent = std::move(r.intent),
                .plan_attempts = r.plan_attempts, .replans = r.replans, .error = std::move(r.error),
                .interrupted = r.interrupted, .metrics = r.metrics};
  out.steps.reserve(r.steps.size());
  for (auto& s : r.steps) out.steps.push_back(step_of(std::move(s)));
  return out;
}

RunResult to_public(const executor::RunResult& r) { return to_public(executor::RunResult(r)); }

RunOutcome to_public(Outcome o) {
  return RunOutcome{.problems = std::move(o.problems), .unreachable = o.unreachable,
                    .result = to_public(std::move(o.result))};
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
