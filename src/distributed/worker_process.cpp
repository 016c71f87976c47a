#include "distributed/worker_process.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/thread_pool.hpp>

#include "distributed/worker.hpp"
#include "mcp/mcp_tool.hpp"
#include "mcp/servers.hpp"
#include "redis/redis_client.hpp"
#include "tools/protection.hpp"
#include "tools/registry.hpp"

namespace dagent::distributed {

namespace asio = boost::asio;

namespace {

struct OnStop {
  Worker* worker;
  void operator()(const boost::system::error_code& ec, int) const {
    if (!ec) worker->stop();
  }
};

struct Finished {
  bool* done;
  std::exception_ptr* error;
  asio::signal_set* signals;
  void operator()(std::exception_ptr e) const {
    *done = true;
    *error = e;
    signals->cancel();
  }
};

// The MCP servers of mcp.servers started and their tools added to `registry` (as SERVER.TOOL),
// then the worker until it stops, then the servers stopped.
struct Serve {
  Worker* worker;
  mcp::Servers* servers;
  tools::Registry* registry;
  std::vector<std::string>* problems;
};

asio::awaitable<void> serve(Serve job) {
  if (!job.servers->empty()) {
    const auto names = job.servers->names();
    *job.problems = co_await job.servers->start(names);
    for (const auto& name : names) {
      if (!job.problems->empty()) break;
      auto* server = job.servers->find(name);
      for (const auto& tool : server->tools())
        if (auto added = job.registry->add(std::make_shared<mcp::McpTool>(server, name, tool)); !added)
          job.problems->push_back("MCP server '" + name + "': " + added.error().message);
    }
  }
  if (job.problems->empty()) co_await job.worker->run();
  co_await job.servers->stop_all();
}

std::string default_name() {
  char host[256] = {0};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::string name = host[0] ? host : "worker";
  std::replace_if(name.begin(), name.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)) && c != '-'; }, '-');
  return name + "-" + std::to_string(::getpid());
}

}  // namespace

int run_worker_process(const config::Config& cfg, WorkerProcessOptions options, std::vector<std::shared_ptr<Tool>> extra) {
  auto fail = [](const std::string& message) {
    std::fprintf(stderr, "dagent worker: %s\n", message.c_str());
    return 2;
  };
  if (cfg.redis.url.empty()) return fail("redis.url is not set: a worker takes its jobs from Redis");
  auto redis = redis::RedisOptions::from(cfg.redis, cfg.base_dir);
  if (!redis) return fail(redis.error().message);
  WorkerOptions wo;
  wo.redis = std::move(*redis);
  wo.name = options.name.empty() ? default_name() : options.name;
  // The name is the consumer's and part of a key: letters, digits, '.', '_' and '-' only.
  const bool name_ok = wo.name.size() <= 100 && std::all_of(wo.name.begin(), wo.name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
  if (!name_ok) return fail("--name: use up to 100 letters, digits, '.', '_' and '-'");
  wo.concurrency = options.concurrency > 0 ? options.concurrency : cfg.execution.worker_concurrency;
  wo.visibility_timeout = std::chrono::milliseconds(cfg.execution.visibility_timeout_ms);
  wo.max_deliveries = cfg.execution.max_deliveries;
  if (options.workspace_roots.empty()) options.workspace_roots.push_back(std::filesystem::current_path());
  for (const auto& root : options.workspace_roots) {
    std::error_code ec;
    if (!std::filesystem::is_directory(root, ec)) return fail("--workspace-root " + root.string() + " is not a folder");
  }
  wo.workspace_roots = options.workspace_roots;
  wo.protection = tools::protection_for(cfg, {}, {});
  if (!options.quiet) wo.log = [](const std::string& line) { std::fprintf(stderr, "dagent worker: %s\n", line.c_str()); };

  // The file tools; the model and the memory stay with the coordinator.
  std::vector<std::string> enabled;
  for (const auto& name : cfg.tools.enabled)
    if (name != "llm" && name != "memory_add" && name != "memory_search") enabled.push_back(name);
  tools::Registry registry = tools::make_builtin_registry(
      enabled, {.read_max_bytes = static_cast<std::uint64_t>(cfg.tools.read_max_bytes),
                .search_max_line_bytes = static_cast<std::size_t>(cfg.tools.search_max_line_bytes)});
  for (auto& tool : extra) {
    if (auto added = registry.add(std::move(tool)); !added) return fail(added.error().message);
  }

  asio::io_context io{1};
  asio::thread_pool pool(std::max(2u, std::min(16u, std::thread::hardware_concurrency())));
  Worker worker(io.get_executor(), pool.get_executor(), registry, std::move(wo));
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait(OnStop{&worker});
  bool done = false;
  std::exception_ptr error;
  mcp::Servers servers(io.get_executor(), cfg);
  std::vector<std::string> problems;
  asio::co_spawn(io, serve(Serve{&worker, &servers, &registry, &problems}), Finished{&done, &error, &signals});
  while (!done) io.run_one();  // an MCP server's reader may still be queued: the loop ends with the flow
  pool.join();
  for (const auto& p : problems) std::fprintf(stderr, "dagent worker: %s\n", p.c_str());
  if (!problems.empty()) return 2;
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "dagent worker: internal error: %s\n", e.what());
      return 1;
    }
  }
  return 0;
}

}  // namespace dagent::distributed
