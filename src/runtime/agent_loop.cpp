#include "runtime/agent_loop.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <variant>

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "executor/scheduler.hpp"
#include "net/net_error.hpp"
#include "planner/results_digest.hpp"
#include "runtime/public_result.hpp"
#include "tools/llm_tool.hpp"

namespace dagent::runtime {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// The provider could not be reached or refused us (exit 3): a refusal of a planning or answer
// call is the provider's, not a problem of the user's input.
bool unreachable(const std::optional<net::LlmError>& e) {
  return e && (tools::to_tool_error(*e).code == ToolErrc::unavailable || e->code == net::NetErrc::provider_refused);
}

void describe_plan(executor::RunResult& result, const Prepared& prepared, json::value plan) {
  result.plan = std::move(plan);
  result.levels.clear();
  for (const auto& level : prepared.analysis.levels) result.levels.push_back(ids_of(prepared.plan, level));
  result.critical_path = ids_of(prepared.plan, prepared.analysis.critical_path);
}

void absorb_counters(Run* run, const executor::ExecutionReport& report) {
  run->max_concurrent = std::max(run->max_concurrent, report.max_concurrent);
  run->retries += report.retries;
  run->interrupted = run->interrupted || report.interrupted;
}

void absorb(Run* run, executor::ExecutionReport report) {
  absorb_counters(run, report);
  run->result->steps = std::move(report.steps);
}

bool ran(const executor::StepResult& s) { return s.slot >= 0 || s.attempts > 0; }

// Why the steps the stream started cannot be reported as the final plan's: its own problems, a
// step that ran but is not in it, or one of its steps the stream never delivered. Empty: they agree.
std::vector<std::string> disagreements(const std::vector<executor::StepResult>& steps, const Prepared& final_plan) {
  std::vector<std::string> out;
  for (const auto& p : final_plan.problems) out.push_back("final plan: " + p);
  std::map<int, const executor::StepResult*> streamed;
  for (const auto& s : steps) streamed.emplace(s.id, &s);
  for (const auto& s : steps) {
    const auto at = final_plan.analysis.index_of.find(s.id);
    if (at == final_plan.analysis.index_of.end()) {
      if (ran(s)) out.push_back("step " + std::to_string(s.id) + " ran but is not in the final plan");
      else out.push_back("step " + std::to_string(s.id) + " was streamed but is not in the final plan");
    } else if (final_plan.plan.steps[at->second].action != s.action) {
      out.push_back("step " + std::to_string(s.id) + " ran '" + s.action + "' but the final plan says '" +
                    final_plan.plan.steps[at->second].action + "'");
    }
  }
  for (const auto& step : final_plan.plan.steps)
    if (!streamed.contains(step.id))
      out.push_back("step " + std::to_string(step.id) + " of the final plan never reached the scheduler");
  return out;
}

// `steps` (in admission order) rearranged into the order of `plan`; disagreements() is empty.
std::vector<executor::StepResult> in_plan_order(std::vector<executor::StepResult> steps, const executor::Plan& plan) {
  std::map<int, std::size_t> at;
  for (std::size_t i = 0; i < steps.size(); ++i) at.emplace(steps[i].id, i);
  std::vector<executor::StepResult> out;
  out.reserve(plan.steps.size());
  for (const auto& step : plan.steps)
    if (auto it = at.find(step.id); it != at.end()) out.push_back(std::move(steps[it->second]));
  return out;
}

// Step events go to the caller's observer and to the recording.
struct StepFanout {
  std::function<void(const StepEvent&)> user;  // the caller's, public, observer
  RunRecorder* recorder;
  void operator()(const executor::StepEvent& e) const {
    if (recorder) recorder->step(e);
    if (user) user(to_public(e));
  }
};

// The streamed answer goes to the caller and is kept, so an answer cut short is not lost.
struct AnswerSink {
  Run* run;
  void operator()(std::string_view piece) const {
    run->streamed_answer += piece;
    if (run->options().on_answer) run->options().on_answer(piece);
  }
};

// Clears the run's pointer to a scheduler that is about to go away, however its run() ends.
struct ActiveScheduler {
  Run* run;
  ActiveScheduler(Run* r, executor::Scheduler* s) : run(r) {
    run->active = s;
    if (run->interrupted) s->interrupt();
  }
  ~ActiveScheduler() { run->active = nullptr; }
  ActiveScheduler(const ActiveScheduler&) = delete;
  ActiveScheduler& operator=(const ActiveScheduler&) = delete;
};

// What `work` produced, or what it threw.
template <class T>
struct Caught {
  std::optional<T> value;
  std::exception_ptr error;
};

template <class T>
asio::awaitable<Caught<T>> caught(asio::awaitable<T> work) {
  Caught<T> out;
  try {
    out.value.emplace(co_await std::move(work));
  } catch (...) {
    out.error = std::current_exception();
  }
  co_return out;
}

// `work`, unless Ctrl-C comes first: then the call is cancelled and nullopt returned.
template <class T>
asio::awaitable<std::optional<T>> unless_interrupted(Run* run, asio::awaitable<T> work) {
  using namespace asio::experimental::awaitable_operators;
  if (run->interrupted) co_return std::nullopt;
  // Why caught(): `||` waits for one *success*; a call that throws must still end the race.
  auto winner = co_await (caught(std::move(work)) || run->interruption());
  if (winner.index() != 0) co_return std::nullopt;
  auto& done = std::get<0>(winner);
  if (done.error) std::rethrow_exception(done.error);
  co_return std::move(done.value);
}

executor::SchedulerOptions scheduler_options(Run* run) {
  auto options = executor::SchedulerOptions::from(run->cfg());
  options.epoch = run->epoch;
  options.observer = run->observer();
  options.max_remote_steps = run->distribution ? run->distribution->capacity : 0;
  if ((options.approval = run->approval())) options.approval->set_run_id(run->result->run_id);
  return options;
}

void observe(Run* run, executor::Scheduler& scheduler) {
  if (run->options().on_event || run->recorder())
    scheduler.on_event(StepFanout{run->options().on_event, run->recorder()});
}

asio::awaitable<executor::ExecutionReport> execute(Run* run, Prepared* prepared, std::vector<executor::StepResult> kept) {
  executor::Scheduler scheduler(prepared->plan, prepared->analysis, scheduler_options(run), run->tool_context(),
                                run->task.inputs, run->verifier());
  observe(run, scheduler);
  for (auto& k : kept) {
    const auto at = prepared->analysis.index_of.find(k.id);
    if (at != prepared->analysis.index_of.end() && prepared->plan.steps[at->second].action == k.action)
      scheduler.reuse(at->second, std::move(k));
  }
  ActiveScheduler active(run, &scheduler);
  co_return co_await scheduler.run();
}

// Each streamed step as the model wrote it, by id (the first with that id: the analysis admits
// no second one); a replan after an invalid streamed plan keeps these.
using StreamedSteps = std::map<int, json::object>;

// Hands each streamed step to the incremental analysis and admits what becomes runnable.
struct StepAdmitter {
  executor::IncrementalAnalysis* inc;
  executor::Scheduler* scheduler;
  StreamedSteps* written;
  void operator()(json::object step) const {
    json::object as_written = step;
    auto parsed = executor::parse_plan(json::array{json::value(std::move(step))});
    if (!parsed.problems.empty() || parsed.plan.steps.size() != 1) return;  // the final analysis reports it
    written->emplace(parsed.plan.steps.front().id, std::move(as_written));
    for (auto index : inc->add(std::move(parsed.plan.steps.front()))) scheduler->admit(index);
  }
};

// `replannable`: an invalid plan will be followed by a replan over the steps that ran, so the
// admitted steps (all valid) run to their end; otherwise they are cancelled.
asio::awaitable<planner::Planned> stream_plan(Run* run, planner::PlanningContext ctx, executor::IncrementalAnalysis* inc,
                                              executor::Scheduler* scheduler, StreamedSteps* written,
                                              bool replannable) {
  auto drafted = co_await unless_interrupted(run, run->planner().plan(ctx, StepAdmitter{inc, scheduler, written}));
  planner::Planned planned;
  if (drafted) {
    planned = std::move(*drafted);
    if (planned.draft.ok()) run->warm_for(run->prepare(json::value(planned.draft.steps)));  // for its later levels
  } else {
    planned.ctx = std::move(ctx);
    planned.draft.problems.push_back("interrupted");
  }
  run->result->metrics.planning_ms = ms_since(run->epoch);
  // What started from a plan that will not be replanned is cancelled.
  if (!planned.draft.ok() && !(replannable && drafted && !planned.draft.error)) scheduler->interrupt();
  scheduler->close();
  co_return planned;
}

asio::awaitable<void> answer_loop(Run* run, planner::PlanningContext ctx, json::array plan_steps, Prepared prepared) {
  auto& result = *run->result;
  const auto& cfg = run->cfg();
  auto* recorder = run->recorder();
  while (cfg.planner.synthesize_answer && !run->interrupted) {
    const bool allow_replan = result.replans < cfg.planner.max_replans;
    run->streamed_answer.clear();
    auto answered = co_await unless_interrupted(
        run, run->planner().synthesize(run->task.goal, result.steps, allow_replan, AnswerSink{run}));
    if (!answered) {  // Ctrl-C: what streamed so far is kept; the run fails as interrupted
      result.answer = run->streamed_answer;
      break;
    }
    auto& answer = *answered;
    if (answer.error) {  // the answer was cut (no [DONE], an error event, unreachable): the run has none
      result.answer = run->streamed_answer;
      add_error(result, "answer synthesis failed: " + answer.error->message);
      run->unreachable = run->unreachable || unreachable(answer.error);
      break;
    }
    if (answer.replan_reason.empty()) {
      result.answer = std::move(answer.text);
      if (result.answer.empty()) add_error(result, "answer synthesis failed: the model's answer was empty");
      break;
    }
    // Completed steps keep their results; only the new steps run.
    json::array kept;
    std::vector<executor::StepResult> kept_results;
    int max_id = 0;
    for (std::size_t i = 0; i < result.steps.size() && i < plan_steps.size(); ++i) {
      const auto& s = result.steps[i];
      max_id = std::max(max_id, s.id);
      if (s.status == StepStatus::succeeded && s.verification != VerificationStatus::failed &&
          s.verification != VerificationStatus::error) {
        kept.push_back(plan_steps[i]);
        kept_results.push_back(s);
      }
    }
    const auto digest = planner::digest_results(result.steps, cfg.planner.answer_budget_tokens);
    auto replanned = co_await unless_interrupted(
        run, run->planner().replan(ctx, kept, digest, answer.replan_reason, max_id + 1));
    if (!replanned) break;
    ++result.replans;
    auto& more = *replanned;
    if (!more.ok()) {
      add_error(result, "replanning failed: " + joined(more.problems));
      run->unreachable = run->unreachable || unreachable(more.error);
      break;
    }
    json::array combined = std::move(kept);
    for (auto& step : more.steps) combined.push_back(std::move(step));
    prepared = run->prepare(json::value(combined));
    if (!prepared.problems.empty()) {
      add_error(result, "replanning failed: " + joined(prepared.problems));
      break;
    }
    if (recorder) recorder->plan(combined);
    describe_plan(result, prepared, json::value(combined));
    if (run->options().on_start) run->options().on_start(to_public(result));
    absorb(run, co_await execute(run, &prepared, std::move(kept_results)));
    plan_steps = std::move(combined);
  }
}

asio::awaitable<void> resumed_goal_loop(Run* run) {
  auto& result = *run->result;
  json::array steps = *run->resume()->plan;
  auto prepared = run->prepare(json::value(steps));
  if (!prepared.problems.empty()) {
    run->problems = std::move(prepared.problems);
    co_return;
  }
  describe_plan(result, prepared, json::value(steps));
  if (run->options().on_start) run->options().on_start(to_public(result));
  absorb(run, co_await execute(run, &prepared, run->resume()->kept));
  planner::PlanningContext ctx;
  ctx.goal = run->task.goal;
  ctx.inputs = run->task.inputs;
  co_await answer_loop(run, std::move(ctx), std::move(steps), std::move(prepared));
}

// A replan may still be asked for: planner.max_replans is not used up and no budget stopped the run.
bool may_replan(Run* run) {
  return run->result->replans < run->cfg().planner.max_replans && !run->budget().exceeded();
}

// A streamed plan found invalid after some of its steps ran: the steps that ran and succeeded are
// kept (with their results, never run again), the plan's problems are the reason of a replan
// (which counts against planner.max_replans), and the new steps run beside the kept ones. True
// when the loop goes on to the answer; false when the run ends (the error names the problems).
asio::awaitable<bool> replan_streamed(Run* run, planner::PlanningContext* ctx, planner::PlanDraft* draft,
                                      Prepared* prepared, executor::ExecutionReport report,
                                      const StreamedSteps& written) {
  auto& result = *run->result;
  const auto& cfg = run->cfg();
  const std::string invalid = "the streamed plan was found invalid after its first steps ran: " + joined(draft->problems);
  json::array kept;
  std::vector<executor::StepResult> kept_results;
  int max_id = 0;
  for (const auto& s : report.steps) {  // only admitted steps: each was valid when it ran
    max_id = std::max(max_id, s.id);
    const auto as_written = written.find(s.id);
    if (ran(s) && s.status == StepStatus::succeeded && s.verification != VerificationStatus::failed &&
        s.verification != VerificationStatus::error && as_written != written.end()) {
      kept.push_back(as_written->second);
      kept_results.push_back(s);
    }
  }
  absorb(run, std::move(report));  // what ran is in the result, whatever the replan does
  const auto digest = planner::digest_results(result.steps, cfg.planner.answer_budget_tokens);
  const std::string reason = "the plan was found invalid after its first steps ran, and its other steps did not run: " +
                             joined(draft->problems);
  auto replanned = co_await unless_interrupted(run, run->planner().replan(*ctx, kept, digest, reason, max_id + 1));
  if (!replanned) co_return false;  // Ctrl-C: failed as interrupted, with what ran
  ++result.replans;
  auto& more = *replanned;
  if (!more.ok()) {
    // A budget refusal leads the run's error anyway (finished by the runtime): the plan's problems follow it.
    const bool budget = more.error && more.error->code == net::NetErrc::budget_exceeded;
    add_error(result, budget ? invalid : invalid + "; replanning failed: " + joined(more.problems));
    run->unreachable = run->unreachable || unreachable(more.error);
    co_return false;
  }
  json::array combined = std::move(kept);
  for (auto& step : more.steps) combined.push_back(std::move(step));
  *prepared = run->prepare(json::value(combined));
  if (!prepared->problems.empty()) {
    add_error(result, invalid + "; replanning failed: " + joined(prepared->problems));
    co_return false;
  }
  if (auto* recorder = run->recorder()) recorder->plan(combined);
  describe_plan(result, *prepared, json::value(combined));
  if (run->options().on_start) run->options().on_start(to_public(result));
  // Not in an initializer: g++ 12 mis-handles co_await there.
  auto executed = co_await execute(run, prepared, std::move(kept_results));
  absorb(run, std::move(executed));
  draft->steps = std::move(combined);
  draft->problems.clear();
  co_return !run->interrupted;
}

// The streamed plan: steps start as they arrive. Returns true when the loop goes on to the
// answer, false when the run ends here (interrupted, or what ran cannot be squared with the plan),
// and nullopt when nothing ran and the draft goes to repair.
asio::awaitable<std::optional<bool>> streamed(Run* run, planner::PlanningContext* ctx, planner::PlanDraft* draft,
                                              Prepared* prepared) {
  using namespace asio::experimental::awaitable_operators;
  auto& result = *run->result;
  const auto& cfg = run->cfg();
  executor::AnalysisOptions options;
  options.dependency_analysis = cfg.performance.parallel_execution.dependency_analysis;
  options.max_steps = cfg.planner.max_steps;
  options.inputs = &run->task.inputs;
  executor::IncrementalAnalysis inc(run->registry(), options);
  executor::Scheduler scheduler(inc.plan(), inc.analysis(), scheduler_options(run), run->tool_context(),
                                run->task.inputs, run->verifier(), executor::PlanGrowth::streamed);
  observe(run, scheduler);
  if (run->options().on_start) run->options().on_start(to_public(result));
  executor::ExecutionReport report;
  StreamedSteps written;
  const bool replannable = may_replan(run);
  {
    ActiveScheduler active(run, &scheduler);
    // run() joins its steps before it completes, even when planning throws and cancels it.
    auto both = co_await (stream_plan(run, *ctx, &inc, &scheduler, &written, replannable) && scheduler.run());
    *ctx = std::move(std::get<0>(both).ctx);
    *draft = std::move(std::get<0>(both).draft);
    report = std::move(std::get<1>(both));
    run->result->intent = ctx->intent;
  }
  const bool any_ran = std::any_of(report.steps.begin(), report.steps.end(), ran);
  if (draft->ok()) {
    if (auto* recorder = run->recorder()) recorder->plan(draft->steps);
    *prepared = run->prepare(json::value(draft->steps));
    auto problems = disagreements(report.steps, *prepared);
    if (problems.empty()) {
      report.steps = in_plan_order(std::move(report.steps), prepared->plan);
      describe_plan(result, *prepared, json::value(draft->steps));
      absorb(run, std::move(report));
      co_return !run->interrupted;
    }
    // The streamed steps and the whole plan disagree: report what ran, and never as a success.
    result.plan = json::value(draft->steps);
    absorb(run, std::move(report));
    add_error(result, "the streamed plan and the final plan disagree: " + joined(problems));
    co_return false;
  }
  if (!any_ran && !run->interrupted) co_return std::nullopt;  // nothing ran: a repair may still run a plan
  // Invalid after its first steps ran: a repaired plan would run over their effects, so what ran
  // is kept and a replan asks for the rest (planner.max_replans), unless Ctrl-C, a failed call or
  // a spent budget ended the plan.
  result.plan = json::value(draft->steps);
  report.interrupted = run->interrupted;  // the scheduler was stopped for the invalid plan, not by Ctrl-C
  if (replannable && !run->interrupted && !draft->error && may_replan(run))
    co_return co_await replan_streamed(run, ctx, draft, prepared, std::move(report), written);
  absorb(run, std::move(report));
  if (!run->interrupted) {
    add_error(result, "the streamed plan was found invalid after its first steps ran: " + joined(draft->problems));
    run->unreachable = run->unreachable || unreachable(draft->error);
  }
  co_return false;
}

}  // namespace

void finish_status(executor::RunResult& result) {
  bool ok = !result.interrupted && result.error.empty();
  for (const auto& s : result.steps)
    ok = ok && s.status == StepStatus::succeeded && s.verification != VerificationStatus::failed &&
         s.verification != VerificationStatus::error;
  result.status = ok ? RunStatus::succeeded : RunStatus::failed;
  if (result.interrupted) result.error = "interrupted" + (result.error.empty() ? "" : "; " + result.error);
}

asio::awaitable<void> run_goal_loop(Run* run) {
  auto& result = *run->result;
  const auto& cfg = run->cfg();
  const auto& resume = run->resume();
  if (resume && resume->plan) {  // resumed after planning: the recorded plan, its finished steps kept
    co_await resumed_goal_loop(run);
    co_return;
  }
  auto context = co_await unless_interrupted(run, run->planner().prepare(run->task.goal, run->task.inputs));
  if (!context) co_return;  // Ctrl-C: a result with nothing run, failed as interrupted
  if (!*context) {
    run->problems = std::move(context->error());
    co_return;
  }
  planner::PlanningContext ctx = std::move(**context);
  result.intent = ctx.intent;

  const auto& pe = cfg.performance.parallel_execution;
  // Levels need the whole plan, so that mode waits for it; eager starts steps as they stream in.
  const bool stream = cfg.planner.stream_plan && pe.scheduling == config::Scheduling::eager;
  planner::PlanDraft draft;
  Prepared prepared;
  ++result.plan_attempts;
  std::optional<bool> executed;
  if (stream) {
    executed = co_await streamed(run, &ctx, &draft, &prepared);
    if (executed && !*executed) co_return;
  } else {
    auto planned = co_await unless_interrupted(run, run->planner().plan(ctx, {}));
    if (!planned) co_return;
    ctx = std::move(planned->ctx);
    draft = std::move(planned->draft);
    result.intent = ctx.intent;
  }
  if (!executed) {
    if (!draft.ok() && !draft.error) {
      ++result.plan_attempts;
      auto repaired = co_await unless_interrupted(run, run->planner().repair(ctx, std::move(draft)));
      if (!repaired) co_return;
      draft = std::move(*repaired);
    }
    if (!draft.ok()) {
      run->problems = std::move(draft.problems);
      run->unreachable = unreachable(draft.error);
      co_return;
    }
    if (auto* recorder = run->recorder()) recorder->plan(draft.steps);
    prepared = run->prepare(json::value(draft.steps));
    run->warm_for(prepared);
    result.metrics.planning_ms = ms_since(run->epoch);
    describe_plan(result, prepared, json::value(draft.steps));
    if (run->options().on_start) run->options().on_start(to_public(result));
    absorb(run, co_await execute(run, &prepared, {}));
  }
  co_await answer_loop(run, ctx, std::move(draft.steps), std::move(prepared));
}

asio::awaitable<void> run_plan_loop(Run* run, Prepared* prepared) {
  std::vector<executor::StepResult> kept;
  if (run->resume()) kept = run->resume()->kept;
  absorb(run, co_await execute(run, prepared, std::move(kept)));
}

}  // namespace dagent::runtime
