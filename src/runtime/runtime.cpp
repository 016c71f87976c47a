// Runtime: the long-lived parts (config, loop, live provider, tools, memory) and the wiring of
// one run at a time; the run itself is runtime::Run, its loop runtime/agent_loop.

#include "dagent/runtime.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "config/loader.hpp"
#include "dagent/workspace.hpp"
#include "tools/protection.hpp"
#include "executor/analysis.hpp"
#include "executor/plan.hpp"
#include "history/history_writer.hpp"
#include "mcp/mcp_tool.hpp"
#include "mcp/servers.hpp"
#include "memory/memory.hpp"
#include "net/response_cache.hpp"
#include "net/url.hpp"
#include "observe/metrics.hpp"
#include "planner/planner.hpp"
#include "redis/redis_cache.hpp"
#include "runtime/agent_loop.hpp"
#include "runtime/lazy_provider.hpp"
#include "runtime/memory_recall.hpp"
#include "runtime/distribution.hpp"
#include "runtime/run.hpp"
#include "runtime/runtime_access.hpp"
#include "runtime/sigint_watch.hpp"
#include "runtime/trace_writer.hpp"
#include "text/json_utf8.hpp"
#include "text/redact.hpp"
#include "text/utf8.hpp"
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

// The first Ctrl-C cancels the call or steps underway (a second exits 130: runtime/sigint_watch).
struct OnSigint {
  runtime::Run* run;
  void operator()() const { run->interrupt(); }
};

// limits.max_wall_ms ran out: the run is cancelled as by Ctrl-C, and ends with the budget error.
struct WallExpired {
  runtime::Run* run;
  void operator()(const boost::system::error_code& ec) const {
    if (ec || run->interrupted) return;  // the run ended first, or the user interrupted it
    if (run->budget().stop_wall()) run->interrupt();
  }
};

// The root of a run's coroutines: an exception (a programmer error, a throwing observer) becomes
// the run's error, so the run still has a result and its recording an end.
asio::awaitable<void> guarded(runtime::Run* run, asio::awaitable<void> flow) {
  try {
    co_await std::move(flow);
  } catch (const std::exception& e) {
    auto& error = run->result->error;
    error += (error.empty() ? "" : "; ") + std::string("internal error: ") + e.what();
  }
}

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

// The actions a plan (SPEC §3 JSON: an array of steps or {"steps": [...]}) names, unchecked.
std::vector<std::string> actions_in(const json::value& plan) {
  std::vector<std::string> out;
  const json::array* steps = plan.if_array();
  if (const auto* o = plan.if_object(); o && o->contains("steps")) steps = o->at("steps").if_array();
  if (!steps) return out;
  for (const auto& step : *steps) {
    const auto* o = step.if_object();
    if (!o) continue;
    const auto* action = o->if_contains("action");
    if (!action) action = o->if_contains("tool");
    if (action && action->is_string()) out.emplace_back(action->get_string());
  }
  return out;
}

struct LoopDone {
  bool* done;
  std::exception_ptr* error;
  void operator()(std::exception_ptr e) const {
    *done = true;
    *error = e;
  }
};

// Runs `work` on `io` until it finishes, leaving other work (an MCP server's reader) queued: the
// run's own loop picks it up, and stops the servers at its end.
void run_until_done(asio::io_context& io, asio::awaitable<void> work) {
  bool done = false;
  std::exception_ptr error;
  io.restart();
  asio::co_spawn(io, std::move(work), LoopDone{&done, &error});
  while (!done) {
    if (io.stopped()) io.restart();
    io.run_one();
  }
  if (error) std::rethrow_exception(error);
}

asio::awaitable<void> stop_servers(mcp::Servers* servers) { co_await servers->stop_all(); }

// A run's flow, then the MCP servers' shutdown (the loop only ends when they are gone).
asio::awaitable<void> then_stop_servers(mcp::Servers* servers, asio::awaitable<void> flow) {
  std::exception_ptr error;
  try {
    co_await std::move(flow);
  } catch (...) {
    error = std::current_exception();
  }
  if (servers) co_await servers->stop_all();
  if (error) std::rethrow_exception(error);
}

// execution.backend redis: the workers are found before the plan is checked against the run's tools.
asio::awaitable<std::vector<std::string>> distribute_if_redis(runtime::Run* run, std::string run_id) {
  if (run->cfg().execution.backend != config::ExecutionBackend::redis) co_return std::vector<std::string>{};
  co_return co_await runtime::distribute(run, std::move(run_id));
}

bool uses_memory(const executor::Plan& plan) {
  for (const auto& step : plan.steps)
    if (step.action == "memory_add" || step.action == "memory_search") return true;
  return false;
}


// What a finished goal run leaves in memory (background_tasks.memory_updates).
struct MemoryUpdate {
  std::vector<std::string> texts;
  std::vector<json::object> metadata;
};

// The goal with its answer, and the text outputs of the run's successful llm steps.
MemoryUpdate update_of(const executor::RunResult& result, const std::string& goal, std::size_t max_chars) {
  constexpr std::size_t k_max_steps = 8;
  MemoryUpdate update;
  update.texts.push_back(text::clipped("Goal: " + goal + "\nAnswer: " + result.answer, max_chars));
  update.metadata.push_back(json::object{{"kind", "run"}, {"run_id", result.run_id}, {"task", result.task}});
  for (const auto& step : result.steps) {
    if (update.texts.size() > k_max_steps) break;
    const auto* out = step.output.if_object();
    const auto* text = out ? out->if_contains("text") : nullptr;
    if (step.status != StepStatus::succeeded || !text || !text->is_string() || text->get_string().empty()) continue;
    update.texts.push_back(text::clipped("Goal: " + goal + "\nStep " + std::to_string(step.id) + " (" + step.action +
                                       "): " + std::string(text->get_string()),
                                   max_chars));
    update.metadata.push_back(json::object{
        {"kind", "step"}, {"run_id", result.run_id}, {"task", result.task}, {"step", step.id}});
  }
  return update;
}

}  // namespace

struct Runtime::Impl {
  explicit Impl(config::Config c)
      : cfg(std::move(c)),
        registry(tools::make_builtin_registry(
            cfg.tools.enabled, {.read_max_bytes = static_cast<std::uint64_t>(cfg.tools.read_max_bytes),
                                .search_max_line_bytes = static_cast<std::size_t>(cfg.tools.search_max_line_bytes)})),
        provider(io.get_executor(), cfg) {
    if (!cfg.mcp.servers.empty()) mcp = std::make_unique<mcp::Servers>(io.get_executor(), cfg);
    if (cfg.performance.caching.llm_responses) make_cache();
    net::LlmProvider& llm = live();
    if (enabled("llm")) {
      llm_tool = std::make_shared<tools::LlmTool>(llm, tools::LlmTool::options_of(cfg));
      (void)registry.add(llm_tool);
    }
    if (cfg.memory.enabled) {
      memory = std::make_unique<memory::Memory>(io.get_executor(), worker_pool().get_executor(), llm, cfg);
      if (enabled("memory_add")) {
        memory_add_tool = std::make_shared<tools::MemoryAddTool>(*memory);
        (void)registry.add(memory_add_tool);
      }
      if (enabled("memory_search")) {
        memory_search_tool = std::make_shared<tools::MemorySearchTool>(*memory, cfg.memory.recall_k);
        (void)registry.add(memory_search_tool);
      }
      recall = std::make_unique<runtime::MemoryRecall>(*memory, nullptr);  // plan_task's; a run makes its own
    }
  }

  // The response cache, in front of `provider`; with backend: redis, its second level in Redis
  // (a RedisOptions problem, e.g. an unset password variable, waits in cache_problem for the
  // first run that needs the model).
  void make_cache() {
    const auto& caching = cfg.performance.caching;
    net::CacheOptions o;
    o.ttl = std::chrono::seconds(caching.ttl_seconds);
    o.max_entries = static_cast<std::size_t>(caching.max_entries);
    // Keys hash the provider's origin and path: a URL that does not parse has calls that fail,
    // and failures are not cached.
    const std::string url = provider.base_url();
    const auto parsed = net::parse_base_url(url);
    o.scope = parsed ? parsed->origin.key() + parsed->path : url;
    if (caching.backend == config::CacheBackend::redis) {
      auto redis_options = redis::RedisOptions::from(cfg.redis, cfg.base_dir);
      if (!redis_options) {
        cache_problem = "performance.caching.backend: redis: " + redis_options.error().message;
      } else {
        if (!redis_options->password.empty()) text::register_secret(redis_options->password);
        o.shared = std::make_shared<redis::RedisCache>(redis::RedisClient(io.get_executor(), std::move(*redis_options)));
      }
    }
    cache = std::make_unique<net::CachingProvider>(io.get_executor(), provider, std::move(o));
  }

  /// The live provider ready for calls (the client created, the cache's Redis configured), or why not.
  std::optional<std::string> prepare_llm() {
    if (auto why = provider.prepare()) return why;
    return cache_problem;
  }

  bool enabled(std::string_view tool) const {
    return std::find(cfg.tools.enabled.begin(), cfg.tools.enabled.end(), tool) != cfg.tools.enabled.end();
  }

  net::LlmProvider& live() { return cache ? static_cast<net::LlmProvider&>(*cache) : provider; }

  /// What a run reads of the runtime; nothing here changes while it runs.
  runtime::Shared shared() {
    runtime::Shared s;
    s.cfg = &cfg;
    s.loop = io.get_executor();
    s.pool = worker_pool().get_executor();
    s.registry = &registry;
    s.live = &live();
    s.memory = memory.get();
    s.recall = recall.get();
    s.llm_tool = llm_tool.get();
    s.memory_add_tool = memory_add_tool.get();
    s.memory_search_tool = memory_search_tool.get();
    return s;
  }

  // A run is a coroutine on `io`: the blocking calls drive the loop until it ends (block_on),
  // a service runs many at once while run_loop() drives it.
  asio::awaitable<void> drive(runtime::Run& run, asio::awaitable<void> flow);
  asio::awaitable<runtime::Outcome> run_goal(config::Task task, std::filesystem::path workspace, const RunOptions& options,
                                       std::string task_ref);
  asio::awaitable<runtime::Outcome> run_fixed(json::value plan_json, json::object inputs, std::filesystem::path workspace,
                                        const RunOptions& options, std::string task_name, std::string task_ref,
                                        std::string goal = {});
  /// Stores the memory updates of earlier runs, then runs `run` on the loop until the loop has no
  /// work left (the run's MCP servers stopped, its connections settled).
  runtime::Outcome block_on(asio::awaitable<runtime::Outcome> run);
  /// A task with a goal (run_goal) or a fixed plan (run_fixed), in its workspace or the default one.
  asio::awaitable<runtime::Outcome> run_task(config::Task task, const RunOptions& options, std::string task_ref);
  /// Queues a finished goal run's memory update (stored by finish_background, or at once while serving).
  void queue_memory_update(const executor::RunResult& result, const std::string& goal, bool live);
  std::vector<std::string> finish_background();
  /// Hands a finished run to the history writer (history.enabled); returns at once.
  void record_history(const executor::RunResult& result, const std::string& goal);
  MemoryOutcome memory_ready();  ///< the memory opened and the provider ready, or why not
  /// Starts the MCP servers called `names` and registers their tools (`SERVER.TOOL`); every problem.
  std::vector<std::string> attach_mcp(const std::vector<std::string>& names);
  asio::awaitable<std::vector<std::string>> attach_mcp_async(std::vector<std::string> names);
  /// Stops the MCP servers after a run, unless a service keeps them for the next runs.
  asio::awaitable<void> release_mcp() {
    if (mcp && !serving) co_await mcp->stop_all();
  }
  /// The MCP servers a run needs: every one for a goal (the planner's catalog), those its
  /// actions name for a fixed plan; none when --replay-tools answers the calls.
  std::vector<std::string> mcp_needed(const json::value* plan, const RunOptions& options) const;
  void stop_mcp() {
    if (mcp) run_until_done(io, stop_servers(mcp.get()));
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
  std::optional<std::string> cache_problem;     // why the cache's Redis cannot be used
  std::shared_ptr<Tool> llm_tool;               // the built-in tools a run rebinds to its own provider chain
  std::shared_ptr<Tool> memory_add_tool;
  std::shared_ptr<Tool> memory_search_tool;
  std::unique_ptr<memory::Memory> memory;     // memory.enabled
  std::unique_ptr<planner::Recall> recall;    // the planner's view of `memory`
  std::vector<MemoryUpdate> pending_updates;  // background memory updates not yet stored
  std::unique_ptr<mcp::Servers> mcp;          // mcp.servers; each started when a run first needs it
  std::unique_ptr<history::HistoryWriter> history;  // history.enabled; started by the first run
  // run_loop(): a service's runs share the loop; MCP servers stay up between runs.
  bool serving = false;
  bool stop_requested = false;
  int active_runs = 0;
  std::vector<std::string> background_problems;  // memory updates stored while serving that failed
  void stop_when_idle() {
    if (serving && stop_requested && active_runs == 0) io.stop();
  }

  std::unique_ptr<asio::thread_pool> pool;  // last: joined before the tools and the memory go away
};

namespace {

// The run's own calls, from its meter (never the provider's totals: other runs share it).
void fill_metrics(executor::RunResult& result, const net::CallMeter& meter, std::int64_t step_retries) {
  const net::ProviderMetrics used = meter.metrics();
  auto& m = result.metrics;
  m.retries = step_retries + used.retries;
  m.retries_refused = used.retries_refused;
  m.llm_calls = used.llm_calls;
  m.prompt_tokens = used.prompt_tokens;
  m.completion_tokens = used.completion_tokens;
  m.embedding_calls = used.embedding_calls;
  m.rate_limit_wait_ms = used.rate_limit_wait_ms;
  m.cache_hits = used.cache_hits;
  m.cache_l2_hits = used.cache_l2_hits;
  m.cache_l2_errors = used.cache_l2_errors;
  m.connections_opened = used.connections_opened;
  m.rate_limit_fallback_calls = used.rate_limit_fallback_calls;
}

}  // namespace

namespace {

// A service's DELETE: RunCancel interrupts this run while it is underway, and nothing after.
struct CancelLink {
  CancelLink(const std::shared_ptr<RunCancel>& cancel, runtime::Run* run) : cancel(cancel) {
    if (!cancel) return;
    cancel->attach(Interrupt{run});
    if (cancel->cancelled()) run->interrupt();
  }
  ~CancelLink() {
    if (cancel) cancel->attach({});
  }
  struct Interrupt {
    runtime::Run* run;
    void operator()() const { run->interrupt(); }
  };
  std::shared_ptr<RunCancel> cancel;
};

}  // namespace

asio::awaitable<void> Runtime::Impl::drive(runtime::Run& run, asio::awaitable<void> flow) {
  auto& result = *run.result;
  std::optional<runtime::SigintWatch> sigint;
  if (run.options().stop_on_sigint) sigint.emplace(io.get_executor(), OnSigint{&run});
  run.budget().start(run.epoch);
  asio::steady_timer wall(io);
  if (const auto ms = cfg.limits.max_wall_ms; ms > 0) {
    wall.expires_at(run.epoch + std::chrono::milliseconds(ms));
    wall.async_wait(WallExpired{&run});
  }
  std::exception_ptr error;
  {
    CancelLink link(run.options().cancel, &run);
    try {
      co_await guarded(&run, run.with_warm_connections(std::move(flow)));
    } catch (...) {
      error = std::current_exception();
    }
  }
  // Its handler sees operation_aborted and touches nothing of the run.
  wall.cancel();
  result.metrics.wall_ms = runtime::ms_since(run.epoch);
  if (error) std::rethrow_exception(error);
  const auto& budget_error = run.budget().exceeded();
  if (budget_error) run.problems.clear();  // planning stopped by the budget: a failed run, not invalid input
  if (!run.problems.empty()) co_return;
  result.interrupted = run.interrupted && !run.budget().wall_stopped();
  if (budget_error) {  // the cause leads; errors that only repeat it go
    const bool repeated = result.error.find("budget exceeded: ") != std::string::npos;
    result.error = *budget_error + (result.error.empty() || repeated ? "" : "; " + result.error);
  }
  result.metrics.max_concurrent_steps = run.max_concurrent;
  fill_metrics(result, *run.budget().meter(), run.retries);
  runtime::finish_status(result);
  if (auto* recorder = run.recorder()) recorder->end(result);
  // An output the caller asked for and did not get fails the run, whatever its steps did.
  bool output_lost = false;
  if (auto* writer = run.writer(); writer && writer->error()) {
    runtime::add_error(result, "--record: " + *writer->error());
    output_lost = true;
  }
  if (!run.options().trace_file.empty()) {
    if (auto written = runtime::write_trace(result, run.options().trace_file); !written) {
      runtime::add_error(result, written.error());
      output_lost = true;
    }
  }
  if (output_lost) result.status = RunStatus::failed;
}

asio::awaitable<runtime::Outcome> Runtime::Impl::run_goal(config::Task task, std::filesystem::path workspace,
                                                    const RunOptions& options, std::string task_ref) {
  runtime::Outcome outcome;
  outcome.problems = co_await attach_mcp_async(mcp_needed(nullptr, options));
  if (!outcome.problems.empty()) {
    co_await release_mcp();
    co_return outcome;
  }
  runtime::Run run(shared(), options);
  outcome.problems = run.set_up(task);
  if (outcome.problems.empty()) outcome.problems = run.add_recorded_mcp_tools();
  const std::string run_id = new_run_id();
  if (outcome.problems.empty()) outcome.problems = co_await distribute_if_redis(&run, run_id);
  if (!outcome.problems.empty()) {
    co_await release_mcp();
    co_return outcome;
  }
  auto ws = Workspace::open(workspace, tools::protection_for(cfg, options.record_file, options.resume_file));
  if (!ws) outcome.problems.push_back("workspace: " + ws.error().message);
  if (run.live()) {
    if (auto why = prepare_llm()) outcome.problems.push_back("llm: " + *why + " (planning a goal needs the model)");
    if (memory) {
      if (auto opened = memory->open(); !opened) outcome.problems.push_back("memory: " + opened.error().message);
    }
  }
  if (!outcome.problems.empty()) {
    co_await release_mcp();
    co_return outcome;
  }

  auto& result = outcome.result;
  result.run_id = run_id;
  result.task = task.name;
  run.workspace = std::move(*ws);
  run.task = std::move(task);
  run.result = &result;
  if (auto refused = run.record_header(task_ref)) {
    outcome.problems.push_back(std::move(*refused));
    co_await release_mcp();
    co_return outcome;
  }
  run.epoch = std::chrono::steady_clock::now();
  if (options.on_planning)  // the run's own planner
    run.planner().on_event(runtime::PublicPlanningEvents{options.on_planning}, run.epoch);
  co_await drive(run, then_stop_servers(serving ? nullptr : mcp.get(),
                                        runtime::with_workers(&run, runtime::run_goal_loop(&run))));
  if (!run.problems.empty()) {
    outcome.problems = std::move(run.problems);
    outcome.unreachable = run.unreachable;
    co_return outcome;
  }
  outcome.unreachable = run.unreachable;
  queue_memory_update(result, run.task.goal, run.live());
  record_history(result, run.task.goal);
  co_return outcome;
}

namespace {

struct OutcomeDone {
  runtime::Outcome* outcome;
  std::exception_ptr* error;
  void operator()(std::exception_ptr e, runtime::Outcome o) const {
    *error = e;
    if (!e) *outcome = std::move(o);
  }
};

}  // namespace

runtime::Outcome Runtime::Impl::block_on(asio::awaitable<runtime::Outcome> run) {
  finish_background();
  runtime::Outcome outcome;
  std::exception_ptr error;
  io.restart();
  asio::co_spawn(io, std::move(run), OutcomeDone{&outcome, &error});
  io.run();
  if (error) std::rethrow_exception(error);
  return outcome;
}

void Runtime::Impl::record_history(const executor::RunResult& result, const std::string& goal) {
  observe::record_run(result);  // once per finished run, history or not
  if (!cfg.history.enabled) return;
  if (!history)
    history = std::make_unique<history::HistoryWriter>(history::WriterOptions{
        .path = history::database_path(cfg.history.path, cfg.base_dir), .keep_days = cfg.history.keep_days});
  using namespace std::chrono;
  const auto now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  history->submit(history::record_of(result, goal, now));
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

struct UpdatesStored {
  std::vector<std::string>* problems;
  void operator()(std::exception_ptr e) const {
    if (e) problems->push_back("memory update: internal error");
  }
};

void Runtime::Impl::queue_memory_update(const executor::RunResult& result, const std::string& goal, bool live) {
  if (!memory || !cfg.performance.background_tasks.memory_updates || result.answer.empty() || !live ||
      result.status != RunStatus::succeeded)
    return;
  auto update = update_of(result, goal, static_cast<std::size_t>(cfg.memory.chunk_chars));
  if (!serving) {  // stored after the result is returned: by finish_background(), the next run, or ~Runtime
    pending_updates.push_back(std::move(update));
    return;
  }
  // A service has no "next run": stored now, beside the runs that follow (never before the result).
  std::vector<MemoryUpdate> updates;
  updates.push_back(std::move(update));
  asio::co_spawn(io, store_updates(StoreUpdates{memory.get(), std::move(updates), &background_problems}),
                 UpdatesStored{&background_problems});
}

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
    if (!loaded) return loaded.error().lines();
    cfg = std::move(*loaded);
  }
  auto problems = config::apply_overrides(cfg, overrides);
  if (!problems.empty()) return config::Problems{std::move(problems)}.lines();
  return runtime::make_runtime(std::move(cfg));
}

// The in-tree programs' way past the public API (runtime/runtime_access.hpp).
struct RuntimeAccess {
  static Runtime::Impl& impl(Runtime& r) noexcept { return *r.impl_; }
  static const Runtime::Impl& impl(const Runtime& r) noexcept { return *r.impl_; }
  static Runtime make(config::Config cfg) { return Runtime(std::make_unique<Runtime::Impl>(std::move(cfg))); }
};

Runtime runtime::make_runtime(config::Config cfg) { return RuntimeAccess::make(std::move(cfg)); }

const config::Config& runtime::config_of(const Runtime& r) noexcept { return RuntimeAccess::impl(r).cfg; }

Runtime::Runtime(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Runtime::Runtime(Runtime&&) noexcept = default;
Runtime& Runtime::operator=(Runtime&&) noexcept = default;
Runtime::~Runtime() {
  if (!impl_) return;
  try {
    (void)impl_->finish_background();
  } catch (...) {  // a destructor cannot report; finish_background() can
  }
}

std::vector<std::string> Runtime::finish_background() {
  auto problems = impl_->finish_background();
  problems.insert(problems.begin(), impl_->background_problems.begin(), impl_->background_problems.end());
  impl_->background_problems.clear();
  if (impl_->history)
    for (auto& warning : impl_->history->flush()) problems.push_back(std::move(warning));
  return problems;
}

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

std::vector<std::string> Runtime::Impl::mcp_needed(const json::value* plan, const RunOptions& options) const {
  if (!mcp) return {};
  if (options.replay_tools && !options.replay_file.empty()) return {};  // the recording answers
  if (!plan) return mcp->names();
  return mcp->named_by(actions_in(*plan));
}

namespace {

struct AttachJob {
  Runtime::Impl* impl;
  std::vector<std::string> names;
  std::vector<std::string>* problems;
};

asio::awaitable<void> attach_on_loop(AttachJob job) { *job.problems = co_await job.impl->attach_mcp_async(std::move(job.names)); }

}  // namespace

std::vector<std::string> Runtime::Impl::attach_mcp(const std::vector<std::string>& names) {
  std::vector<std::string> problems;
  if (mcp && !names.empty()) run_until_done(io, attach_on_loop(AttachJob{this, names, &problems}));
  return problems;
}

asio::awaitable<std::vector<std::string>> Runtime::Impl::attach_mcp_async(std::vector<std::string> names) {
  std::vector<std::string> problems;
  if (!mcp || names.empty()) co_return problems;
  problems = co_await mcp->start(names);
  if (!problems.empty()) co_return problems;
  for (const auto& name : names) {
    auto* server = mcp->find(name);
    for (const auto& remote : server->tools()) {
      auto tool = std::make_shared<mcp::McpTool>(server, name, remote);
      if (registry.get(tool->name())) continue;  // listed by an earlier run
      if (auto added = registry.add(tool); !added)
        problems.push_back("MCP server '" + name + "': " + added.error().message);
    }
  }
  co_return problems;
}

MemoryOutcome Runtime::Impl::memory_ready() {
  MemoryOutcome out;
  if (!memory) {
    out.error = "the memory is off (memory.enabled: false)";
    out.exit_code = 2;
  } else if (auto opened = memory->open(); !opened) {
    out.error = opened.error().message;
    out.exit_code = 2;
  } else if (auto why = prepare_llm()) {
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

MemoryOutcome Runtime::search_memory(const std::string& given, int k) {
  auto out = impl_->memory_ready();
  if (!out.error.empty()) return out;
  if (k == 0) k = impl_->cfg.memory.recall_k;
  const std::string query = text::valid_utf8(given);  // a command-line argument need not be UTF-8
  run_on_loop(impl_->io, search_memory_on_loop(SearchJob{impl_->memory.get(), query, k, &out}));
  return out;
}

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

}  // namespace

PlanReport Runtime::plan_task(std::string_view task_arg, const RunOptions& options) {
  PlanReport report;
  auto task = config::find_task(task_arg, impl_->cfg);
  if (!task) {
    report.problems = task.error().lines();
    return report;
  }
  report.task = task->name;
  if (!task->plan) {
    if (auto why = impl_->prepare_llm()) {
      report.problems.push_back("llm: " + *why + " (planning a goal needs the model)");
      return report;
    }
    if (auto problems = impl_->attach_mcp(impl_->mcp_needed(nullptr, {})); !problems.empty()) {
      impl_->stop_mcp();
      report.problems = std::move(problems);
      return report;
    }
    planner::PlanDraft draft;
    // A planner of its own: nothing the Runtime keeps is re-pointed for this call.
    planner::Planner planner(impl_->live(), impl_->registry, impl_->cfg);
    planner.set_recall(impl_->recall.get());
    if (options.on_planning)
      planner.on_event(runtime::PublicPlanningEvents{options.on_planning}, std::chrono::steady_clock::now());
    run_until_done(impl_->io, plan_goal(PlanJob{&planner, &*task, &draft}));
    impl_->stop_mcp();
    impl_->io.restart();
    impl_->io.run();  // what the planning calls left (a connection closing), as before MCP servers
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
  text::make_valid_utf8(report.plan);  // as run_fixed: the report is printed as JSON
  std::optional<json::object> valid_inputs;
  if (inputs != nullptr) text::make_valid_utf8(valid_inputs.emplace(*inputs));
  auto problems = impl_->attach_mcp(impl_->mcp_needed(&report.plan, {}));  // the schemas of the tools it names
  impl_->stop_mcp();
  if (!problems.empty()) {
    report.problems = std::move(problems);
    return report;
  }
  auto prepared = runtime::prepare_plan(report.plan, valid_inputs ? &*valid_inputs : nullptr, impl_->registry, impl_->cfg);
  report.problems = std::move(prepared.problems);
  if (!report.problems.empty()) return report;
  for (const auto& level : prepared.analysis.levels) report.levels.push_back(runtime::ids_of(prepared.plan, level));
  report.critical_path = runtime::ids_of(prepared.plan, prepared.analysis.critical_path);
  return report;
}

McpListing Runtime::list_mcp_tools(std::string_view server) {
  McpListing listing;
  auto& mcp = impl_->mcp;
  std::vector<std::string> names;
  if (server.empty()) {
    if (mcp) names = mcp->names();
  } else if (mcp && mcp->find(server)) {
    names.emplace_back(server);
  } else {
    listing.unknown_server = true;
    listing.problems.push_back("mcp.servers: no server '" + std::string(server) + "' is configured");
    return listing;
  }
  for (const auto& name : names) {  // one at a time: a server that fails does not hide the others
    auto problems = impl_->attach_mcp({name});
    listing.problems.insert(listing.problems.end(), problems.begin(), problems.end());
    if (!problems.empty()) continue;
    for (const auto& remote : mcp->find(name)->tools())
      listing.tools.push_back({name, name + "." + remote.name, remote.description, remote.input_schema});
  }
  impl_->stop_mcp();
  return listing;
}

RunOutcome Runtime::run_task(std::string_view task_arg, const RunOptions& options) {
  return runtime::to_public(runtime::run_task(*this, task_arg, options));
}

runtime::Outcome runtime::run_task(Runtime& rt, std::string_view task_arg, const RunOptions& options) {
  auto& im = RuntimeAccess::impl(rt);
  auto task = config::find_task(task_arg, im.cfg);
  if (!task) return Outcome{task.error().lines(), {}, {}};
  return im.block_on(im.run_task(std::move(*task), options, std::string(task_arg)));
}

asio::awaitable<runtime::Outcome> Runtime::Impl::run_task(config::Task task, const RunOptions& options, std::string task_ref) {
  auto workspace = task.workspace.empty() ? config::default_workspace(cfg) : task.workspace;
  if (!task.plan) co_return co_await run_goal(std::move(task), std::move(workspace), options, std::move(task_ref));
  co_return co_await run_fixed(std::move(*task.plan), std::move(task.inputs), std::move(workspace), options,
                               std::move(task.name), std::move(task_ref), std::move(task.goal));
}

RunOutcome Runtime::run_plan(const json::value& plan_json, const json::object& inputs,
                             const std::filesystem::path& workspace, const RunOptions& options, std::string task_name) {
  return runtime::to_public(runtime::run_plan(*this, plan_json, inputs, workspace, options, std::move(task_name)));
}

runtime::Outcome runtime::run_plan(Runtime& rt, const json::value& plan_json, const json::object& inputs,
                                   const std::filesystem::path& workspace, const RunOptions& options,
                                   std::string task_name) {
  auto& im = RuntimeAccess::impl(rt);
  return im.block_on(im.run_fixed(plan_json, inputs, workspace, options, std::move(task_name), {}));
}

asio::awaitable<runtime::Outcome> Runtime::Impl::run_fixed(json::value plan_json, json::object inputs,
                                                     std::filesystem::path workspace, const RunOptions& options,
                                                     std::string task_name, std::string task_ref, std::string goal) {
  runtime::Outcome outcome;
  runtime::Run run(shared(), options);
  run.task.name = std::move(task_name);
  run.task.inputs = std::move(inputs);
  run.task.plan = std::move(plan_json);
  // A program's inputs and plan enter here (a task file's were repaired by the loader): prompts,
  // results and the recording's header must not carry bytes that are not UTF-8.
  text::make_valid_utf8(run.task.name);
  text::make_valid_utf8(run.task.inputs);
  text::make_valid_utf8(*run.task.plan);
  outcome.problems = co_await attach_mcp_async(mcp_needed(&*run.task.plan, options));
  if (outcome.problems.empty()) outcome.problems = run.set_up(run.task);
  if (outcome.problems.empty()) outcome.problems = run.add_recorded_mcp_tools();
  const std::string run_id = new_run_id();
  if (outcome.problems.empty()) outcome.problems = co_await distribute_if_redis(&run, run_id);
  if (!outcome.problems.empty()) {
    co_await release_mcp();
    co_return outcome;
  }
  auto prepared = run.prepare(*run.task.plan);
  auto ws = Workspace::open(workspace, tools::protection_for(cfg, options.record_file, options.resume_file));
  if (!ws) prepared.problems.push_back("workspace: " + ws.error().message);
  if (prepared.problems.empty() && memory && run.live() && uses_memory(prepared.plan)) {
    if (auto opened = memory->open(); !opened) prepared.problems.push_back("memory: " + opened.error().message);
  }
  if (prepared.problems.empty() && run.live() && needs_llm(prepared.plan, prepared.analysis, cfg.verification.llm_judge)) {
    if (auto why = prepare_llm()) prepared.problems.push_back("llm: " + *why);
  }
  if (!prepared.problems.empty()) {
    outcome.problems = std::move(prepared.problems);
    co_await release_mcp();
    co_return outcome;
  }

  auto& result = outcome.result;
  result.run_id = run_id;
  result.task = run.task.name;
  result.plan = *run.task.plan;
  for (const auto& level : prepared.analysis.levels) result.levels.push_back(runtime::ids_of(prepared.plan, level));
  result.critical_path = runtime::ids_of(prepared.plan, prepared.analysis.critical_path);
  run.workspace = std::move(*ws);
  run.result = &result;
  if (auto refused = run.record_header(task_ref)) {
    outcome.problems.push_back(std::move(*refused));
    co_await release_mcp();
    co_return outcome;
  }
  run.epoch = std::chrono::steady_clock::now();
  if (options.on_start) options.on_start(runtime::to_public(result));
  co_await drive(run, then_stop_servers(serving ? nullptr : mcp.get(),
                                        runtime::with_workers(&run, runtime::run_plan_loop(&run, &prepared))));
  outcome.unreachable = run.unreachable;
  record_history(result, goal);  // a fixed plan's goal is a description only: not in run.task
  co_return outcome;
}

void RunCancel::cancel() {
  if (cancelled_) return;
  cancelled_ = true;
  if (interrupt_) interrupt_();
}

void RunCancel::attach(std::function<void()> interrupt) { interrupt_ = std::move(interrupt); }

asio::any_io_executor Runtime::executor() const noexcept { return impl_->io.get_executor(); }

std::vector<std::string> Runtime::run_loop() {
  auto& im = *impl_;
  if (im.serving) return {"run_loop: the loop is already running"};
  if (auto problems = im.finish_background(); !problems.empty())
    im.background_problems.insert(im.background_problems.end(), problems.begin(), problems.end());
  // Every configured MCP server, once: the runs share them (a server that crashes is restarted by
  // the next run that calls it).
  if (im.mcp) {
    if (auto problems = im.attach_mcp(im.mcp->names()); !problems.empty()) {
      im.stop_mcp();
      return problems;
    }
  }
  im.serving = true;
  im.stop_requested = false;
  {
    auto work = asio::make_work_guard(im.io);  // the loop waits for work until stop_loop()
    im.io.restart();
    im.io.run();
  }
  im.serving = false;
  im.stop_mcp();
  return {};
}

namespace {

struct StopLoop {
  Runtime::Impl* impl;
  void operator()() const {
    impl->stop_requested = true;
    impl->stop_when_idle();
  }
};

// Why a run cannot start on the loop: only while run_loop() runs, without the blocking calls' options.
std::vector<std::string> async_refusals(const Runtime::Impl& im, const RunOptions& options, std::string_view call) {
  std::vector<std::string> problems;
  const std::string name(call);
  if (!im.serving) problems.push_back(name + ": the runtime's loop is not running (run_loop)");
  if (options.stop_on_sigint) problems.push_back(name + ": stop_on_sigint is for the blocking calls");
  if (!options.record_file.empty() || !options.replay_file.empty() || !options.resume_file.empty())
    problems.push_back(name + ": recording, replay and resume are for the blocking calls");
  return problems;
}

// Counts a service's run as underway for as long as its coroutine lives, however it ends.
struct ActiveRun {
  explicit ActiveRun(Runtime::Impl* impl) : impl(impl) { ++impl->active_runs; }
  ~ActiveRun() {
    --impl->active_runs;
    impl->stop_when_idle();
  }
  ActiveRun(const ActiveRun&) = delete;
  ActiveRun& operator=(const ActiveRun&) = delete;
  Runtime::Impl* impl;
};

}  // namespace

void Runtime::stop_loop() { asio::post(impl_->io, StopLoop{impl_.get()}); }

asio::awaitable<runtime::Outcome> runtime::run_task_async(Runtime& rt, const config::Task& task,
                                                         const RunOptions& options) {
  auto& im = RuntimeAccess::impl(rt);
  Outcome refused{async_refusals(im, options, "run_task_async"), {}, {}};
  if (!refused.problems.empty()) co_return refused;
  ActiveRun active(&im);
  co_return co_await im.run_task(task, options, task.name);
}

asio::awaitable<RunOutcome> Runtime::run_task_async(std::string task_arg, const RunOptions& options) {
  auto task = config::find_task(task_arg, impl_->cfg);
  if (!task) co_return runtime::to_public(runtime::Outcome{task.error().lines(), {}, {}});
  co_return runtime::to_public(co_await runtime::run_task_async(*this, *task, options));
}

asio::awaitable<RunOutcome> Runtime::run_plan_async(json::value plan, json::object inputs,
                                                    std::filesystem::path workspace, const RunOptions& options,
                                                    std::string task_name) {
  runtime::Outcome refused{async_refusals(*impl_, options, "run_plan_async"), {}, {}};
  if (!refused.problems.empty()) co_return runtime::to_public(std::move(refused));
  ActiveRun active(impl_.get());
  co_return runtime::to_public(co_await impl_->run_fixed(std::move(plan), std::move(inputs), std::move(workspace),
                                                         options, std::move(task_name), {}));
}

}  // namespace dagent
