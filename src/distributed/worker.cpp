#include "distributed/worker.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <utility>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "tools/json_schema.hpp"

namespace dagent::distributed {

namespace asio = boost::asio;
using redis::Command;
using redis::Reply;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto k_token = asio::as_tuple(asio::use_awaitable);
/// How long after a job's step timeout the worker gives up on it by itself (see run_job).
constexpr std::chrono::milliseconds k_timeout_grace{1000};

// Stores a result once (SET NX); only the call that stored it announces it on the run's result
// stream. The job is acknowledged and deleted either way. KEYS: result, results stream, steps;
// ARGV: result, ttl, group, entry id, key.
constexpr std::string_view k_finish = R"lua(
local won = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
if won then
  redis.call('XADD', KEYS[2], '*', 'key', ARGV[5], 'result', ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
redis.call('XACK', KEYS[3], ARGV[3], ARGV[4])
redis.call('XDEL', KEYS[3], ARGV[4])
if won then return 1 end
return 0
)lua";

bool inside(const std::filesystem::path& path, const std::filesystem::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

}  // namespace

struct Worker::Impl {
  Impl(asio::any_io_executor l, asio::any_io_executor p, const tools::Registry& r, WorkerOptions o)
      : loop(l), pool(p), registry(r), options(std::move(o)), client(l, options.redis), reader(l, reader_options(options.redis)),
        wake(l, asio::steady_timer::time_point::max()) {
    options.concurrency = std::max(1, options.concurrency);
    for (auto& root : options.workspace_roots) {
      std::error_code ec;
      auto real = std::filesystem::canonical(root, ec);
      roots.push_back(ec ? std::filesystem::absolute(root).lexically_normal() : real);
    }
  }

  static redis::RedisOptions reader_options(redis::RedisOptions o) {
    o.pool_size = 1;  // the blocking read has a connection of its own
    return o;
  }

  void log(const std::string& line) const {
    if (options.log) options.log(line);
  }
  std::chrono::milliseconds heartbeat() const { return std::max(std::chrono::milliseconds(50), options.visibility_timeout / 3); }
  std::chrono::milliseconds block() const {
    return std::clamp(options.visibility_timeout / 2, std::chrono::milliseconds(50), std::chrono::milliseconds(1000));
  }

  asio::any_io_executor loop;
  asio::any_io_executor pool;
  const tools::Registry& registry;
  WorkerOptions options;
  redis::RedisClient client;
  redis::RedisClient reader;
  std::vector<std::filesystem::path> roots;
  std::map<std::string, Workspace> workspaces;  // opened once per folder
  asio::steady_timer wake;                      // the main loop waits here for a free slot or stop()
  int running = 0;
  bool stopping = false;
  Stats stats;
  std::string last_failure;  // logged once until Redis answers again
};

namespace {

using Impl = Worker::Impl;

void note_failure(Impl& impl, const std::string& what) {
  if (what == impl.last_failure) return;
  impl.last_failure = what;
  impl.log("Redis: " + what + " (retrying)");
}

asio::awaitable<void> pause_for(Impl& impl, std::chrono::milliseconds d) {
  asio::steady_timer t(impl.loop, d);
  (void)co_await t.async_wait(k_token);
}

// The job's workspace, if it is an existing folder inside one of the worker's roots.
boost::system::result<const Workspace*, ToolError> workspace_for(Impl& impl, const std::string& path) {
  const std::filesystem::path asked(path);
  if (!asked.is_absolute()) return ToolError{make_error_code(ToolErrc::outside_workspace), "the job's workspace is not an absolute path"};
  std::error_code ec;
  const auto real = std::filesystem::canonical(asked, ec);
  if (ec || !std::filesystem::is_directory(real, ec))
    return ToolError{make_error_code(ToolErrc::not_found),
                     "the workspace " + path + " does not exist on worker " + impl.options.name +
                         " (workers need the same path, or a shared folder mounted at it)"};
  const bool allowed = std::any_of(impl.roots.begin(), impl.roots.end(), [&](const auto& root) { return inside(real, root); });
  if (!allowed)
    return ToolError{make_error_code(ToolErrc::outside_workspace),
                     "worker " + impl.options.name + " refuses the workspace " + path +
                         ": it is not inside its --workspace-root folders"};
  const std::string id = real.string();
  if (auto it = impl.workspaces.find(id); it != impl.workspaces.end()) return &it->second;
  auto opened = Workspace::open(real, impl.options.protection);
  if (!opened) return opened.error();
  return &impl.workspaces.emplace(id, std::move(*opened)).first->second;
}

// Acknowledges and deletes an entry without a result (a malformed or cancelled job, or one whose
// key has its result already).
asio::awaitable<void> drop(std::shared_ptr<Impl> impl, std::string id) {
  std::vector<Command> commands;
  commands.push_back(Command{"XACK", impl->options.keys.steps(), std::string(StreamKeys::group()), id});
  commands.push_back(Command{"XDEL", impl->options.keys.steps(), id});
  (void)co_await impl->client.pipeline(std::move(commands));
}

// Stores the result of `job`; retried while Redis fails, until the worker stops (the job stays
// pending then, and runs again elsewhere after the visibility timeout).
asio::awaitable<void> finish(std::shared_ptr<Impl> impl, std::string id, Job job, ToolResult result) {
  const StreamKeys& keys = impl->options.keys;
  const std::string encoded = encode_result(result);
  std::chrono::milliseconds backoff{100};
  for (int attempt = 0; attempt < 20; ++attempt) {
    Command script{"EVAL", std::string(k_finish), "3", keys.result(job.key), keys.results(job.run), keys.steps(), encoded,
                   std::to_string(k_result_ttl.count()), std::string(StreamKeys::group()), id, job.key};
    auto reply = co_await impl->client.command(std::move(script));
    if (reply && !reply->is_error()) {
      impl->last_failure.clear();
      if (reply->integer == 1) ++impl->stats.accepted;
      else ++impl->stats.duplicates, impl->log("result of " + job.key + " dropped: it had one already");
      co_return;
    }
    note_failure(*impl, reply ? "refused the result script: " + reply->str.substr(0, 200) : reply.error().message);
    co_await pause_for(*impl, backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
  impl->log("gave up storing the result of " + job.key + "; it runs again after the visibility timeout");
}

// While the job runs: keeps its pending entry fresh (XCLAIM to ourselves) so it is not taken
// from us, and watches for its cancellation and its deadline. Returns why the job must stop.
asio::awaitable<ToolErrc> watch(std::shared_ptr<Impl> impl, std::string id, std::string key, Clock::time_point deadline) {
  const StreamKeys& keys = impl->options.keys;
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline) co_return ToolErrc::timed_out;
    asio::steady_timer t(impl->loop, std::min(deadline, now + impl->heartbeat()));
    (void)co_await t.async_wait(k_token);
    if (Clock::now() >= deadline) co_return ToolErrc::timed_out;
    std::vector<Command> commands;
    commands.push_back(Command{"XCLAIM", keys.steps(), std::string(StreamKeys::group()), impl->options.name, "0", id, "JUSTID"});
    commands.push_back(Command{"EXISTS", keys.cancel(key)});
    auto replies = co_await impl->client.pipeline(std::move(commands));
    if (replies && replies->size() == 2 && (*replies)[1].integer == 1) co_return ToolErrc::cancelled;
  }
}

// How many times the entry was delivered (XPENDING), 0 when Redis does not say.
asio::awaitable<std::int64_t> deliveries(std::shared_ptr<Impl> impl, std::string id) {
  Command pending{"XPENDING", impl->options.keys.steps(), std::string(StreamKeys::group()), id, id, "1"};
  auto reply = co_await impl->client.command(std::move(pending));
  if (!reply || reply->type != Reply::Type::array || reply->elements.empty()) co_return 0;
  const Reply& first = reply->elements.front();
  if (first.type != Reply::Type::array || first.elements.size() < 4) co_return 0;
  co_return first.elements[3].integer;
}

asio::awaitable<void> run_job(std::shared_ptr<Impl> impl, StreamEntry entry, bool reclaimed) {
  using namespace asio::experimental::awaitable_operators;
  auto parsed = Job::parse(entry.fields);
  if (!parsed) {
    ++impl->stats.rejected;
    impl->log("rejected job " + entry.id + ": " + parsed.error());
    co_await drop(impl, entry.id);
    co_return;
  }
  Job job = std::move(*parsed);
  const StreamKeys& keys = impl->options.keys;
  std::vector<Command> checks;
  checks.push_back(Command{"EXISTS", keys.result(job.key)});
  checks.push_back(Command{"EXISTS", keys.cancel(job.key)});
  auto checked = co_await impl->client.pipeline(std::move(checks));
  if (checked && checked->size() == 2 && ((*checked)[0].integer == 1 || (*checked)[1].integer == 1)) {
    impl->log(std::string("skipped job ") + job.key + ((*checked)[0].integer == 1 ? ": it has its result" : ": cancelled"));
    co_await drop(impl, entry.id);
    co_return;
  }
  if (reclaimed) {
    // Why: a job whose tool kills its worker would otherwise take down every worker in turn.
    const std::int64_t taken = co_await deliveries(impl, entry.id);
    if (taken > impl->options.max_deliveries) {
      ++impl->stats.rejected;
      impl->log("job " + job.key + " was taken " + std::to_string(taken) + " times; failing it");
      co_await finish(impl, entry.id, job,
                      tool_error(ToolErrc::failed, "the job was taken " + std::to_string(taken) +
                                                       " times and each worker running it stopped (crashed or was killed); "
                                                       "not run again (execution.max_deliveries)"));
      co_return;
    }
  }
  std::shared_ptr<Tool> tool = impl->registry.get(job.action);
  if (!tool || tool->uses_llm()) {
    ++impl->stats.rejected;
    co_await finish(impl, entry.id, job, tool_error(ToolErrc::failed, "worker " + impl->options.name + " does not offer the tool " + job.action));
    co_return;
  }
  auto ws = workspace_for(*impl, job.workspace);
  if (!ws) {
    ++impl->stats.rejected;
    impl->log("refused job " + job.key + ": " + ws.error().message);
    co_await finish(impl, entry.id, job, ToolResult(ws.error()));
    co_return;
  }
  if (auto bad = tools::check_parameters(job.params, tool->parameters_schema()); !bad) {
    ++impl->stats.rejected;
    co_await finish(impl, entry.id, job, ToolResult(bad.error()));
    co_return;
  }
  ToolContext ctx;
  ctx.step_id = job.step;
  ctx.item = job.item;
  ctx.attempt = job.attempt;
  ctx.workspace = *ws;
  auto flag = std::make_shared<std::atomic<bool>>(false);
  ctx.cancelled = flag;
  ctx.worker = impl->pool;
  ++impl->stats.started;
  impl->log("running " + job.action + " for " + job.key);
  // The coordinator's own step timer decides (its timing out and a worker's result must not race):
  // the worker's deadline is a backstop for a coordinator that is gone, one grace period later.
  const auto deadline = Clock::now() + std::chrono::milliseconds(job.timeout_ms) + k_timeout_grace;
  std::optional<ToolResult> result;
  try {
    auto call = tool->invoke(std::move(job.params), ctx);
    auto watching = watch(impl, entry.id, job.key, deadline);
    auto winner = co_await (std::move(call) || std::move(watching));
    if (winner.index() == 0) {
      result = std::move(std::get<0>(winner));
    } else {
      flag->store(true);
      if (std::get<1>(winner) == ToolErrc::cancelled) {
        impl->log("cancelled " + job.key + " (the coordinator gave it up)");
        co_await drop(impl, entry.id);
        co_return;
      }
      result = tool_error(ToolErrc::timed_out, "timed out after " + std::to_string(job.timeout_ms) + " ms (and " +
                                                   std::to_string(k_timeout_grace.count()) + " ms of grace) on worker " +
                                                   impl->options.name);
    }
  } catch (const std::exception& e) {  // a tool that throws fails its call, not the worker
    flag->store(true);
    result = tool_error(ToolErrc::failed, e.what());
  }
  co_await finish(impl, entry.id, std::move(job), std::move(*result));
}

struct JobDone {
  std::shared_ptr<Impl> impl;
  void operator()(std::exception_ptr e) const {
    --impl->running;
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        impl->log(std::string("internal error in a job: ") + ex.what());
      }
    }
    impl->wake.cancel();
  }
};

void start(const std::shared_ptr<Impl>& impl, StreamEntry entry, bool reclaimed = false) {
  ++impl->running;
  asio::co_spawn(impl->loop, run_job(impl, std::move(entry), reclaimed), JobDone{impl});
}

WorkerInfo make_info(const Impl& impl) {
  WorkerInfo info{impl.options.name, impl.options.concurrency, {}};
  for (const Tool* t : impl.registry.tools()) {
    if (t->uses_llm()) continue;  // the coordinator keeps the model calls
    info.tools.push_back(ToolSpec{std::string(t->name()), std::string(t->description()), t->parameters_schema(), false});
  }
  return info;
}

asio::awaitable<bool> announce(std::shared_ptr<Impl> impl) {
  const StreamKeys& keys = impl->options.keys;
  std::vector<Command> commands;
  commands.push_back(Command{"SET", keys.worker(impl->options.name), make_info(*impl).to_json(), "PX",
                             std::to_string(impl->options.visibility_timeout.count())});
  commands.push_back(Command{"SADD", keys.workers(), impl->options.name});
  auto replies = co_await impl->client.pipeline(std::move(commands));
  if (!replies) note_failure(*impl, replies.error().message);
  co_return replies.has_value();
}

asio::awaitable<bool> create_group(std::shared_ptr<Impl> impl) {
  Command group{"XGROUP", "CREATE", impl->options.keys.steps(), std::string(StreamKeys::group()), "0", "MKSTREAM"};
  auto created = co_await impl->client.command(std::move(group));
  if (!created) {
    note_failure(*impl, created.error().message);
    co_return false;
  }
  co_return !created->is_error() || created->str.find("BUSYGROUP") != std::string::npos;
}

// Waits until a slot frees, stop() is called, or `until`.
asio::awaitable<void> wait_wake(std::shared_ptr<Impl> impl, Clock::time_point until) {
  impl->wake.expires_at(until);
  (void)co_await impl->wake.async_wait(k_token);
}

asio::awaitable<void> run_worker(std::shared_ptr<Impl> impl) {
  const StreamKeys& keys = impl->options.keys;
  const std::string group(StreamKeys::group());
  std::chrono::milliseconds backoff{100};
  while (!impl->stopping && !co_await create_group(impl)) {
    co_await pause_for(*impl, backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
  auto next_announce = Clock::now();
  auto next_reclaim = Clock::now();
  bool announced = false;
  while (!impl->stopping) {
    auto now = Clock::now();
    if (now >= next_announce) {
      announced = co_await announce(impl);
      next_announce = now + (announced ? impl->heartbeat() : backoff);
      if (announced) impl->log("worker " + impl->options.name + " offers " + std::to_string(make_info(*impl).tools.size()) +
                               " tools, " + std::to_string(impl->options.concurrency) + " at once");
    }
    const int free = impl->options.concurrency - impl->running;
    if (free <= 0 || !announced) {
      co_await wait_wake(impl, std::min(next_announce, now + impl->heartbeat()));
      continue;
    }
    if (now >= next_reclaim) {
      next_reclaim = now + impl->block();
      Command claim{"XAUTOCLAIM", keys.steps(), group, impl->options.name,
                    std::to_string(impl->options.visibility_timeout.count()), "0-0", "COUNT", std::to_string(free)};
      auto claimed = co_await impl->client.command(std::move(claim));
      if (claimed && claimed->type == Reply::Type::array && claimed->elements.size() >= 2) {
        auto entries = entry_list(claimed->elements[1]);
        if (entries) {
          for (auto& e : *entries) {
            ++impl->stats.reclaimed;
            impl->log("reclaimed job " + e.id + " (its worker stopped refreshing it)");
            start(impl, std::move(e), true);
          }
          if (!entries->empty()) continue;
        }
      }
    }
    Command read{"XREADGROUP", "GROUP", group, impl->options.name, "COUNT", std::to_string(free), "BLOCK",
                 std::to_string(impl->block().count()), "STREAMS", keys.steps(), ">"};
    auto reply = co_await impl->reader.command(std::move(read), impl->block() + impl->options.redis.timeout + std::chrono::milliseconds(1000));
    if (!reply || reply->is_error()) {
      note_failure(*impl, reply ? "XREADGROUP: " + reply->str.substr(0, 200) : reply.error().message);
      if (reply && reply->str.starts_with("NOGROUP")) (void)co_await create_group(impl);  // Redis lost its data
      co_await pause_for(*impl, backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
      continue;
    }
    backoff = std::chrono::milliseconds(100);
    impl->last_failure.clear();
    auto entries = stream_entries(*reply);
    if (!entries) {
      impl->log("ignored a malformed XREADGROUP reply: " + entries.error());
      continue;
    }
    for (auto& e : *entries) start(impl, std::move(e));
  }
  while (impl->running > 0) co_await wait_wake(impl, Clock::now() + impl->heartbeat());
  std::vector<Command> withdraw;
  withdraw.push_back(Command{"DEL", keys.worker(impl->options.name)});
  withdraw.push_back(Command{"SREM", keys.workers(), impl->options.name});
  (void)co_await impl->client.pipeline(std::move(withdraw));
  impl->log("worker " + impl->options.name + " stopped");
}

}  // namespace

Worker::Worker(asio::any_io_executor loop, asio::any_io_executor pool, const tools::Registry& registry,
               WorkerOptions options)
    : impl_(std::make_shared<Impl>(std::move(loop), std::move(pool), registry, std::move(options))) {}

Worker::~Worker() = default;

asio::awaitable<void> Worker::run() { return run_worker(impl_); }

void Worker::stop() {
  impl_->stopping = true;
  impl_->wake.cancel();
}

Worker::Stats Worker::stats() const noexcept { return impl_->stats; }

WorkerInfo Worker::info() const { return make_info(*impl_); }

}  // namespace dagent::distributed
