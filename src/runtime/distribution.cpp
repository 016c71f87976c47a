#include "runtime/distribution.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <utility>

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "distributed/coordinator.hpp"
#include "distributed/remote_tool.hpp"
#include "redis/redis_client.hpp"
#include "runtime/run.hpp"
#include "tools/json_schema.hpp"

namespace dagent::runtime {

namespace asio = boost::asio;

namespace {

void warn(const std::string& message) { std::fprintf(stderr, "dagent: warning: %s\n", message.c_str()); }

}  // namespace

Distribution::~Distribution() = default;

asio::awaitable<std::vector<std::string>> distribute(Run* run, std::string run_key) {
  const config::Config& cfg = run->cfg();
  if (cfg.execution.backend != config::ExecutionBackend::redis) co_return std::vector<std::string>{};
  if (!run->live()) co_return std::vector<std::string>{};  // a replay runs offline: its recording answers
  auto redis = redis::RedisOptions::from(cfg.redis, cfg.base_dir);
  if (!redis) co_return std::vector<std::string>{"execution.backend redis: " + redis.error().message};
  distributed::CoordinatorOptions options;
  options.redis = std::move(*redis);
  // A resumed run keeps its first life's keys: results stored while it was away are found by key.
  options.run = run->resume() && !run->resume()->run_id.empty() ? run->resume()->run_id : std::move(run_key);
  auto dist = std::make_unique<Distribution>();
  dist->coordinator = std::make_unique<distributed::Coordinator>(run->shared().loop, std::move(options));
  auto workers = co_await dist->coordinator->live_workers();
  if (!workers)
    co_return std::vector<std::string>{"execution.backend redis: cannot reach Redis to find the workers: " + workers.error()};

  std::map<std::string, distributed::ToolSpec, std::less<>> offered;
  int capacity = 0;
  for (const auto& w : *workers) {
    capacity += w.concurrency;
    for (const auto& t : w.tools)
      if (!t.uses_llm) offered.try_emplace(t.name, t);
  }
  if (offered.empty()) {
    warn(workers->empty() ? "execution.backend redis: no live worker (dagent worker); every step runs here"
                          : "execution.backend redis: the live workers offer no tool; every step runs here");
    co_return std::vector<std::string>{};
  }
  const auto step_timeout = std::chrono::milliseconds(cfg.executor.step_timeout_ms);
  const Shared& shared = run->shared();
  tools::Registry tools;
  std::vector<std::string> sent;
  for (const Tool* tool : run->registry().tools()) {
    const auto it = offered.find(tool->name());
    const bool keep_here = tool->uses_llm() || tool == shared.memory_add_tool || tool == shared.memory_search_tool ||
                           tool->name() == "memory_add" || tool->name() == "memory_search";
    if (it == offered.end() || keep_here) {
      if (it != offered.end()) offered.erase(it);
      (void)tools.add(run->registry().get(tool->name()));
      continue;
    }
    // This process's description and schema: the plan is checked against what the planner saw.
    distributed::ToolSpec spec{std::string(tool->name()), std::string(tool->description()), tool->parameters_schema(), false};
    offered.erase(it);
    (void)tools.add(std::make_shared<distributed::RemoteTool>(std::move(spec), *dist->coordinator, step_timeout));
    sent.push_back(std::string(tool->name()));
  }
  for (auto& [name, spec] : offered) {  // tools only the workers have (a program's own C++ tools)
    if (auto problems = tools::check_schema(spec.parameters); !problems.empty()) {
      warn("a worker's tool " + name + " has an invalid parameters schema (" + problems.front() + "); not used");
      continue;
    }
    auto added = tools.add(std::make_shared<distributed::RemoteTool>(spec, *dist->coordinator, step_timeout));
    if (!added) {
      warn("a worker's tool " + name + " is not used: " + added.error().message);
      continue;
    }
    sent.push_back(name);
  }
  dist->capacity = cfg.execution.max_remote_in_flight > 0 ? cfg.execution.max_remote_in_flight : capacity;
  std::sort(sent.begin(), sent.end());
  std::string names;
  for (const auto& n : sent) names += (names.empty() ? "" : ", ") + n;
  std::fprintf(stderr, "dagent: %zu worker(s), %d calls at once; on workers: %s\n", workers->size(), dist->capacity,
               names.c_str());
  run->replace_tools(std::move(tools));
  run->distribution = std::move(dist);
  co_return std::vector<std::string>{};
}

asio::awaitable<void> with_workers(Run* run, asio::awaitable<void> flow) {
  using namespace asio::experimental::awaitable_operators;
  if (!run->distribution) {
    co_await std::move(flow);
    co_return;
  }
  distributed::Coordinator& coordinator = *run->distribution->coordinator;
  co_await (std::move(flow) || coordinator.serve());  // serve() never ends by itself
  co_await coordinator.drain();
}

}  // namespace dagent::runtime
