// Runtime: wires config, tool registry, analysis and the scheduler for one run at a time.

#include "dagent/runtime.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <random>
#include <unordered_map>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/serialize.hpp>

#include "config/loader.hpp"
#include "dagent/workspace.hpp"
#include "executor/analysis.hpp"
#include "executor/plan.hpp"
#include "executor/scheduler.hpp"
#include "executor/llm_judge.hpp"
#include "executor/verifier.hpp"
#include "memory/memory.hpp"
#include "net/response_cache.hpp"
#include "net/sha256.hpp"
#include "planner/planner.hpp"
#include "planner/results_digest.hpp"
#include "record/recording.hpp"
#include "record/recording_provider.hpp"
#include "record/replay_provider.hpp"
#include "runtime/lazy_provider.hpp"
#include "runtime/resume.hpp"
#include "runtime/routing_provider.hpp"
#include "runtime/run_recorder.hpp"
#include "runtime/tool_replay.hpp"
#include "runtime/trace_writer.hpp"
#include "tools/llm_tool.hpp"
#include "tools/memory_add_tool.hpp"
#include "tools/memory_search_tool.hpp"
#include "tools/registry.hpp"

namespace dagent {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

std::string new_run_id() {
  std::random_device rd;
  std::uniform_int_distribution<std::uint64_t> dist;
  static constexpr char k_hex[] = "0123456789abcdef";
  std::uint64_t v = dist(rd);
  std::string id(16, '0');
  for (auto& c : id) c = k_hex[v & 15], v >>= 4;
  return id;
}

std::vector<int> ids_of(const executor::Plan& plan, const std::vector<std::size_t>& indices) {
  std::vector<int> ids;
  ids.reserve(indices.size());
  for (auto i : indices) ids.push_back(plan.steps[i].id);
  return ids;
}

std::vector<std::string> render(const config::Problems& problems) {
  std::vector<std::string> out;
  for (const auto& p : problems.items) out.push_back(p.to_string());
  return out;
}

// Everything analysis derives from a plan, or why it cannot run.
struct Prepared {
  std::vector<std::string> problems;
  executor::Plan plan;
  executor::Analysis analysis;
};

struct RunWiring;

// What one run shares between its coroutines, the signal handler and the caller; lives in the
// caller's frame while the loop runs. `task` holds the inputs (and, for a goal, the goal).
struct ActiveRun {
  RunWiring* wiring = nullptr;  ///< the run's recording, replay and resume parts
  config::Task task;
  const RunOptions* options = nullptr;
  const Workspace* workspace = nullptr;
  std::chrono::steady_clock::time_point epoch;
  RunResult* result = nullptr;
  std::vector<std::string> problems;
  bool unreachable = false;
  executor::Scheduler* active = nullptr;  ///< the scheduler running now, for SIGINT
  bool interrupted = false;
  std::int64_t retries = 0;
  int max_concurrent = 0;
};

struct RunDone {
  std::exception_ptr* error;
  asio::signal_set* signals;
  void operator()(std::exception_ptr e) const {
    *error = e;
    if (signals) signals->cancel();
  }
};

struct OnSignal {
  ActiveRun* run;
  asio::signal_set* signals;
  void operator()(const boost::system::error_code& ec, int) const {
    if (ec) return;
    if (run->interrupted || !run->active) std::_Exit(130);  // a second Ctrl-C, or nothing to stop cleanly
    run->interrupted = true;
    run->active->interrupt();
    signals->async_wait(OnSignal{run, signals});
  }
};

// True when running `plan` may call the model: an LLM-bound tool or a text criterion for the judge.
bool needs_llm(const executor::Plan& plan, const executor::Analysis& analysis, bool judge) {
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    if (analysis.steps[i].tool && analysis.steps[i].tool->uses_llm()) return true;
    if (!judge || !plan.steps[i].verify) continue;
    const auto& v = *plan.steps[i].verify;
    if (v.is_string()) return true;
    if (const auto* arr = v.if_array())
      for (const auto& c : *arr)
        if (c.is_string()) return true;
  }
  return false;
}

bool uses_memory(const executor::Plan& plan) {
  for (const auto& step : plan.steps)
    if (step.action == "memory_add" || step.action == "memory_search") return true;
  return false;
}

// Succeeded when every step succeeded and no verdict failed; an interruption fails the run.
void finish_status(RunResult& result) {
  bool ok = !result.interrupted;
  for (const auto& s : result.steps)
    ok = ok && s.status == StepStatus::succeeded && s.verification != VerificationStatus::failed;
  result.status = ok ? RunStatus::succeeded : RunStatus::failed;
  if (result.interrupted) result.error = "interrupted" + (result.error.empty() ? "" : "; " + result.error);
}

// The first `max` bytes of `text`, cut at a character boundary, marked when cut.
std::string clipped(std::string_view text, std::size_t max) {
  if (text.size() <= max) return std::string(text);
  while (max > 0 && (static_cast<unsigned char>(text[max]) & 0xC0) == 0x80) --max;
  return std::string(text.substr(0, max)) + "…";
}

// The planner's recall, served by the memory: the goal's nearest entries, each clipped so the
// planning prompt stays small.
class MemoryRecall final : public planner::Recall {
 public:
  explicit MemoryRecall(memory::Memory& memory) : memory_(memory) {}
  asio::awaitable<std::vector<std::string>> recall(std::string goal, int k) override {
    std::vector<std::string> out;
    auto hits = co_await memory_.search(std::move(goal), k);
    if (!hits) co_return out;  // planning goes on without memories
    for (const auto& hit : *hits)
      out.push_back((hit.source.empty() ? "" : "[" + hit.source + "] ") + clipped(hit.text, k_recalled_bytes));
    co_return out;
  }

 private:
  static constexpr std::size_t k_recalled_bytes = 800;
  memory::Memory& memory_;
};

// What a finished goal run leaves in memory (background_tasks.memory_updates).
struct MemoryUpdate {
  std::vector<std::string> texts;
  std::vector<json::object> metadata;
};

// The goal with its answer, and the text outputs of the run's successful llm steps.
MemoryUpdate update_of(const RunResult& result, const std::string& goal, std::size_t max_chars) {
  constexpr std::size_t k_max_steps = 8;
  MemoryUpdate update;
  update.texts.push_back(clipped("Goal: " + goal + "\nAnswer: " + result.answer, max_chars));
  update.metadata.push_back(json::object{{"kind", "run"}, {"run_id", result.run_id}, {"task", result.task}});
  for (const auto& step : result.steps) {
    if (update.texts.size() > k_max_steps) break;
    const auto* out = step.output.if_object();
    const auto* text = out ? out->if_contains("text") : nullptr;
    if (step.status != StepStatus::succeeded || !text || !text->is_string() || text->get_string().empty()) continue;
    update.texts.push_back(clipped("Goal: " + goal + "\nStep " + std::to_string(step.id) + " (" + step.action +
                                       "): " + std::string(text->get_string()),
                                   max_chars));
    update.metadata.push_back(json::object{
        {"kind", "step"}, {"run_id", result.run_id}, {"task", result.task}, {"step", step.id}});
  }
  return update;
}

// The planner's recall for a recorded or replayed run: a replay answers with the memories the
// recording holds (so the planning prompt matches whatever memory the user has); a recording
// writes what the memory answered.
class RecallTap final : public planner::Recall {
 public:
  RecallTap(planner::Recall* inner, runtime::RunRecorder* recorder, std::optional<std::vector<std::string>> replayed)
      : inner_(inner), recorder_(recorder), replayed_(std::move(replayed)) {}
  asio::awaitable<std::vector<std::string>> recall(std::string goal, int k) override {
    std::vector<std::string> memories;
    if (replayed_) {
      memories = *replayed_;
    } else if (inner_) {
      memories = co_await inner_->recall(std::move(goal), k);
    }
    if (recorder_) recorder_->recall(memories);
    co_return memories;
  }

 private:
  planner::Recall* inner_;
  runtime::RunRecorder* recorder_;
  std::optional<std::vector<std::string>> replayed_;
};

// The memories of a recording's "recall" event, if it has one.
std::optional<std::vector<std::string>> recorded_recall(const record::Recording& recording) {
  for (const auto& event : recording.events) {
    const auto* type = event.if_contains("type");
    const auto* memories = event.if_contains("memories");
    if (!type || *type != "recall" || !memories || !memories->is_array()) continue;
    std::vector<std::string> out;
    for (const auto& m : memories->get_array())
      if (m.is_string()) out.emplace_back(m.get_string());
    return out;
  }
  return std::nullopt;
}

// What one run adds around the runtime's parts for --record, --replay, --replay-tools and
// --resume; undone (routing and memory folder restored) when it goes away.
struct RunWiring {
  std::optional<record::Recording> source;  ///< the recording replayed
  std::unique_ptr<record::ReplayProvider> replay;
  std::optional<record::RecordWriter> writer;
  std::unique_ptr<record::RecordingProvider> recording;
  std::unique_ptr<runtime::RunRecorder> recorder;
  std::unique_ptr<runtime::ToolReplay> tool_replay;
  std::optional<runtime::ResumePoint> resume;
  std::unique_ptr<RecallTap> recall;
  std::filesystem::path scratch_memory;  ///< a replay's memory folder, removed afterwards
  executor::ToolObserver* observer = nullptr;
  std::function<void()> undo;

  RunWiring() = default;
  RunWiring(const RunWiring&) = delete;
  RunWiring& operator=(const RunWiring&) = delete;
  ~RunWiring() {
    if (undo) undo();
    if (!scratch_memory.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(scratch_memory, ec);
    }
  }
  bool live() const noexcept { return !replay; }
};

// Step events go to the caller's observer and to the recording.
struct StepFanout {
  std::function<void(const StepEvent&)> user;
  runtime::RunRecorder* recorder;
  void operator()(const StepEvent& e) const {
    if (recorder) recorder->step(e);
    if (user) user(e);
  }
};

// A short change detector for recordings: equal configs give equal digests.
std::string digest_of(const config::Config& cfg) {
  return net::sha256_hex(json::serialize(json::value(config::to_json(cfg)))).substr(0, 16);
}

}  // namespace

int RunOutcome::exit_code() const noexcept {
  if (!problems.empty()) return unreachable ? 3 : 2;
  for (const auto& s : result.steps)
    if (s.status == StepStatus::failed && s.error_code == ToolErrc::unavailable) return 3;
  return result.status == RunStatus::succeeded ? 0 : 1;
}

struct Runtime::Impl {
  explicit Impl(config::Config c)
      : cfg(std::move(c)),
        registry(tools::make_builtin_registry(cfg.tools.enabled)),
        provider(io.get_executor(), cfg) {
    const auto& caching = cfg.performance.caching;
    if (caching.llm_responses) {
      cache = std::make_unique<net::CachingProvider>(provider, std::chrono::seconds(caching.ttl_seconds),
                                                     static_cast<std::size_t>(caching.max_entries));
    }
    router.route_to(active_provider());
    net::LlmProvider& llm = router;
    if (enabled("llm")) (void)registry.add(std::make_shared<tools::LlmTool>(llm, cfg.llm.model));
    if (cfg.memory.enabled) {
      memory = std::make_unique<memory::Memory>(io.get_executor(), worker_pool().get_executor(), llm, cfg);
      if (enabled("memory_add")) (void)registry.add(std::make_shared<tools::MemoryAddTool>(*memory));
      if (enabled("memory_search"))
        (void)registry.add(std::make_shared<tools::MemorySearchTool>(*memory, cfg.memory.recall_k));
      recall = std::make_unique<MemoryRecall>(*memory);
      planner->set_recall(recall.get());
    }
    if (cfg.verification.llm_judge) {
      verifier = std::make_unique<executor::LlmJudge>(llm, cfg.llm.model);
    } else {
      verifier = std::make_unique<executor::RuleVerifier>("a text criterion needs the LLM judge, which is off "
                                                          "(verification.llm_judge)");
    }
  }

  bool enabled(std::string_view tool) const {
    return std::find(cfg.tools.enabled.begin(), cfg.tools.enabled.end(), tool) != cfg.tools.enabled.end();
  }

  executor::SchedulerOptions scheduler_options(std::chrono::steady_clock::time_point epoch) const {
    auto o = executor::SchedulerOptions::from(cfg);
    o.epoch = epoch;
    return o;
  }

  ToolContext tool_context(const Workspace& ws) {
    ToolContext base;
    base.workspace = &ws;
    base.worker = worker_pool().get_executor();
    return base;
  }

  asio::awaitable<executor::ExecutionReport> execute(ActiveRun* run, Prepared* prepared, std::vector<StepResult> kept);
  asio::awaitable<planner::PlanDraft> stream_plan(ActiveRun* run, planner::PlanningContext ctx,
                                                  executor::IncrementalAnalysis* inc, executor::Scheduler* scheduler);
  asio::awaitable<void> goal_flow(ActiveRun* run);
  asio::awaitable<void> resumed_goal_flow(ActiveRun* run);
  asio::awaitable<void> answer_loop(ActiveRun* run, planner::PlanningContext ctx, json::array plan_steps,
                                    Prepared prepared);
  asio::awaitable<void> plan_flow(ActiveRun* run, Prepared* prepared);
  void drive(ActiveRun& run, asio::awaitable<void> flow);
  RunOutcome run_goal(config::Task task, const std::filesystem::path& workspace, const RunOptions& options,
                      std::string_view task_ref);
  RunOutcome run_fixed(const json::value& plan_json, const json::object& inputs, const std::filesystem::path& workspace,
                       const RunOptions& options, std::string task_name, std::string_view task_ref);
  void record_header(RunWiring& w, const std::string& run_id, const config::Task& task, std::string_view task_ref);
  std::vector<std::string> finish_background();
  /// Sets up `w` for `options`; the problems when a recording cannot be read or written.
  std::vector<std::string> wire(const RunOptions& options, RunWiring& w);
  MemoryOutcome memory_ready();  ///< the memory opened and the provider ready, or why not

  void fill_metrics(RunResult& result, const net::ProviderMetrics& before, std::int64_t step_retries) {
    const auto after = router.metrics();
    auto& m = result.metrics;
    m.retries = step_retries + (after.retries - before.retries);
    m.llm_calls = after.llm_calls - before.llm_calls;
    m.prompt_tokens = after.prompt_tokens - before.prompt_tokens;
    m.completion_tokens = after.completion_tokens - before.completion_tokens;
    m.embedding_calls = after.embedding_calls - before.embedding_calls;
    m.rate_limit_wait_ms = after.rate_limit_wait_ms - before.rate_limit_wait_ms;
    m.cache_hits = after.cache_hits - before.cache_hits;
    m.connections_opened = after.connections_opened - before.connections_opened;
  }

  Prepared prepare(const json::value& plan_json, const json::object* inputs) const {
    Prepared p;
    auto parsed = executor::parse_plan(plan_json);
    p.plan = std::move(parsed.plan);
    executor::AnalysisOptions options;
    options.dependency_analysis = cfg.performance.parallel_execution.dependency_analysis;
    options.max_steps = cfg.planner.max_steps;
    options.inputs = inputs;
    p.analysis = executor::analyze(p.plan, registry, options);
    for (const auto& problem : parsed.problems) p.problems.push_back(problem.to_string());
    for (const auto& problem : p.analysis.problems) p.problems.push_back(problem.to_string());
    return p;
  }

  asio::thread_pool& worker_pool() {
    if (!pool) {
      auto threads = static_cast<std::size_t>(std::clamp(cfg.performance.parallel_execution.max_parallel_steps, 2, 64));
      pool = std::make_unique<asio::thread_pool>(threads);
    }
    return *pool;
  }

  config::Config cfg;
  asio::io_context io{1};  // one loop for every run: pooled connections outlive a run
  tools::Registry registry;
  runtime::LazyProvider provider;
  std::unique_ptr<net::CachingProvider> cache;  // caching.llm_responses
  std::unique_ptr<executor::Verifier> verifier;

  net::LlmProvider& active_provider() { return cache ? static_cast<net::LlmProvider&>(*cache) : provider; }
  runtime::RoutingProvider router{provider};  // what every part calls: live, or this run's replay/recording
  std::unique_ptr<planner::Planner> planner = std::make_unique<planner::Planner>(router, registry, cfg);
  std::unique_ptr<memory::Memory> memory;     // memory.enabled
  std::unique_ptr<planner::Recall> recall;    // the planner's view of `memory`
  std::vector<MemoryUpdate> pending_updates;  // background memory updates not yet stored
  std::unique_ptr<asio::thread_pool> pool;  // last: joined before the tools and the memory go away
};

namespace {

double ms_since(std::chrono::steady_clock::time_point epoch) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - epoch).count();
}

void add_error(RunResult& r, const std::string& message) { r.error += (r.error.empty() ? "" : "; ") + message; }

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : "; ") + i;
  return out;
}

// Hands each streamed step to the incremental analysis and admits what becomes runnable.
struct StepAdmitter {
  executor::IncrementalAnalysis* inc;
  executor::Scheduler* scheduler;
  void operator()(json::object step) const {
    auto parsed = executor::parse_plan(json::array{json::value(std::move(step))});
    if (!parsed.problems.empty() || parsed.plan.steps.size() != 1) return;  // the final analysis reports it
    for (auto index : inc->add(std::move(parsed.plan.steps.front()))) scheduler->admit(index);
  }
};

// Steps of `report` (in admission order) rearranged into the order of `plan`.
std::vector<StepResult> in_plan_order(std::vector<StepResult> steps, const executor::Plan& plan) {
  std::unordered_map<int, std::size_t> at;
  for (std::size_t i = 0; i < steps.size(); ++i) at.emplace(steps[i].id, i);
  std::vector<StepResult> out;
  out.reserve(plan.steps.size());
  for (const auto& step : plan.steps) out.push_back(std::move(steps[at.at(step.id)]));
  return out;
}

void describe_plan(RunResult& result, const Prepared& prepared, json::value plan) {
  result.plan = std::move(plan);
  result.levels.clear();
  for (const auto& level : prepared.analysis.levels) result.levels.push_back(ids_of(prepared.plan, level));
  result.critical_path = ids_of(prepared.plan, prepared.analysis.critical_path);
}

void absorb(ActiveRun* run, executor::ExecutionReport report) {
  run->result->steps = std::move(report.steps);
  run->max_concurrent = std::max(run->max_concurrent, report.max_concurrent);
  run->retries += report.retries;
  run->interrupted = run->interrupted || report.interrupted;
}

}  // namespace

asio::awaitable<executor::ExecutionReport> Runtime::Impl::execute(ActiveRun* run, Prepared* prepared,
                                                                  std::vector<StepResult> kept) {
  auto options = scheduler_options(run->epoch);
  options.observer = run->wiring->observer;
  executor::Scheduler scheduler(prepared->plan, prepared->analysis, options, tool_context(*run->workspace),
                                run->task.inputs, *verifier);
  if (run->options->on_event || run->wiring->recorder)
    scheduler.on_event(StepFanout{run->options->on_event, run->wiring->recorder.get()});
  for (auto& k : kept) {
    const auto at = prepared->analysis.index_of.find(k.id);
    if (at != prepared->analysis.index_of.end()) scheduler.reuse(at->second, std::move(k));
  }
  run->active = &scheduler;
  if (run->interrupted) scheduler.interrupt();
  auto report = co_await scheduler.run();
  run->active = nullptr;
  co_return report;
}

asio::awaitable<planner::PlanDraft> Runtime::Impl::stream_plan(ActiveRun* run, planner::PlanningContext ctx,
                                                               executor::IncrementalAnalysis* inc,
                                                               executor::Scheduler* scheduler) {
  auto draft = co_await planner->draft(std::move(ctx), StepAdmitter{inc, scheduler});
  run->result->metrics.planning_ms = ms_since(run->epoch);
  if (!draft.ok()) scheduler->interrupt();  // what started from an invalid plan is cancelled
  scheduler->close();
  co_return draft;
}

asio::awaitable<void> Runtime::Impl::goal_flow(ActiveRun* run) {
  using namespace asio::experimental::awaitable_operators;
  auto& result = *run->result;
  auto* recorder = run->wiring->recorder.get();
  const auto& resume = run->wiring->resume;
  if (resume && resume->plan) {  // resumed after planning: the recorded plan, its finished steps kept
    co_await resumed_goal_flow(run);
    co_return;
  }
  auto context = co_await planner->prepare(run->task.goal, run->task.inputs);
  if (!context) {
    run->problems = std::move(context.error());
    co_return;
  }
  planner::PlanningContext ctx = std::move(*context);
  result.intent = ctx.intent;

  const auto& pe = cfg.performance.parallel_execution;
  // Levels need the whole plan, so that mode waits for it; eager starts steps as they stream in.
  const bool stream = cfg.planner.stream_plan && pe.scheduling == config::Scheduling::eager;
  planner::PlanDraft draft;
  Prepared prepared;
  bool executed = false;
  ++result.plan_attempts;
  if (stream) {
    executor::AnalysisOptions options;
    options.dependency_analysis = pe.dependency_analysis;
    options.max_steps = cfg.planner.max_steps;
    options.inputs = &run->task.inputs;
    executor::IncrementalAnalysis inc(registry, options);
    auto scheduling = scheduler_options(run->epoch);
    scheduling.observer = run->wiring->observer;
    executor::Scheduler scheduler(inc.plan(), inc.analysis(), scheduling, tool_context(*run->workspace),
                                  run->task.inputs, *verifier, executor::PlanGrowth::streamed);
    if (run->options->on_event || run->wiring->recorder)
      scheduler.on_event(StepFanout{run->options->on_event, run->wiring->recorder.get()});
    if (run->options->on_start) run->options->on_start(result);
    run->active = &scheduler;
    auto planning = stream_plan(run, ctx, &inc, &scheduler);
    auto executing = scheduler.run();
    auto both = co_await (std::move(planning) && std::move(executing));
    run->active = nullptr;
    draft = std::move(std::get<0>(both));
    if (draft.ok()) {
      executed = true;
      if (recorder) recorder->plan(draft.steps);
      prepared = prepare(json::value(draft.steps), &run->task.inputs);
      auto report = std::move(std::get<1>(both));
      report.steps = in_plan_order(std::move(report.steps), prepared.plan);
      describe_plan(result, prepared, json::value(draft.steps));
      absorb(run, std::move(report));
    }
  } else {
    draft = co_await planner->draft(ctx, {});
  }
  if (!executed) {
    if (!draft.ok() && !draft.error) {
      ++result.plan_attempts;
      draft = co_await planner->repair(ctx, std::move(draft));
    }
    if (!draft.ok()) {
      run->problems = std::move(draft.problems);
      run->unreachable = draft.error && tools::to_tool_error(*draft.error).code == ToolErrc::unavailable;
      co_return;
    }
    if (recorder) recorder->plan(draft.steps);
    prepared = prepare(json::value(draft.steps), &run->task.inputs);
    result.metrics.planning_ms = ms_since(run->epoch);
    describe_plan(result, prepared, json::value(draft.steps));
    if (run->options->on_start) run->options->on_start(result);
    absorb(run, co_await execute(run, &prepared, {}));
  }

  co_await answer_loop(run, ctx, std::move(draft.steps), std::move(prepared));
}

asio::awaitable<void> Runtime::Impl::resumed_goal_flow(ActiveRun* run) {
  auto& result = *run->result;
  json::array steps = *run->wiring->resume->plan;
  auto prepared = prepare(json::value(steps), &run->task.inputs);
  if (!prepared.problems.empty()) {
    run->problems = std::move(prepared.problems);
    co_return;
  }
  describe_plan(result, prepared, json::value(steps));
  if (run->options->on_start) run->options->on_start(result);
  absorb(run, co_await execute(run, &prepared, run->wiring->resume->kept));
  planner::PlanningContext ctx;
  ctx.goal = run->task.goal;
  ctx.inputs = run->task.inputs;
  co_await answer_loop(run, std::move(ctx), std::move(steps), std::move(prepared));
}

asio::awaitable<void> Runtime::Impl::answer_loop(ActiveRun* run, planner::PlanningContext ctx, json::array plan_steps,
                                                 Prepared prepared) {
  auto& result = *run->result;
  auto* recorder = run->wiring->recorder.get();
  while (cfg.planner.synthesize_answer && !run->interrupted) {
    const bool allow_replan = result.replans < cfg.planner.max_replans;
    auto answer = co_await planner->synthesize(run->task.goal, result.steps, allow_replan, run->options->on_answer);
    if (answer.error) {
      add_error(result, "answer synthesis failed: " + answer.error->message);
      break;
    }
    if (answer.replan_reason.empty()) {
      result.answer = std::move(answer.text);
      break;
    }
    // Completed steps keep their results; only the new steps run.
    json::array kept;
    std::vector<StepResult> kept_results;
    int max_id = 0;
    for (std::size_t i = 0; i < result.steps.size(); ++i) {
      const auto& s = result.steps[i];
      max_id = std::max(max_id, s.id);
      if (s.status == StepStatus::succeeded && s.verification != VerificationStatus::failed) {
        kept.push_back(plan_steps[i]);
        kept_results.push_back(s);
      }
    }
    const auto digest = planner::digest_results(result.steps, cfg.planner.answer_budget_tokens);
    auto more = co_await planner->replan(ctx, kept, digest, answer.replan_reason, max_id + 1);
    ++result.replans;
    if (!more.ok()) {
      add_error(result, "replanning failed: " + joined(more.problems));
      break;
    }
    json::array combined = std::move(kept);
    for (auto& step : more.steps) combined.push_back(std::move(step));
    prepared = prepare(json::value(combined), &run->task.inputs);
    if (!prepared.problems.empty()) {
      add_error(result, "replanning failed: " + joined(prepared.problems));
      break;
    }
    if (recorder) recorder->plan(combined);
    describe_plan(result, prepared, json::value(combined));
    if (run->options->on_start) run->options->on_start(result);
    absorb(run, co_await execute(run, &prepared, std::move(kept_results)));
    plan_steps = std::move(combined);
  }
}

asio::awaitable<void> Runtime::Impl::plan_flow(ActiveRun* run, Prepared* prepared) {
  std::vector<StepResult> kept;
  if (run->wiring->resume) kept = run->wiring->resume->kept;
  absorb(run, co_await execute(run, prepared, std::move(kept)));
}

void Runtime::Impl::drive(ActiveRun& run, asio::awaitable<void> flow) {
  auto& result = *run.result;
  io.restart();
  const auto before = router.metrics();
  std::unique_ptr<asio::signal_set> signals;
  if (run.options->stop_on_sigint) {
    signals = std::make_unique<asio::signal_set>(io, SIGINT);
    signals->async_wait(OnSignal{&run, signals.get()});
  }
  std::exception_ptr error;
  asio::co_spawn(io, std::move(flow), RunDone{&error, signals.get()});
  io.run();
  result.metrics.wall_ms = ms_since(run.epoch);
  if (error) std::rethrow_exception(error);
  if (!run.problems.empty()) return;
  result.interrupted = run.interrupted;
  result.metrics.max_concurrent_steps = run.max_concurrent;
  fill_metrics(result, before, run.retries);
  finish_status(result);
  if (run.wiring->recorder) run.wiring->recorder->end(result);
  if (run.wiring->writer && run.wiring->writer->error()) add_error(result, "--record: " + *run.wiring->writer->error());
  if (!run.options->trace_file.empty()) {
    if (auto written = runtime::write_trace(result, run.options->trace_file); !written) add_error(result, written.error());
  }
}

std::vector<std::string> Runtime::Impl::wire(const RunOptions& options, RunWiring& w) {
  std::filesystem::path record_to = options.record_file;
  if (!options.resume_file.empty()) {
    auto read = record::read_recording(options.resume_file);
    if (!read) return {"--resume: " + read.error()};
    w.resume = runtime::resume_point(*read);
    if (read->torn_tail) {  // cut the torn line away, so the events appended next start a line of their own
      std::error_code ec;
      std::filesystem::resize_file(options.resume_file, read->intact_bytes, ec);
      if (ec) return {"--resume: cannot cut the torn last line of " + options.resume_file.string() + ": " + ec.message()};
    }
    if (w.resume->finished)
      return {"--resume: " + options.resume_file.string() + " records a run that succeeded; there is nothing to resume"};
    if (record_to.empty()) record_to = options.resume_file;
  }
  std::optional<std::filesystem::path> memory_home;  // the user's memory folder, while a replay uses a scratch one
  if (!options.replay_file.empty()) {
    auto read = record::read_recording(options.replay_file);
    if (!read) return {"--replay: " + read.error()};
    w.source = std::move(*read);
    w.replay = std::make_unique<record::ReplayProvider>(
        io.get_executor(), *w.source, options.replay_instant ? record::StreamTiming::instant : record::StreamTiming::recorded);
    router.route_to(*w.replay);
    if (memory) {  // a replay never reads or writes the user's memory
      static std::atomic<int> counter{0};
      w.scratch_memory = std::filesystem::temp_directory_path() /
                         ("dagent-replay-memory-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
      memory_home = memory->folder();
      memory->use_folder(w.scratch_memory);
    }
  } else if (options.replay_tools) {
    return {"--replay-tools needs --replay FILE"};
  }
  w.undo = [this, memory_home] {
    router.route_to(active_provider());
    planner->set_recall(recall.get());
    if (memory_home) memory->use_folder(*memory_home);
  };
  if (!record_to.empty()) {
    const bool append = !options.resume_file.empty() && record_to == options.resume_file;
    auto opened = record::RecordWriter::open(record_to, append);
    if (!opened) return {"--record: " + opened.error()};
    w.writer.emplace(std::move(*opened));
    w.recording = std::make_unique<record::RecordingProvider>(router.target(), *w.writer);
    router.route_to(*w.recording);
    w.recorder = std::make_unique<runtime::RunRecorder>(*w.writer);
    w.observer = w.recorder.get();
  }
  if (w.source) {  // memory tools always come from the recording: the replay's memory is a scratch folder
    w.tool_replay = std::make_unique<runtime::ToolReplay>(*w.source, w.recorder.get(), !options.replay_tools);
    w.observer = w.tool_replay.get();
  }
  if (w.recorder || w.source) {
    w.recall = std::make_unique<RecallTap>(recall.get(), w.recorder.get(),
                                           w.source ? recorded_recall(*w.source) : std::nullopt);
    planner->set_recall(w.recall.get());
  }
  return {};
}

void Runtime::Impl::record_header(RunWiring& w, const std::string& run_id, const config::Task& task,
                                  std::string_view task_ref) {
  if (!w.recorder) return;
  if (w.resume) {
    w.writer->write(json::object{{"type", "resume"}, {"run_id", run_id}, {"kept", w.resume->kept.size()}});
    return;
  }
  // Files are named relative to the recording's folder, so a recording replays from anywhere.
  std::error_code ec;
  const auto folder = std::filesystem::absolute(w.writer->path(), ec).parent_path();
  auto beside_recording = [&](const std::filesystem::path& file) -> std::optional<std::string> {
    if (file.empty() || !std::filesystem::is_regular_file(file, ec)) return std::nullopt;
    return std::filesystem::absolute(file, ec).lexically_normal().lexically_relative(folder).generic_string();
  };
  json::object header{{"run_id", run_id},
                      {"task", task.name},
                      {"task_ref", beside_recording(std::string(task_ref)).value_or(std::string(task_ref))},
                      {"goal", task.goal},
                      {"inputs", task.inputs},
                      {"config_digest", digest_of(cfg)},
                      {"model", cfg.llm.model}};
  if (task.plan) header["plan"] = *task.plan;
  if (auto config = beside_recording(cfg.source)) header["config"] = *config;
  w.recorder->header(std::move(header));
}

RunOutcome Runtime::Impl::run_goal(config::Task task, const std::filesystem::path& workspace,
                                   const RunOptions& options, std::string_view task_ref) {
  RunOutcome outcome;
  finish_background();
  RunWiring wiring;
  outcome.problems = wire(options, wiring);
  if (!outcome.problems.empty()) return outcome;
  auto ws = Workspace::open(workspace);
  if (!ws) outcome.problems.push_back("workspace: " + ws.error().message);
  if (wiring.live()) {
    if (auto why = provider.prepare()) outcome.problems.push_back("llm: " + *why + " (planning a goal needs the model)");
  }
  if (memory) {
    if (auto opened = memory->open(); !opened) outcome.problems.push_back("memory: " + opened.error().message);
  }
  if (!outcome.problems.empty()) return outcome;

  auto& result = outcome.result;
  result.run_id = new_run_id();
  result.task = task.name;
  record_header(wiring, result.run_id, task, task_ref);
  ActiveRun run;
  run.wiring = &wiring;
  run.task = std::move(task);
  run.options = &options;
  run.workspace = &*ws;
  run.result = &result;
  run.epoch = std::chrono::steady_clock::now();
  planner->on_event(options.on_planning, run.epoch);

  try {
    drive(run, goal_flow(&run));
  } catch (...) {
    planner->on_event({}, run.epoch);  // the observer belongs to this run
    throw;
  }
  planner->on_event({}, run.epoch);
  if (!run.problems.empty()) {
    outcome.problems = std::move(run.problems);
    outcome.unreachable = run.unreachable;
    return outcome;
  }
  // Stored after the result is returned: by finish_background(), the next run, or ~Runtime.
  if (memory && cfg.performance.background_tasks.memory_updates && !result.answer.empty() && wiring.live())
    pending_updates.push_back(update_of(result, run.task.goal, static_cast<std::size_t>(cfg.memory.chunk_chars)));
  return outcome;
}

namespace {

struct StoreUpdates {
  memory::Memory* memory;
  std::vector<MemoryUpdate> updates;
  std::vector<std::string>* problems;
};

asio::awaitable<void> store_updates(StoreUpdates job) {
  for (auto& update : job.updates) {
    auto stored = co_await job.memory->add_many(std::move(update.texts), std::move(update.metadata));
    if (!stored) job.problems->push_back("memory update: " + stored.error().message);
  }
}

struct Rethrow {
  void operator()(std::exception_ptr e) const {
    if (e) std::rethrow_exception(e);
  }
};

// Runs `work` on the runtime's loop until it finishes.
void run_on_loop(asio::io_context& io, asio::awaitable<void> work) {
  io.restart();
  asio::co_spawn(io, std::move(work), Rethrow{});
  io.run();
}

}  // namespace

std::vector<std::string> Runtime::Impl::finish_background() {
  std::vector<std::string> problems;
  if (pending_updates.empty() || !memory) return problems;
  if (auto opened = memory->open(); !opened) {
    pending_updates.clear();
    return {"memory update: " + opened.error().message};
  }
  run_on_loop(io, store_updates(StoreUpdates{memory.get(), std::move(pending_updates), &problems}));
  pending_updates.clear();
  return problems;
}

std::variant<Runtime, std::vector<std::string>> Runtime::load(const std::filesystem::path& config_file,
                                                              const std::vector<std::string>& overrides) {
  config::Config cfg;
  if (!config_file.empty()) {
    auto loaded = config::load_file(config_file);
    if (!loaded) return render(loaded.error());
    cfg = std::move(*loaded);
  }
  auto problems = config::apply_overrides(cfg, overrides);
  if (!problems.empty()) return render(config::Problems{std::move(problems)});
  return Runtime(std::move(cfg));
}

Runtime::Runtime(config::Config cfg) : impl_(std::make_unique<Impl>(std::move(cfg))) {}
Runtime::Runtime(Runtime&&) noexcept = default;
Runtime& Runtime::operator=(Runtime&&) noexcept = default;
Runtime::~Runtime() {
  if (!impl_) return;
  try {
    (void)impl_->finish_background();
  } catch (...) {  // a destructor cannot report; finish_background() can
  }
}

std::vector<std::string> Runtime::finish_background() { return impl_->finish_background(); }

namespace {

int exit_code_of(const memory::MemoryError& e) {
  using memory::MemoryErrc;
  if (e.code == MemoryErrc::unavailable) return 3;
  if (e.code == MemoryErrc::embedding_failed || e.code == MemoryErrc::io_error) return 1;
  return 2;  // a bad path or argument, a corrupt index, a dimension the index does not take
}

struct IngestJob {
  memory::Memory* memory;
  std::vector<std::filesystem::path> paths;
  std::function<void(const IngestProgress&)> on_progress;
  MemoryOutcome* out;
};

asio::awaitable<void> ingest_files(IngestJob job) {
  auto report = co_await job.memory->ingest(std::move(job.paths), std::move(job.on_progress));
  if (report) {
    job.out->ingest = std::move(*report);
  } else {
    job.out->error = report.error().message;
    job.out->exit_code = exit_code_of(report.error());
  }
}

struct SearchJob {
  memory::Memory* memory;
  std::string query;
  int k;
  MemoryOutcome* out;
};

asio::awaitable<void> search_memory_on_loop(SearchJob job) {
  auto hits = co_await job.memory->search(std::move(job.query), job.k);
  if (hits) {
    job.out->hits = std::move(*hits);
  } else {
    job.out->error = hits.error().message;
    job.out->exit_code = exit_code_of(hits.error());
  }
}

}  // namespace

MemoryOutcome Runtime::Impl::memory_ready() {
  MemoryOutcome out;
  if (!memory) {
    out.error = "the memory is off (memory.enabled: false)";
    out.exit_code = 2;
  } else if (auto opened = memory->open(); !opened) {
    out.error = opened.error().message;
    out.exit_code = 2;
  } else if (auto why = provider.prepare()) {
    out.error = "llm: " + *why + " (embedding needs the provider)";
    out.exit_code = 2;
  }
  return out;
}

MemoryOutcome Runtime::ingest(const std::vector<std::filesystem::path>& paths,
                              std::function<void(const IngestProgress&)> on_progress) {
  auto out = impl_->memory_ready();
  if (!out.error.empty()) return out;
  run_on_loop(impl_->io, ingest_files(IngestJob{impl_->memory.get(), paths, std::move(on_progress), &out}));
  return out;
}

MemoryOutcome Runtime::search_memory(const std::string& query, int k) {
  auto out = impl_->memory_ready();
  if (!out.error.empty()) return out;
  if (k == 0) k = impl_->cfg.memory.recall_k;
  run_on_loop(impl_->io, search_memory_on_loop(SearchJob{impl_->memory.get(), query, k, &out}));
  return out;
}

const config::Config& Runtime::config() const noexcept { return impl_->cfg; }

boost::system::result<void, ToolError> Runtime::register_tool(std::shared_ptr<Tool> tool) {
  return impl_->registry.add(std::move(tool));
}

namespace {

struct PlanJob {
  planner::Planner* planner;
  config::Task* task;
  planner::PlanDraft* out;
};

asio::awaitable<void> plan_goal(PlanJob job) {
  *job.out = co_await job.planner->create_plan(job.task->goal, job.task->inputs);
}

struct PlanJobDone {
  std::exception_ptr* error;
  void operator()(std::exception_ptr e) const { *error = e; }
};

}  // namespace

PlanReport Runtime::plan_task(std::string_view task_arg, const RunOptions& options) {
  PlanReport report;
  auto task = config::find_task(task_arg, impl_->cfg);
  if (!task) {
    report.problems = render(task.error());
    return report;
  }
  report.task = task->name;
  if (!task->plan) {
    if (auto why = impl_->provider.prepare()) {
      report.problems.push_back("llm: " + *why + " (planning a goal needs the model)");
      return report;
    }
    planner::PlanDraft draft;
    std::exception_ptr error;
    impl_->planner->on_event(options.on_planning, std::chrono::steady_clock::now());
    impl_->io.restart();
    asio::co_spawn(impl_->io, plan_goal(PlanJob{impl_->planner.get(), &*task, &draft}), PlanJobDone{&error});
    impl_->io.run();
    impl_->planner->on_event({}, std::chrono::steady_clock::now());
    if (error) std::rethrow_exception(error);
    if (!draft.ok()) {
      report.problems = std::move(draft.problems);
      report.unreachable = draft.error && tools::to_tool_error(*draft.error).code == ToolErrc::unavailable;
      return report;
    }
    auto from_goal = plan_json(json::value(std::move(draft.steps)), &task->inputs);
    from_goal.task = std::move(report.task);
    return from_goal;
  }
  auto from_plan = plan_json(*task->plan, &task->inputs);
  from_plan.task = std::move(report.task);
  return from_plan;
}

PlanReport Runtime::plan_json(const json::value& plan, const json::object* inputs) {
  PlanReport report;
  report.task = "plan";
  report.plan = plan;
  auto prepared = impl_->prepare(plan, inputs);
  report.problems = std::move(prepared.problems);
  if (!report.problems.empty()) return report;
  for (const auto& level : prepared.analysis.levels) report.levels.push_back(ids_of(prepared.plan, level));
  report.critical_path = ids_of(prepared.plan, prepared.analysis.critical_path);
  return report;
}

RunOutcome Runtime::run_task(std::string_view task_arg, const RunOptions& options) {
  auto task = config::find_task(task_arg, impl_->cfg);
  if (!task) return RunOutcome{render(task.error()), {}};
  auto workspace = task->workspace;
  if (workspace.empty()) workspace = (impl_->cfg.base_dir / impl_->cfg.tools.workspace).lexically_normal();
  if (!task->plan) return impl_->run_goal(std::move(*task), workspace, options, task_arg);
  return impl_->run_fixed(*task->plan, task->inputs, workspace, options, task->name, task_arg);
}

RunOutcome Runtime::run_plan(const json::value& plan_json, const json::object& inputs,
                             const std::filesystem::path& workspace, const RunOptions& options, std::string task_name) {
  return impl_->run_fixed(plan_json, inputs, workspace, options, std::move(task_name), {});
}

RunOutcome Runtime::Impl::run_fixed(const json::value& plan_json, const json::object& inputs,
                                    const std::filesystem::path& workspace, const RunOptions& options,
                                    std::string task_name, std::string_view task_ref) {
  RunOutcome outcome;
  finish_background();
  RunWiring wiring;
  outcome.problems = wire(options, wiring);
  if (!outcome.problems.empty()) return outcome;
  auto prepared = prepare(plan_json, &inputs);
  auto ws = Workspace::open(workspace);
  if (!ws) prepared.problems.push_back("workspace: " + ws.error().message);
  if (prepared.problems.empty() && memory && uses_memory(prepared.plan)) {
    if (auto opened = memory->open(); !opened) prepared.problems.push_back("memory: " + opened.error().message);
  }
  if (prepared.problems.empty() &&
      needs_llm(prepared.plan, prepared.analysis, cfg.verification.llm_judge && cfg.performance.background_tasks.verification)) {
    if (wiring.live()) {
      if (auto why = provider.prepare()) prepared.problems.push_back("llm: " + *why);
    }
  }
  if (!prepared.problems.empty()) {
    outcome.problems = std::move(prepared.problems);
    return outcome;
  }

  auto& result = outcome.result;
  result.run_id = new_run_id();
  result.task = task_name;
  result.plan = plan_json;
  {
    config::Task task;
    task.name = std::move(task_name);
    task.inputs = inputs;
    task.plan = plan_json;
    record_header(wiring, result.run_id, task, task_ref);
  }
  for (const auto& level : prepared.analysis.levels) result.levels.push_back(ids_of(prepared.plan, level));
  result.critical_path = ids_of(prepared.plan, prepared.analysis.critical_path);

  ActiveRun run;
  run.wiring = &wiring;
  run.task.inputs = inputs;
  run.options = &options;
  run.workspace = &*ws;
  run.result = &result;
  run.epoch = std::chrono::steady_clock::now();
  if (options.on_start) options.on_start(result);
  drive(run, plan_flow(&run, &prepared));
  return outcome;
}

}  // namespace dagent
