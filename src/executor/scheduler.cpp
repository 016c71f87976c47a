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

// A for_each step once its list is known: the items' outputs in item order, which item is next
// to start, and the items' own cancellation signals.
struct Scheduler::FanOut {
  json::array list;
  json::array outputs;
  std::unique_ptr<asio::cancellation_signal[]> cancel;
  std::size_t next = 0;     // the next item to start; items before it started, were kept or skipped
  std::size_t done = 0;     // items that reached a final status
  std::size_t failed = 0;
  std::size_t skipped = 0;  // never started: the run was interrupted
  std::size_t running = 0;
  int reruns = 0;
  bool verifying = false;   // the whole list's verdict is awaited before the step ends

  std::size_t size() const noexcept { return list.size(); }
};

struct Scheduler::StepState {
  StepResult result;
  std::size_t deps_left = 0;
  bool llm = false;
  bool remote = false;  // the tool runs on a worker: counted against max_remote_steps
  asio::cancellation_signal cancel;
  asio::cancellation_signal cancel_verify;
  std::unique_ptr<FanOut> fan;            // for_each: set when the step starts
  std::unique_ptr<StepResult> partial;    // for_each: items kept from an interrupted run (rare: kept out of line)
};

struct Scheduler::ItemOutcome {
  bool ok = false;
  int attempts = 0;
  json::value output;
  std::string error;
  boost::system::error_code error_code;
};

// Completion handlers of the spawned step and verification coroutines: plain function objects,
// since g++ 12 mishandles coroutine lambdas with captures.
struct Scheduler::StepDone {
  Scheduler* self;
  std::size_t index;
  void operator()(std::exception_ptr e, Outcome outcome) const { self->finish(index, e, std::move(outcome)); }
};

struct Scheduler::ItemDone {
  Scheduler* self;
  std::size_t index;
  std::size_t item;
  void operator()(std::exception_ptr e, ItemOutcome outcome) const {
    self->finish_item(index, item, e, std::move(outcome));
  }
};

struct Scheduler::FanVerifyDone {
  Scheduler* self;
  std::size_t index;
  void operator()(std::exception_ptr e, Verdict verdict) const {
    self->finish_fan_verification(index, e, std::move(verdict));
  }
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

// The references of one item of a for_each step: `$item` and `$index` are its own, the rest the
// scheduler's. Lives only while the item's parameters are resolved (no suspension).
class ItemSource final : public ReferenceSource {
 public:
  ItemSource(const ReferenceSource& outer, const json::value& item, std::size_t index)
      : outer_(outer), item_(item), index_(static_cast<std::uint64_t>(index)) {}
  const json::value* step_output(int step_id) const override { return outer_.step_output(step_id); }
  const json::object& inputs() const override { return outer_.inputs(); }
  const json::value* item() const override { return &item_; }
  const json::value* item_index() const override { return &index_; }

 private:
  const ReferenceSource& outer_;
  const json::value& item_;
  json::value index_;
};

// "item 3 failed: …" or "2 of 500 items failed; item 3: …", from the first failed item.
std::string fan_out_error(const std::vector<ItemResult>& items, std::size_t failed) {
  for (const auto& item : items) {
    if (item.status != StepStatus::failed) continue;
    if (failed == 1) return "item " + std::to_string(item.index) + " failed: " + item.error;
    return std::to_string(failed) + " of " + std::to_string(items.size()) + " items failed; item " +
           std::to_string(item.index) + ": " + item.error;
  }
  return "an item failed";
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
  o.max_fan_out = static_cast<std::size_t>(cfg.executor.max_fan_out);
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
      ready_llm_(ReadyOrder{&analysis}),
      ready_remote_(ReadyOrder{&analysis}) {
  if (!options_.parallel) options_.max_parallel_steps = 1;
  options_.max_parallel_steps = std::max(1, options_.max_parallel_steps);
  options_.max_parallel_llm_calls = std::max(1, options_.max_parallel_llm_calls);
  options_.max_remote_steps = std::max(0, options_.max_remote_steps);
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
  // Why the check on max_remote_steps: with no remote capacity a remote tool takes a local slot.
  s.remote = info.tool && info.tool->runs_on_worker() && options_.max_remote_steps > 0 && !s.llm;
  const auto level = static_cast<std::size_t>(info.level);
  if (level >= level_remaining_.size()) level_remaining_.resize(level + 1, 0);
  ++level_remaining_[level];
}

void Scheduler::reuse(std::size_t index, StepResult previous) {
  auto& s = steps_[index];
  if (previous.status == StepStatus::pending) {  // a for_each step cut short: some items are kept
    if (analysis_.steps[index].fan_out) s.partial = std::make_unique<StepResult>(std::move(previous));
    return;
  }
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
  slot_busy_.assign(static_cast<std::size_t>(options_.max_parallel_steps + options_.max_remote_steps), false);
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
    if (s.result.status == StepStatus::running && s.fan) {
      stop_fan_out(i);
    } else if (s.result.status == StepStatus::running) {
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
  (steps_[index].remote ? ready_remote_ : steps_[index].llm ? ready_llm_ : ready_).push(index);
}

void Scheduler::dispatch() {
  while (!interrupted_) {
    // Remote steps have their own bound (the workers' capacity); the others share max_parallel_steps.
    const bool local_room = running_ - running_remote_ < options_.max_parallel_steps;
    bool llm_ok = local_room && !ready_llm_.empty() && running_llm_ < options_.max_parallel_llm_calls;
    bool other_ok = local_room && !ready_.empty();
    bool remote_ok = !ready_remote_.empty() && running_remote_ < options_.max_remote_steps;
    if (!llm_ok && !other_ok && !remote_ok) break;
    // Among the queues that may start one, the step on the longest remaining path goes first.
    auto* queue = llm_ok ? &ready_llm_ : other_ok ? &ready_ : &ready_remote_;
    const ReadyOrder before{&analysis_};
    if (other_ok && before(queue->top(), ready_.top())) queue = &ready_;
    if (remote_ok && before(queue->top(), ready_remote_.top())) queue = &ready_remote_;
    auto index = queue->top();
    queue->pop();
    if (!analysis_.steps[index].fan_out) {
      start(index);
      continue;
    }
    // A for_each step stays in the queue while it has items to start, one slot per item.
    if (steps_[index].result.status == StepStatus::pending && !open_fan_out(index)) continue;
    start_item(index);
    if (steps_[index].fan->next < steps_[index].fan->size()) queue->push(index);
  }
  if (settled_in_dispatch_) {
    settled_in_dispatch_ = false;
    wake();
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
  if (s.remote) ++running_remote_;
  report_.max_concurrent = std::max(report_.max_concurrent, running_);
  emit(index);
  asio::co_spawn(wake_->get_executor(), run_step(index),
                 asio::bind_cancellation_slot(s.cancel.slot(), StepDone{this, index}));
}

boost::system::result<json::object, std::string> Scheduler::call_parameters(std::size_t index,
                                                                              const ReferenceSource& source) const {
  const auto& step = plan_.steps[index];
  const auto& info = analysis_.steps[index];
  if (info.params.slots.empty()) return step.parameters;
  auto resolved = resolve_params(step.parameters, info.params, source);
  if (!resolved) return std::move(resolved.error());
  if (auto problems = tools::validate_json(*resolved, info.tool->parameters_schema(), "parameters"); !problems.empty())
    return "after resolving references: " + problems.front();
  return resolved;
}

asio::awaitable<std::optional<ToolError>> Scheduler::seek_approval(std::size_t index, int item,
                                                                   const json::object& params) {
  const int id = plan_.steps[index].id;
  std::string action = plan_.steps[index].action;  // copies: the plan may grow while the user decides
  auto verdict = options_.approval->decide_now(id, action, params);
  if (!verdict) {
    if (item < 0) {
      emit(index, "waiting for approval (tools.approval)");
    } else {
      emit_item(index, static_cast<std::size_t>(item), "waiting for approval (tools.approval)");
    }
    auto asking = options_.approval->ask(id, std::move(action), params);
    verdict = co_await std::move(asking);
  }
  steps_[index].result.approval = std::move(verdict->decision);
  steps_[index].result.approval_by = std::move(verdict->given_by);
  if (verdict->allowed) co_return std::nullopt;
  co_return ToolError{make_error_code(ToolErrc::failed), std::move(verdict->error)};
}

asio::awaitable<ToolResult> Scheduler::call_with_retries(std::size_t index, int item, json::object params,
                                                         int& attempts, int earlier) {
  ToolResult result = tool_error(ToolErrc::failed, "not run");
  for (int attempt = 0; attempt <= options_.step_retries; ++attempt) {
    if (attempt > 0) ++report_.retries;
    ++attempts;
    // Named, not a conditional inside the co_await: g++ 12 mishandles such temporaries.
    json::object call_params;
    if (attempt < options_.step_retries) {
      call_params = params;
    } else {
      call_params = std::move(params);
    }
    result = co_await invoke_once(index, item, earlier + attempts, std::move(call_params));
    if (result || interrupted_ || !retryable(result.error())) break;
  }
  co_return result;
}

asio::awaitable<ToolResult> Scheduler::invoke_once(std::size_t index, int item, int attempt, json::object params) {
  auto* observer = options_.observer;
  if (!observer) co_return co_await invoke_tool(index, item, attempt, std::move(params));
  const CallId call{plan_.steps[index].id, item};
  const std::string action = plan_.steps[index].action;  // a copy: the plan may grow meanwhile
  if (auto answered = observer->answer(call, action, params)) {
    observer->called(call, action, params, *answered);
    co_return std::move(*answered);
  }
  json::object seen = params;
  auto result = co_await invoke_tool(index, item, attempt, std::move(params));
  observer->called(call, action, seen, result);
  co_return result;
}

asio::awaitable<ToolResult> Scheduler::invoke_tool(std::size_t index, int item, int attempt, json::object params) {
  using namespace asio::experimental::awaitable_operators;
  // An interrupt between start() and here (an observer of the step's start can cancel the run)
  // emitted its cancellation before this coroutine's slot had a handler: it must not call.
  if (interrupted_) co_return tool_error(ToolErrc::cancelled, "cancelled: the run was interrupted");
  const auto& info = analysis_.steps[index];
  ToolContext ctx = base_;
  ctx.step_id = plan_.steps[index].id;
  ctx.item = item;
  ctx.attempt = attempt;
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
    auto resolved = call_parameters(index, *this);
    if (!resolved) {
      out.error = std::move(resolved.error());
      co_return out;
    }
    json::object params = std::move(*resolved);
    if (rerun == 0 && options_.approval && options_.approval->pattern_for(step.action)) {
      if (auto refused = co_await seek_approval(index, -1, params)) {
        out.error = std::move(refused->message);
        out.error_code = refused->code;
        co_return out;
      }
    }
    ToolResult result = co_await call_with_retries(index, -1, std::move(params), out.attempts);
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
  --running_;
  if (s.llm) --running_llm_;
  if (s.remote) --running_remote_;
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
  settle(index, std::move(outcome));
  dispatch();
  wake();
}

void Scheduler::settle(std::size_t index, Outcome outcome) {
  auto& s = steps_[index];
  const auto& step = plan_.steps[index];
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

// ---- for_each: one step, one slot per item -------------------------------------------------

// Starts a for_each step: resolves its list and prepares one item per element. Returns whether
// items are left to start; false when the step already ended (no list, no items, all kept).
bool Scheduler::open_fan_out(std::size_t index) {
  auto& s = steps_[index];
  const auto& step = plan_.steps[index];
  s.result.status = StepStatus::running;
  s.result.started_ms = now_ms();
  s.result.fan_out = true;
  const json::value& spec = *step.for_each;
  const std::string what = spec.is_string() ? "for_each " + std::string(spec.get_string()) : "for_each";
  auto fail = [&](std::string error) {
    s.result.finished_ms = now_ms();
    Outcome out;
    out.error = std::move(error);
    out.error_code = make_error_code(ToolErrc::invalid_parameters);
    settle(index, std::move(out));
    settled_in_dispatch_ = true;
    return false;
  };
  auto resolved = resolve_params(json::object{{"for_each", spec}}, analysis_.steps[index].for_each, *this);
  if (!resolved) return fail(std::move(resolved.error()));
  json::value& list = (*resolved)["for_each"];
  if (!list.is_array()) return fail(what + " is " + kind_of(list) + ", not a list");
  if (list.get_array().size() > options_.max_fan_out)
    return fail(what + " has " + std::to_string(list.get_array().size()) + " items, more than executor.max_fan_out (" +
                std::to_string(options_.max_fan_out) + ")");

  auto fan = std::make_unique<FanOut>();
  fan->list = std::move(list.get_array());
  const auto n = fan->size();
  fan->outputs.resize(n);
  fan->cancel = std::make_unique<asio::cancellation_signal[]>(n);
  s.result.items.resize(n);
  for (std::size_t k = 0; k < n; ++k) s.result.items[k].index = static_cast<int>(k);
  s.fan = std::move(fan);
  emit(index);
  // --resume: the items a recording shows finished keep their outputs (matched by index).
  if (s.partial) {
    const auto* kept_outputs = s.partial->output.if_array();
    for (const auto& kept : s.partial->items) {
      const auto k = static_cast<std::size_t>(kept.index);
      if (kept.status != StepStatus::succeeded || k >= n || !kept_outputs || k >= kept_outputs->size()) continue;
      auto& item = s.result.items[k];
      item.status = StepStatus::succeeded;
      item.started_ms = item.finished_ms = s.result.started_ms;
      s.fan->outputs[k] = (*kept_outputs)[k];
      ++s.fan->done;
      emit_item(index, k, "kept from an earlier run");
    }
    s.partial.reset();
  }
  auto& f = *s.fan;
  while (f.next < n && s.result.items[f.next].status != StepStatus::pending) ++f.next;
  if (f.next < n) return true;
  complete_fan_out(index);
  settled_in_dispatch_ = true;
  return false;
}

void Scheduler::start_item(std::size_t index) {
  auto& s = steps_[index];
  auto& f = *s.fan;
  const auto k = f.next++;
  while (f.next < f.size() && s.result.items[f.next].status != StepStatus::pending) ++f.next;
  auto& item = s.result.items[k];
  item.status = StepStatus::running;
  item.started_ms = now_ms();
  item.slot = acquire_slot();
  ++running_;
  if (s.llm) ++running_llm_;
  if (s.remote) ++running_remote_;
  ++f.running;
  report_.max_concurrent = std::max(report_.max_concurrent, running_);
  emit_item(index, k);
  asio::co_spawn(wake_->get_executor(), run_item(index, k),
                 asio::bind_cancellation_slot(f.cancel[k].slot(), ItemDone{this, index, k}));
}

asio::awaitable<Scheduler::ItemOutcome> Scheduler::run_item(std::size_t index, std::size_t item) {
  // As run_step: no reference into plan_, analysis_ or the list lives across a co_await.
  ItemOutcome out;
  auto resolved = call_parameters(index, ItemSource(*this, steps_[index].fan->list[item], item));
  if (!resolved) {
    out.error = std::move(resolved.error());
    co_return out;
  }
  json::object params = std::move(*resolved);
  if (steps_[index].fan->reruns == 0 && options_.approval &&
      options_.approval->pattern_for(plan_.steps[index].action)) {
    if (auto refused = co_await seek_approval(index, static_cast<int>(item), params)) {
      out.error = std::move(refused->message);
      out.error_code = refused->code;
      co_return out;
    }
  }
  // Attempts of earlier rounds (a re-run after the list's verdict failed) count: each call is a new attempt.
  const int earlier = steps_[index].result.items[item].attempts;
  ToolResult result = co_await call_with_retries(index, static_cast<int>(item), std::move(params), out.attempts, earlier);
  if (!result) {
    out.error = std::move(result.error().message);
    out.error_code = result.error().code;
    co_return out;
  }
  out.output = std::move(*result);
  out.ok = true;
  co_return out;
}

void Scheduler::finish_item(std::size_t index, std::size_t k, std::exception_ptr error, ItemOutcome outcome) {
  auto& s = steps_[index];
  auto& f = *s.fan;
  auto& item = s.result.items[k];
  --running_;
  if (s.llm) --running_llm_;
  if (s.remote) --running_remote_;
  --f.running;
  slot_busy_[static_cast<std::size_t>(item.slot)] = false;
  item.finished_ms = now_ms();
  item.attempts += outcome.attempts;
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      outcome.ok = false;
      outcome.error = interrupted_ ? "cancelled: the run was interrupted" : std::string("internal error: ") + e.what();
    }
  }
  if (outcome.ok) {
    item.status = StepStatus::succeeded;
    f.outputs[k] = std::move(outcome.output);
  } else {
    item.status = StepStatus::failed;
    item.error = std::move(outcome.error);
    if (f.failed++ == 0) s.result.error_code = outcome.error_code;
  }
  ++f.done;
  emit_item(index, k, item.error);
  if (f.done == f.size()) complete_fan_out(index);
  dispatch();
  wake();
}

// Every item has ended: the step fails if one failed (or never ran), else its verdict is awaited
// (critical, or verification in the foreground) or it succeeds with the list of outputs.
void Scheduler::complete_fan_out(std::size_t index) {
  auto& s = steps_[index];
  auto& f = *s.fan;
  const auto& step = plan_.steps[index];
  Outcome out;
  out.attempts = f.reruns + 1;
  s.result.finished_ms = now_ms();
  if (f.failed > 0 || f.skipped > 0) {
    out.error = f.failed > 0 ? fan_out_error(s.result.items, f.failed)
                             : "cancelled: the run was interrupted (" + std::to_string(f.done - f.skipped) + " of " +
                                   std::to_string(f.size()) + " items done)";
    out.error_code = f.failed > 0 ? s.result.error_code : make_error_code(ToolErrc::cancelled);
    settle(index, std::move(out));
    return;
  }
  const bool check_inline = step.verify && (step.critical || !options_.background_verification);
  if (check_inline && !interrupted_) {
    s.result.output = f.outputs;
    s.result.verification = VerificationStatus::pending;
    f.verifying = true;
    ++background_;
    emit(index, "verifying");
    asio::co_spawn(wake_->get_executor(), verify_in_background(index),
                   asio::bind_cancellation_slot(s.cancel_verify.slot(), FanVerifyDone{this, index}));
    return;
  }
  out.status = StepStatus::succeeded;
  out.output = std::move(f.outputs);
  settle(index, std::move(out));
}

void Scheduler::finish_fan_verification(std::size_t index, std::exception_ptr error, Verdict verdict) {
  auto& s = steps_[index];
  auto& f = *s.fan;
  const bool critical = plan_.steps[index].critical;
  --background_;
  f.verifying = false;
  if (error) {
    verdict.status = VerificationStatus::error;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      verdict.reason = interrupted_ ? "the run was interrupted before the verdict" : std::string("verifier error: ") + e.what();
    }
  }
  Outcome out;
  out.attempts = f.reruns + 1;
  out.output = std::move(s.result.output);
  s.result.output = nullptr;
  s.result.finished_ms = now_ms();
  if (critical && verdict.status == VerificationStatus::error) {  // unknown is not a pass
    out.error = "verification could not be done: " + verdict.reason;
    out.error_code = verdict.code;
  } else if (!critical || verdict.status != VerificationStatus::failed) {
    out.status = StepStatus::succeeded;
  } else if (f.reruns >= options_.max_reruns || interrupted_) {
    out.error = "verification failed: " + verdict.reason;
  } else {
    // A failed verdict on the list re-runs every item, as a step is re-run.
    ++f.reruns;
    f.next = f.done = f.failed = 0;
    f.outputs = json::array(f.size());
    for (auto& item : s.result.items) item = ItemResult{item.index, StepStatus::pending, item.attempts};
    s.result.verification = VerificationStatus::not_requested;
    s.result.verification_reason = verdict.reason;
    emit(index, "verification failed, re-running: " + verdict.reason);
    if (f.size() > 0) (s.llm ? ready_llm_ : ready_).push(index);
    else complete_fan_out(index);
    dispatch();
    wake();
    return;
  }
  out.verdict = std::move(verdict);
  if (out.status != StepStatus::succeeded) out.output = nullptr;
  settle(index, std::move(out));
  dispatch();
  wake();
}

// Interrupted: running items are cancelled, the ones not started are skipped; the step ends when
// its last running item does.
void Scheduler::stop_fan_out(std::size_t index) {
  auto& s = steps_[index];
  auto& f = *s.fan;
  for (std::size_t k = 0; k < f.size(); ++k) {
    auto& item = s.result.items[k];
    if (item.status == StepStatus::running) {
      f.cancel[k].emit(asio::cancellation_type::terminal);
    } else if (item.status == StepStatus::pending) {
      item.status = StepStatus::skipped;
      item.error = "the run was interrupted";
      ++f.done;
      ++f.skipped;
    }
  }
  f.next = f.size();
  if (f.running == 0 && !f.verifying && f.done == f.size()) complete_fan_out(index);
}

void Scheduler::emit_item(std::size_t index, std::size_t k, std::string_view message) {
  if (!on_event_) return;
  const auto& s = steps_[index];
  const auto& item = s.result.items[k];
  StepEvent ev;
  ev.step_id = s.result.id;
  ev.action = s.result.action;
  ev.status = item.status;
  ev.attempt = item.attempts;
  ev.slot = item.slot;
  ev.at_ms = now_ms();
  ev.message = message;
  ev.item = static_cast<int>(k);
  ev.items = static_cast<int>(s.fan->size());
  ev.items_done = static_cast<int>(s.fan->done);
  ev.items_failed = static_cast<int>(s.fan->failed);
  on_event_(ev);
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
  if (const auto* fan = steps_[index].fan.get()) {
    ev.items = static_cast<int>(fan->size());
    ev.items_done = static_cast<int>(fan->done);
    ev.items_failed = static_cast<int>(fan->failed);
  }
  on_event_(ev);
}

}  // namespace dagent::executor
