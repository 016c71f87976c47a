// Runtime: wires config, tool registry, analysis and the scheduler for one run at a time.

#include "dagent/runtime.hpp"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>

#include "config/loader.hpp"
#include "dagent/workspace.hpp"
#include "executor/analysis.hpp"
#include "executor/plan.hpp"
#include "executor/scheduler.hpp"
#include "executor/llm_judge.hpp"
#include "executor/verifier.hpp"
#include "net/response_cache.hpp"
#include "runtime/lazy_provider.hpp"
#include "runtime/trace_writer.hpp"
#include "tools/llm_tool.hpp"
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

struct RunDone {
  executor::ExecutionReport* report;
  std::exception_ptr* error;
  asio::signal_set* signals;
  void operator()(std::exception_ptr e, executor::ExecutionReport r) const {
    *report = std::move(r);
    *error = e;
    if (signals) signals->cancel();
  }
};

struct OnSignal {
  executor::Scheduler* scheduler;
  asio::signal_set* signals;
  void operator()(const boost::system::error_code& ec, int) const {
    if (ec) return;
    if (scheduler->interrupted()) std::_Exit(130);  // a second Ctrl-C: stop now
    scheduler->interrupt();
    signals->async_wait(OnSignal{scheduler, signals});
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

}  // namespace

int RunOutcome::exit_code() const noexcept {
  if (!problems.empty()) return 2;
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
    net::LlmProvider& llm = active_provider();
    if (std::find(cfg.tools.enabled.begin(), cfg.tools.enabled.end(), "llm") != cfg.tools.enabled.end())
      (void)registry.add(std::make_shared<tools::LlmTool>(llm, cfg.llm.model));
    if (cfg.verification.llm_judge) {
      verifier = std::make_unique<executor::LlmJudge>(llm, cfg.llm.model);
    } else {
      verifier = std::make_unique<executor::RuleVerifier>("a text criterion needs the LLM judge, which is off "
                                                          "(verification.llm_judge)");
    }
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
  std::unique_ptr<asio::thread_pool> pool;  // after registry: joined before the tools go away
};

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
Runtime::~Runtime() = default;

const config::Config& Runtime::config() const noexcept { return impl_->cfg; }

boost::system::result<void, ToolError> Runtime::register_tool(std::shared_ptr<Tool> tool) {
  return impl_->registry.add(std::move(tool));
}

PlanReport Runtime::plan_task(std::string_view task_arg) {
  PlanReport report;
  auto task = config::find_task(task_arg, impl_->cfg);
  if (!task) {
    report.problems = render(task.error());
    return report;
  }
  report.task = task->name;
  if (!task->plan) {
    report.problems.push_back("task '" + task->name +
                              "' has no fixed plan; planning from a goal needs the planner, which this build "
                              "does not include yet");
    return report;
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
  if (!task->plan) {
    return RunOutcome{{"task '" + task->name +
                       "' has no fixed plan; planning from a goal needs the planner, which this build does not "
                       "include yet"},
                      {}};
  }
  auto workspace = task->workspace;
  if (workspace.empty()) workspace = (impl_->cfg.base_dir / impl_->cfg.tools.workspace).lexically_normal();
  return run_plan(*task->plan, task->inputs, workspace, options, task->name);
}

RunOutcome Runtime::run_plan(const json::value& plan_json, const json::object& inputs,
                             const std::filesystem::path& workspace, const RunOptions& options, std::string task_name) {
  RunOutcome outcome;
  auto prepared = impl_->prepare(plan_json, &inputs);
  auto ws = Workspace::open(workspace);
  if (!ws) prepared.problems.push_back("workspace: " + ws.error().message);
  if (prepared.problems.empty() &&
      needs_llm(prepared.plan, prepared.analysis, impl_->cfg.verification.llm_judge && impl_->cfg.performance.background_tasks.verification)) {
    if (auto why = impl_->provider.prepare()) prepared.problems.push_back("llm: " + *why);
  }
  if (!prepared.problems.empty()) {
    outcome.problems = std::move(prepared.problems);
    return outcome;
  }

  auto& result = outcome.result;
  result.run_id = new_run_id();
  result.task = std::move(task_name);
  result.plan = plan_json;
  for (const auto& level : prepared.analysis.levels) result.levels.push_back(ids_of(prepared.plan, level));
  result.critical_path = ids_of(prepared.plan, prepared.analysis.critical_path);

  if (options.on_start) options.on_start(result);
  auto& io = impl_->io;
  io.restart();
  const auto before = impl_->active_provider().metrics();
  ToolContext base;
  base.workspace = &*ws;
  base.worker = impl_->worker_pool().get_executor();
  executor::Scheduler scheduler(prepared.plan, prepared.analysis, executor::SchedulerOptions::from(impl_->cfg),
                                base, inputs, *impl_->verifier);
  if (options.on_event) scheduler.on_event(options.on_event);

  std::unique_ptr<asio::signal_set> signals;
  if (options.stop_on_sigint) {
    signals = std::make_unique<asio::signal_set>(io, SIGINT);
    signals->async_wait(OnSignal{&scheduler, signals.get()});
  }
  executor::ExecutionReport report;
  std::exception_ptr error;
  auto started = std::chrono::steady_clock::now();
  asio::co_spawn(io, scheduler.run(), RunDone{&report, &error, signals.get()});
  io.run();
  result.metrics.wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  if (error) std::rethrow_exception(error);

  result.steps = std::move(report.steps);
  result.interrupted = report.interrupted;
  result.metrics.max_concurrent_steps = report.max_concurrent;
  const auto after = impl_->active_provider().metrics();
  result.metrics.retries = report.retries + (after.retries - before.retries);
  result.metrics.llm_calls = after.llm_calls - before.llm_calls;
  result.metrics.prompt_tokens = after.prompt_tokens - before.prompt_tokens;
  result.metrics.completion_tokens = after.completion_tokens - before.completion_tokens;
  result.metrics.embedding_calls = after.embedding_calls - before.embedding_calls;
  result.metrics.rate_limit_wait_ms = after.rate_limit_wait_ms - before.rate_limit_wait_ms;
  result.metrics.cache_hits = after.cache_hits - before.cache_hits;
  result.metrics.connections_opened = after.connections_opened - before.connections_opened;
  bool ok = !report.interrupted;
  for (const auto& s : result.steps)
    ok = ok && s.status == StepStatus::succeeded && s.verification != VerificationStatus::failed;
  result.status = ok ? RunStatus::succeeded : RunStatus::failed;
  if (report.interrupted) result.error = "interrupted";

  if (!options.trace_file.empty()) {
    if (auto written = runtime::write_trace(result, options.trace_file); !written)
      result.error += (result.error.empty() ? "" : "; ") + written.error();
  }
  return outcome;
}

}  // namespace dagent
