#include "distributed/coordinator.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace dagent::distributed {

namespace asio = boost::asio;
using redis::Command;
using redis::Reply;

namespace {

constexpr auto k_token = asio::as_tuple(asio::use_awaitable);

// Sends a job unless its key already has a result (returned: {1, result}) or a queued job (an
// earlier life of this run sent it and a worker holds it: {2}). A key that was cancelled is sent
// again: the worker that saw the cancellation dropped the job. Atomic, so two coordinators (a
// resumed one and a stale one) never both send it.
constexpr std::string_view k_enqueue = R"lua(
local done = redis.call('GET', KEYS[1])
if done then return {1, done} end
local was_cancelled = redis.call('DEL', KEYS[3])
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) or was_cancelled == 1 then
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
  redis.call('XADD', KEYS[4], '*', unpack(ARGV, 2))
  return {0}
end
return {2}
)lua";

void warn(const std::string& message) { std::fprintf(stderr, "dagent: warning: %s\n", message.c_str()); }

bool cancelled_now(const asio::cancellation_state& state) { return state.cancelled() != asio::cancellation_type::none; }

}  // namespace

struct Coordinator::Impl {
  Impl(asio::any_io_executor ex, CoordinatorOptions opt)
      : executor(ex), options(std::move(opt)), client(ex, options.redis), reader(ex, reader_options(options.redis)) {}

  static redis::RedisOptions reader_options(redis::RedisOptions o) {
    o.pool_size = 1;  // the blocking read has a connection of its own
    return o;
  }

  // A call awaiting its result: serve() stores it and wakes the call.
  struct Waiter {
    asio::steady_timer* timer = nullptr;
    std::optional<ToolResult> result;
  };

  asio::any_io_executor executor;
  CoordinatorOptions options;
  redis::RedisClient client;
  redis::RedisClient reader;
  std::map<std::string, Waiter*, std::less<>> waiting;
  std::vector<std::string> owed_cancels;  // keys given up, to mark cancelled in Redis
  std::string last_id = "0-0";            // why from the start: results stored before the first read count
  bool warned = false;                    // one warning while Redis fails, until it answers again
};

namespace {

using Impl = Coordinator::Impl;

// A call's place among the waiters: left on result, failure or cancellation; a call left without
// its result owes the job's cancellation.
class Registered {
 public:
  Registered(Impl& impl, std::string key, Impl::Waiter& waiter) : impl_(impl), key_(std::move(key)) {
    impl_.waiting[key_] = &waiter;
  }
  ~Registered() {
    impl_.waiting.erase(key_);
    if (!settled_) impl_.owed_cancels.push_back(key_);
  }
  Registered(const Registered&) = delete;
  Registered& operator=(const Registered&) = delete;
  void settle() { settled_ = true; }

 private:
  Impl& impl_;
  std::string key_;
  bool settled_ = false;
};

asio::awaitable<ToolResult> run_call(std::shared_ptr<Impl> impl, Job job) {
  if (impl->waiting.contains(job.key)) co_return tool_error(ToolErrc::failed, "the call " + job.key + " is already underway");
  asio::steady_timer timer(impl->executor, asio::steady_timer::time_point::max());
  Impl::Waiter waiter{&timer, std::nullopt};
  Registered registered(*impl, job.key, waiter);
  const StreamKeys& keys = impl->options.keys;
  Command enqueue{"EVAL", std::string(k_enqueue), "4", keys.result(job.key), keys.queued(job.key), keys.cancel(job.key),
                  keys.steps(), std::to_string(k_result_ttl.count())};
  for (auto& f : job.fields()) enqueue.push_back(std::move(f));
  auto reply = co_await impl->client.command(std::move(enqueue));
  if (!reply) {
    if (reply.error().code != redis::RedisErrc::cancelled) registered.settle();  // nothing was sent
    co_return tool_error(ToolErrc::unavailable, "sending the step to the workers: " + reply.error().message);
  }
  if (reply->is_error()) {
    registered.settle();
    co_return tool_error(ToolErrc::unavailable, "Redis refused the job: " + reply->str.substr(0, 200));
  }
  if (reply->type == Reply::Type::array && !reply->elements.empty() && reply->elements[0].integer == 1 &&
      reply->elements.size() == 2) {
    registered.settle();
    co_return decode_result(reply->elements[1].str);  // finished while an earlier life of the run was away
  }
  if (!waiter.result) (void)co_await timer.async_wait(k_token);
  if (!waiter.result) co_return tool_error(ToolErrc::cancelled, "cancelled: the remote call was given up");
  registered.settle();
  co_return std::move(*waiter.result);
}

// Hands each result to the call awaiting its key; a key nobody awaits (accepted before, given
// up, another life of the run) is ignored.
void deliver(Impl& impl, const std::vector<StreamEntry>& entries) {
  for (const auto& entry : entries) {
    impl.last_id = entry.id;
    const std::string* key = nullptr;
    const std::string* result = nullptr;
    for (std::size_t i = 0; i + 1 < entry.fields.size(); i += 2) {
      if (entry.fields[i].str == "key") key = &entry.fields[i + 1].str;
      if (entry.fields[i].str == "result") result = &entry.fields[i + 1].str;
    }
    if (!key || !result) {
      warn("ignored a malformed entry " + entry.id + " of " + impl.options.keys.results(impl.options.run));
      continue;
    }
    const auto it = impl.waiting.find(*key);
    if (it == impl.waiting.end() || it->second->result) continue;
    it->second->result = decode_result(*result);
    it->second->timer->cancel();
  }
}

asio::awaitable<bool> send_cancels(std::shared_ptr<Impl> impl) {
  if (impl->owed_cancels.empty()) co_return true;
  std::vector<Command> commands;
  for (const auto& key : impl->owed_cancels)
    commands.push_back(Command{"SET", impl->options.keys.cancel(key), "1", "PX", std::to_string(k_result_ttl.count())});
  const std::size_t sent = impl->owed_cancels.size();
  auto replies = co_await impl->client.pipeline(std::move(commands));
  if (!replies) co_return false;
  impl->owed_cancels.erase(impl->owed_cancels.begin(), impl->owed_cancels.begin() + static_cast<std::ptrdiff_t>(sent));
  co_return true;
}

asio::awaitable<void> run_serve(std::shared_ptr<Impl> impl) {
  std::chrono::milliseconds backoff{0};
  const std::string stream = impl->options.keys.results(impl->options.run);
  const auto deadline = impl->options.block + impl->options.redis.timeout + std::chrono::milliseconds(1000);
  for (;;) {
    (void)co_await send_cancels(impl);
    Command read{"XREAD", "COUNT", "512", "BLOCK", std::to_string(impl->options.block.count()), "STREAMS", stream,
                 impl->last_id};
    auto reply = co_await impl->reader.command(std::move(read), deadline);
    if (cancelled_now(co_await asio::this_coro::cancellation_state)) co_return;
    std::optional<std::string> failure;
    if (!reply) failure = reply.error().message;
    else if (reply->is_error()) failure = "Redis refused XREAD: " + reply->str.substr(0, 200);
    if (!failure) {
      auto entries = stream_entries(*reply);
      if (entries) {
        impl->warned = false;
        backoff = std::chrono::milliseconds(0);
        deliver(*impl, *entries);
        continue;
      }
      failure = "reading " + stream + ": " + entries.error();
    }
    if (!impl->warned) warn("distributed steps: " + *failure + " (retrying)");
    impl->warned = true;
    backoff = std::clamp(backoff * 2, std::chrono::milliseconds(100), std::chrono::milliseconds(5000));
    asio::steady_timer pause(impl->executor, backoff);
    (void)co_await pause.async_wait(k_token);
    if (cancelled_now(co_await asio::this_coro::cancellation_state)) co_return;
  }
}

asio::awaitable<boost::system::result<std::vector<WorkerInfo>, std::string>> find_workers(std::shared_ptr<Impl> impl) {
  const StreamKeys& keys = impl->options.keys;
  Command group{"XGROUP", "CREATE", keys.steps(), std::string(StreamKeys::group()), "0", "MKSTREAM"};
  auto created = co_await impl->client.command(std::move(group));
  if (!created) co_return created.error().message;
  if (created->is_error() && created->str.find("BUSYGROUP") == std::string::npos)
    co_return "Redis refused XGROUP CREATE: " + created->str.substr(0, 200);
  Command members{"SMEMBERS", keys.workers()};
  auto names = co_await impl->client.command(std::move(members));
  if (!names) co_return names.error().message;
  std::vector<WorkerInfo> out;
  if (names->type != Reply::Type::array || names->elements.empty()) co_return out;
  std::vector<Command> gets;
  for (const auto& n : names->elements) gets.push_back(Command{"GET", keys.worker(n.str)});
  auto infos = co_await impl->client.pipeline(std::move(gets));
  if (!infos) co_return infos.error().message;
  std::vector<Command> stale;
  for (std::size_t i = 0; i < infos->size(); ++i) {
    const Reply& r = (*infos)[i];
    if (r.type == Reply::Type::nil) {
      stale.push_back(Command{"SREM", keys.workers(), names->elements[i].str});
      continue;
    }
    auto info = WorkerInfo::parse(r.str);
    if (!info) {
      warn("ignored worker announcement " + keys.worker(names->elements[i].str) + ": " + info.error());
      continue;
    }
    out.push_back(std::move(*info));
  }
  if (!stale.empty()) (void)co_await impl->client.pipeline(std::move(stale));
  std::sort(out.begin(), out.end(), [](const WorkerInfo& a, const WorkerInfo& b) { return a.name < b.name; });
  co_return out;
}

}  // namespace

Coordinator::Coordinator(asio::any_io_executor executor, CoordinatorOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

Coordinator::~Coordinator() = default;

asio::awaitable<boost::system::result<std::vector<WorkerInfo>, std::string>> Coordinator::live_workers() {
  return find_workers(impl_);
}

asio::awaitable<ToolResult> Coordinator::call(Job job) { return run_call(impl_, std::move(job)); }

asio::awaitable<void> Coordinator::serve() { return run_serve(impl_); }

asio::awaitable<void> Coordinator::drain() {
  (void)co_await send_cancels(impl_);
}

const std::string& Coordinator::run() const noexcept { return impl_->options.run; }

}  // namespace dagent::distributed
