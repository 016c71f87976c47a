#include "executor/scheduler.hpp"

#include <algorithm>
#include <cstdio>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "text/json_utf8.hpp"
#include "text/redact.hpp"
#include "text/utf8.hpp"
#include "tools/json_schema.hpp"

namespace dagent::executor {

namespace asio = boost::asio;
namespace json = boost::json;

struct Scheduler::Outcome {
  StepStatus status = StepStatus::failed;
  int attempts = 0;
  json::value output;
  std::string error;
  boost::system::error_code error_code;
  std::optional<Verdict> verdict;
};

struct Scheduler::StepState {
  StepResult result;
  std::size_t deps_left = 0;
  bool llm = false;
  asio::cancellation_signal cancel;
  asio::cancellation_signal cancel_verify;
};

// Completion handlers of the spawned step and verification coroutines: plain function objects,
// since g++ 12 mishandles coroutine lambdas with captures.
struct Scheduler::StepDone {
  Scheduler* self;
  std::size_t index;
  void operator()(std::exception_ptr e, Outcome outcome) const { self->finish(index, e, std::move(outcome)); }
};

struct Scheduler::VerifyDone {
  Scheduler* self;
  std::size_t index;
  void operator()(std::exception_ptr e, Verdict verdict) const {
    self->finish_verification(index, e, std::move(verdict));
  }
};

namespace {

// A cancellation filter that lets nothing through: while run() joins its children it must not
// be cancelled again.
struct NoCancellation {
  asio::cancellation_type_t operator()(asio::cancellation_type_t) const noexcept { return asio::cancellation_type::none; }
};

// `d` as the timer's duration, saturated: ms values from the API (or a config built in code) may
// exceed what nanoseconds hold, and now() + d must not overflow (Asio saturates the sum itself).
asio::steady_timer::duration saturated(std::chrono::milliseconds d) {
  using Ns = asio::steady_timer::duration;
  constexpr auto k_max = std::chrono::duration_cast<std::chrono::milliseconds>(Ns::max()) / 2;
  if (d <= std::chrono::milliseconds::zero()) return Ns::zero();
  return d >= k_max ? Ns::max() / 2 : std::chrono::duration_cast<Ns>(d);
}

bool retryable(const ToolError& e) {
  return e.code != ToolErrc::invalid_parameters && e.code != ToolErrc::outside_workspace &&
         e.code != ToolErrc::cancelled;
}

// Where a tool's output enters the run: whatever a tool returns (one registered by a program
// included), results, prompts and recordings only ever see valid UTF-8. Free for valid text.
// The API key is masked in it too (issue 13: a workspace file or a server may hold it).
ToolResult valid_text(ToolResult result) {
  const auto secrets = text::secrets();
  if (result) {
    text::make_valid_utf8(*result);
    secrets->mask(*result);
    return result;
  }
  ToolError error = result.error();  // error() is a copy
  text::make_valid_utf8(error.message);
  secrets->mask(error.message);
  return error;
}

// A tool's progress as a step event's message: "progress 3/10: copying" (masked, valid UTF-8).
std::string progress_text(const ToolProgress& p) {
  auto number = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return std::string(buf);
  };
  std::string text = "progress " + number(p.progress);
  if (p.total) text += "/" + number(*p.total);
  if (!p.message.empty()) text += ": " + text::valid_utf8(p.message);
  return text::secrets()->masked(text);
}

}  // namespace

SchedulerOptions SchedulerOptions::from(const config::Config& cfg) {
  const auto& pe = cfg.performance.parallel_execution;
  SchedulerOptions o;
  o.parallel = pe.enabled;
  o.max_parallel_steps = pe.enabled ? pe.max_parallel_steps : 1;
  o.max_parallel_llm_calls = pe.max_parallel_llm_calls;
  o.scheduling = pe.scheduling;
  o.step_timeout = std::chrono::milliseconds(cfg.executor.step_timeout_ms);
  o.step_retries = cfg.executor.step_retries;
  o.background_verification = cfg.performance.background_tasks.verification;
  o.max_reruns = cfg.verification.max_reruns;
  return o;
}

bool Scheduler::ReadyOrder::operator()(std::size_t a, std::size_t b) const noexcept {
  const auto ha = analysis->steps[a].height, hb = analysis->steps[b].height;
  return ha != hb ? ha < hb : a > b;
}

Scheduler::Scheduler(const Plan& plan, const Analysis& analysis, SchedulerOptions options, ToolContext base,
                     json::object inputs, Verifier& verifier, PlanGrowth growth)
    : plan_(plan),
      analysis_(analysis),
      options_(options),
      base_(std::move(base)),
      inputs_(std::move(inputs)),
      verifier_(verifier),
      growth_(growth),
      ready_(ReadyOrder{&analysis}),
      ready_llm_(ReadyOrder{&analysis}) {
  if (!options_.parallel) options_.max_parallel_steps = 1;
  options_.max_parallel_steps = std::max(1, options_.max_parallel_steps);
  options_.max_parallel_llm_calls = std::max(1, options_.max_parallel_llm_calls);
  level_remaining_.assign(analysis_.levels.size(), 0);
  for (std::size_t i = 0; i < plan_.steps.size(); ++i) {
    steps_.emplace_back();
    init(i);
  }
}

void Scheduler::init(std::size_t index) {
  auto& s = steps_[index];
  const auto& info = analysis_.steps[index];
  s.result.id = plan_.steps[index].id;
  s.result.action = plan_.steps[index].action;
  s.result.level = info.level;
  s.deps_left = 0;
  for (auto d : info.deps)
    if (steps_[d].result.status != StepStatus::succeeded) ++s.deps_left;
  s.llm = info.tool && info.tool->uses_llm();
  const auto level = static_cast<std::size_t>(info.level);
  if (level >= level_remaining_.size()) level_remaining_.resize(level + 1, 0);
  ++level_remaining_[level];
}

void Scheduler::reuse(std::size_t index, StepResult previous) {
  auto& s = steps_[index];
  previous.id = s.result.id;
  previous.action = s.result.action;
  previous.level = s.result.level;
  previous.status = StepStatus::succeeded;
  previous.slot = -1;
  s.result = std::move(previous);
  reused_.push_back(index);
}

void Scheduler::admit(std::size_t index) {
  steps_.emplace_back();
  init(index);
  auto& s = steps_[index];
  for (auto d : analysis_.steps[index].deps) {
    const auto dep_status = steps_[d].result.status;
    if (dep_status == StepStatus::failed || dep_status == StepStatus::skipped) {
      s.result.status = StepStatus::skipped;
      s.result.error = "dependency step " + std::to_string(plan_.steps[d].id) +
                       (dep_status == StepStatus::failed ? " failed" : " was skipped");
      break;
    }
  }
  if (s.result.status == StepStatus::pending && interrupted_) {
    s.result.status = StepStatus::skipped;
    s.result.error = "the run was interrupted";
  }
  if (!started_) return;  // run() picks it up
  if (s.result.status == StepStatus::skipped) {
    mark_terminal(index);
    emit(index, s.result.error);
    wake();
    return;
  }
  if (s.deps_left == 0) make_ready(index);
  dispatch();
}

void Scheduler::close() {
  closed_ = true;
  if (started_) wake();
}

Scheduler::~Scheduler() = default;

double Scheduler::now_ms() const noexcept {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
}

const json::value* Scheduler::step_output(int step_id) const {
  auto it = analysis_.index_of.find(step_id);
  if (it == analysis_.index_of.end()) return nullptr;
  const auto& r = steps_[it->second].result;
  return r.status == StepStatus::succeeded ? &r.output : nullptr;
}

asio::awaitable<ExecutionReport> Scheduler::run() {
  start_ = options_.epoch.value_or(std::chrono::steady_clock::now());
  wake_ = std::make_unique<asio::steady_timer>(co_await asio::this_coro::executor,
                                               asio::steady_timer::time_point::max());
  started_ = true;
  slot_busy_.assign(static_cast<std::size_t>(options_.max_parallel_steps), false);
  // Reused steps count as done before anything starts; their dependents wait for one less.
  for (auto i : reused_) {
    for (auto d : analysis_.steps[i].dependents) --steps_[d].deps_left;
    ++terminal_;
    --level_remaining_[static_cast<std::size_t>(steps_[i].result.level)];
    emit(i, "kept from an earlier run");
  }
  while (current_level_ + 1 < level_remaining_.size() && level_remaining_[current_level_] == 0) ++current_level_;
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    auto& s = steps_[i];
    if (s.result.status == StepStatus::skipped) {  // admitted before run() behind a failed step
      mark_terminal(i);
      emit(i, s.result.error);
    } else if (s.result.status == StepStatus::pending && s.deps_left == 0) {
      make_ready(i);
    }
  }
  if (interrupted_) stop_all();  // interrupted before run()
  dispatch();
  std::exception_ptr failure;
  try {
    while (!finished()) {
      co_await wake_->async_wait(asio::as_tuple(asio::use_awaitable));
    }
  } catch (...) {  // cancelled (the planning beside us failed, the run was abandoned)
    failure = std::current_exception();
  }
  if (failure) {
    // The spawned steps and verdicts point into this scheduler: stop them and wait until the
    // last one has finished before the exception leaves run() and the scheduler may go away.
    // Cancelled, every co_await would throw at once: first the state is reset (these two
    // co_awaits never throw), and restored before the exception goes on.
    co_await asio::this_coro::reset_cancellation_state(NoCancellation{});
    co_await asio::this_coro::throw_if_cancelled(false);
    co_await join_children();
    co_await asio::this_coro::throw_if_cancelled(true);
    // A cancellation ends run() with the report of what ran (interrupted), so the awaiting
    // operator (planning && run()) reports the other branch's failure, not this one.
    try {
      std::rethrow_exception(failure);
    } catch (const boost::system::system_error& e) {
      if (e.code() != asio::error::operation_aborted) throw;
    }
  }
  report_.steps.reserve(steps_.size());
  for (auto& s : steps_) report_.steps.push_back(std::move(s.result));
  report_.interrupted = interrupted_;
  co_return std::move(report_);
}

asio::awaitable<void> Scheduler::join_children() {
  joining_ = true;
  interrupt();
  while (!joined()) {
    co_await wake_->async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

void Scheduler::interrupt() {
  if (interrupted_) return;
  interrupted_ = true;
  if (started_) stop_all();  // before run(): run() does it once the steps are counted
}

void Scheduler::stop_all() {
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    auto& s = steps_[i];
    if (s.result.status == StepStatus::running) {
      s.cancel.emit(asio::cancellation_type::terminal);
    } else if (s.result.status == StepStatus::pending) {
      s.result.status = StepStatus::skipped;
      s.result.error = "the run was interrupted";
      mark_terminal(i);
      emit(i, s.result.error);
    }
    if (s.result.verification == VerificationStatus::pending) s.cancel_verify.emit(asio::cancellation_type::terminal);
  }
  wake();
}

bool Scheduler::finished() const noexcept {
  return (growth_ == PlanGrowth::fixed || closed_) && running_ == 0 && background_ == 0 &&
         terminal_ == steps_.size();
}

void Scheduler::wake() {
  if (wake_ && (finished() || (joining_ && joined()))) wake_->cancel();
}

void Scheduler::make_ready(std::size_t index) {
  if (options_.scheduling == config::Scheduling::levels &&
      static_cast<std::size_t>(analysis_.steps[index].level) != current_level_)
    return;  // queued when its level opens
  (steps_[index].llm ? ready_llm_ : ready_).push(index);
}

void Scheduler::dispatch() {
  while (!interrupted_ && running_ < options_.max_parallel_steps) {
    bool llm_ok = !ready_llm_.empty() && running_llm_ < options_.max_parallel_llm_calls;
    bool other_ok = !ready_.empty();
    if (!llm_ok && !other_ok) break;
    bool take_llm = llm_ok && (!other_ok || ReadyOrder{&analysis_}(ready_.top(), ready_llm_.top()));
    auto& queue = take_llm ? ready_llm_ : ready_;
    auto index = queue.top();
    queue.pop();
    start(index);
  }
}

int Scheduler::acquire_slot() {
  auto it = std::find(slot_busy_.begin(), slot_busy_.end(), false);
  *it = true;
  return static_cast<int>(it - slot_busy_.begin());
}

void Scheduler::start(std::size_t index) {
  auto& s = steps_[index];
  s.result.status = StepStatus::running;
  s.result.started_ms = now_ms();
  s.result.slot = acquire_slot();
  ++running_;
  if (s.llm) ++running_llm_;
  report_.max_concurrent = std::max(report_.max_concurrent, running_);
  emit(index);
  asio::co_spawn(wake_->get_executor(), run_step(index),
                 asio::bind_cancellation_slot(s.cancel.slot(), StepDone{this, index}));
}

asio::awaitable<ToolResult> Scheduler::invoke_once(std::size_t index, json::object params) {
  auto* observer = options_.observer;
  if (!observer) co_return co_await invoke_tool(index, std::move(params));
  const int id = plan_.steps[index].id;
  const std::string action = plan_.steps[index].action;  // a copy: the plan may grow meanwhile
  if (auto answered = observer->answer(id, action, params)) {
    observer->called(id, action, params, *answered);
    co_return std::move(*answered);
  }
  json::object seen = params;
  auto result = co_await invoke_tool(index, std::move(params));
  observer->called(id, action, seen, result);
  co_return result;
}

asio::awaitable<ToolResult> Scheduler::invoke_tool(std::size_t index, json::object params) {
  using namespace asio::experimental::awaitable_operators;
  const auto& info = analysis_.steps[index];
  ToolContext ctx = base_;
  ctx.step_id = plan_.steps[index].id;
  auto flag = std::make_shared<std::atomic<bool>>(false);
  ctx.cancelled = flag;
  ctx.on_progress = [this, index](const ToolProgress& p) { emit(index, progress_text(p)); };
  asio::steady_timer timer(co_await asio::this_coro::executor, saturated(options_.step_timeout));
  try {
    auto call = info.tool->invoke(std::move(params), ctx);
    // as_tuple: the losing timer's cancellation is a value, not an exception thrown per step.
    auto deadline = timer.async_wait(asio::as_tuple(asio::use_awaitable));
    auto winner = co_await (std::move(call) || std::move(deadline));
    if (winner.index() == 0) co_return valid_text(std::move(std::get<0>(winner)));
    flag->store(true);
    if (std::get<0>(std::get<1>(winner)))  // the timer was cancelled: the run is being interrupted
      co_return tool_error(ToolErrc::cancelled, "cancelled: the run was interrupted");
    co_return tool_error(ToolErrc::timed_out,
                         "timed out after " + std::to_string(options_.step_timeout.count()) + " ms");
  } catch (const boost::system::system_error& e) {
    flag->store(true);
    if (interrupted_ || e.code() == asio::error::operation_aborted)
      co_return tool_error(ToolErrc::cancelled, "cancelled: the run was interrupted");
    co_return valid_text(tool_error(ToolErrc::failed, e.what()));
  }
}

asio::awaitable<Scheduler::Outcome> Scheduler::run_step(std::size_t index) {
  // No reference into plan_ or analysis_ lives across a co_await: a streamed plan grows meanwhile.
  Outcome out;
  const bool critical = plan_.steps[index].critical;
  const bool check_inline = plan_.steps[index].verify && (critical || !options_.background_verification);
  for (int rerun = 0;; ++rerun) {
    const auto& step = plan_.steps[index];
    const auto& info = analysis_.steps[index];
    json::object params;
    if (info.params.slots.empty()) {
      params = step.parameters;
    } else {
      auto resolved = resolve_params(step.parameters, info.params, *this);
      if (!resolved) {
        out.error = std::move(resolved.error());
        co_return out;
      }
      if (auto problems = tools::validate_json(*resolved, info.tool->parameters_schema(), "parameters");
          !problems.empty()) {
        out.error = "after resolving references: " + problems.front();
        co_return out;
      }
      params = std::move(*resolved);
    }
    if (rerun == 0 && options_.approval && options_.approval->pattern_for(step.action)) {
      const int id = step.id;
      std::string action = step.action;  // copies: the plan may grow while the user decides
      auto verdict = options_.approval->decide_now(id, action, params);
      if (!verdict) {
        emit(index, "waiting for approval (tools.approval)");
        auto asking = options_.approval->ask(id, std::move(action), params);
        verdict = co_await std::move(asking);
      }
      steps_[index].result.approval = std::move(verdict->decision);
      steps_[index].result.approval_by = std::move(verdict->given_by);
      if (!verdict->allowed) {
        out.error = std::move(verdict->error);
        out.error_code = make_error_code(ToolErrc::failed);
        co_return out;
      }
    }

    ToolResult result = tool_error(ToolErrc::failed, "not run");
    for (int attempt = 0; attempt <= options_.step_retries; ++attempt) {
      if (attempt > 0) ++report_.retries;
      ++out.attempts;
      // Named, not a conditional inside the co_await: g++ 12 mishandles such temporaries.
      json::object call_params;
      if (attempt < options_.step_retries) {
        call_params = params;
      } else {
        call_params = std::move(params);
      }
      result = co_await invoke_once(index, std::move(call_params));
      if (result || interrupted_ || !retryable(result.error())) break;
    }
    if (!result) {
      out.error = std::move(result.error().message);
      out.error_code = result.error().code;
      co_return out;
    }
    out.output = std::move(*result);
    if (!check_inline || interrupted_) break;

    steps_[index].result.verification = VerificationStatus::pending;
    emit(index, "verifying");
    json::value criterion = *plan_.steps[index].verify;
    json::value output = out.output;
    auto verifying = verifier_.verify(std::move(criterion), std::move(output));
    Verdict verdict = co_await std::move(verifying);
    if (critical && verdict.status == VerificationStatus::error) {  // unknown is not a pass
      out.error = "verification could not be done: " + verdict.reason;
      out.error_code = verdict.code;
      out.verdict = std::move(verdict);
      co_return out;
    }
    if (!critical || verdict.status != VerificationStatus::failed) {
      out.verdict = std::move(verdict);
      break;
    }
    if (rerun >= options_.max_reruns) {
      out.error = "verification failed: " + verdict.reason;
      out.verdict = std::move(verdict);
      co_return out;
    }
    steps_[index].result.verification_reason = verdict.reason;
    emit(index, "verification failed, re-running: " + verdict.reason);
  }
  out.status = StepStatus::succeeded;
  co_return out;
}

asio::awaitable<Verdict> Scheduler::verify_in_background(std::size_t index) {
  json::value criterion = *plan_.steps[index].verify;
  json::value output = steps_[index].result.output;
  auto verdict = verifier_.verify(std::move(criterion), std::move(output));
  co_return co_await std::move(verdict);
}

void Scheduler::finish(std::size_t index, std::exception_ptr error, Outcome outcome) {
  auto& s = steps_[index];
  const auto& step = plan_.steps[index];
  --running_;
  if (s.llm) --running_llm_;
  slot_busy_[static_cast<std::size_t>(s.result.slot)] = false;
  s.result.finished_ms = now_ms();
  s.result.attempts = outcome.attempts;
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      outcome.status = StepStatus::failed;
      outcome.error = interrupted_ ? "cancelled: the run was interrupted" : std::string("internal error: ") + e.what();
    }
  }
  s.result.status = outcome.status;
  if (outcome.verdict) {
    s.result.verification = outcome.verdict->status;
    s.result.verification_reason = std::move(outcome.verdict->reason);
  }
  if (outcome.status == StepStatus::succeeded) {
    s.result.output = std::move(outcome.output);
    if (step.verify && !outcome.verdict) {
      if (interrupted_) {
        s.result.verification = VerificationStatus::error;
        s.result.verification_reason = "the run was interrupted before the verdict";
      } else {
        s.result.verification = VerificationStatus::pending;
        ++background_;
        asio::co_spawn(wake_->get_executor(), verify_in_background(index),
                       asio::bind_cancellation_slot(s.cancel_verify.slot(), VerifyDone{this, index}));
      }
    }
    emit(index);
    for (auto d : analysis_.steps[index].dependents)
      if (--steps_[d].deps_left == 0 && steps_[d].result.status == StepStatus::pending) make_ready(d);
  } else {
    s.result.error = std::move(outcome.error);
    s.result.error_code = outcome.error_code;
    if (s.result.verification == VerificationStatus::pending) s.result.verification = VerificationStatus::not_requested;
    emit(index, s.result.error);
    skip_dependents(index);
  }
  mark_terminal(index);
  dispatch();
  wake();
}

void Scheduler::finish_verification(std::size_t index, std::exception_ptr error, Verdict verdict) {
  auto& s = steps_[index];
  --background_;
  if (error) {
    verdict.status = VerificationStatus::error;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      verdict.reason = interrupted_ ? "the run was interrupted before the verdict" : std::string("verifier error: ") + e.what();
    }
  }
  s.result.verification = verdict.status;
  s.result.verification_reason = std::move(verdict.reason);
  emit(index, s.result.verification_reason);
  wake();
}

void Scheduler::skip_dependents(std::size_t failed) {
  const auto failed_id = std::to_string(plan_.steps[failed].id);
  std::vector<std::size_t> work{failed};
  while (!work.empty()) {
    auto u = work.back();
    work.pop_back();
    for (auto d : analysis_.steps[u].dependents) {
      auto& s = steps_[d];
      if (s.result.status != StepStatus::pending) continue;
      s.result.status = StepStatus::skipped;
      s.result.error = u == failed ? "dependency step " + failed_id + " failed"
                                   : "dependency step " + std::to_string(plan_.steps[u].id) + " was skipped (step " +
                                         failed_id + " failed)";
      mark_terminal(d);
      emit(d, s.result.error);
      work.push_back(d);
    }
  }
}

void Scheduler::mark_terminal(std::size_t index) {
  ++terminal_;
  auto level = static_cast<std::size_t>(analysis_.steps[index].level);
  if (--level_remaining_[level] == 0 && level == current_level_) advance_level();
}

void Scheduler::advance_level() {
  if (options_.scheduling != config::Scheduling::levels) return;
  while (current_level_ + 1 < level_remaining_.size() && level_remaining_[current_level_] == 0) {
    ++current_level_;
    for (auto i : analysis_.levels[current_level_])
      if (steps_[i].result.status == StepStatus::pending && steps_[i].deps_left == 0) make_ready(i);
  }
}

void Scheduler::emit(std::size_t index, std::string_view message) {
  if (!on_event_) return;
  const auto& r = steps_[index].result;
  StepEvent ev;
  ev.step_id = r.id;
  ev.action = r.action;
  ev.status = r.status;
  ev.verification = r.verification;
  ev.attempt = r.attempts;
  ev.slot = r.slot;
  ev.at_ms = now_ms();
  ev.message = message;
  on_event_(ev);
}

}  // namespace dagent::executor
