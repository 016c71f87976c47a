#include "mcp/servers.hpp"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace dagent::mcp {

namespace asio = boost::asio;

Servers::Servers(asio::any_io_executor executor, const config::Config& cfg) {
  const auto logs = (cfg.base_dir / ".dagent" / "logs").lexically_normal();
  for (const auto& [name, server] : cfg.mcp.servers)
    servers_.emplace(name, std::make_unique<Server>(executor, name, server, cfg.base_dir, logs,
                                                    std::vector<std::string>{cfg.llm.api_key_env}));
}

Server* Servers::find(std::string_view name) const {
  const auto it = servers_.find(name);
  return it == servers_.end() ? nullptr : it->second.get();
}

std::vector<std::string> Servers::names() const {
  std::vector<std::string> out;
  for (const auto& [name, server] : servers_) out.push_back(name);
  return out;
}

std::vector<std::string> Servers::named_by(const std::vector<std::string>& actions) const {
  std::vector<std::string> out;
  for (const auto& action : actions) {
    const auto dot = action.find('.');
    if (dot == std::string::npos) continue;
    auto server = action.substr(0, dot);
    if (find(server) && std::find(out.begin(), out.end(), server) == out.end()) out.push_back(std::move(server));
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

struct Starts {
  explicit Starts(asio::any_io_executor ex) : done(ex, asio::steady_timer::time_point::max()) {}
  std::vector<std::string> problems;
  int running = 0;
  asio::steady_timer done;  // cancelled when the last start ends
};

asio::awaitable<void> start_one(Server* server, std::shared_ptr<Starts> starts) {
  if (auto started = co_await server->start(); !started) starts->problems.push_back(started.error());
}

struct StartDone {
  std::shared_ptr<Starts> starts;
  void operator()(std::exception_ptr e) const {
    if (e) starts->problems.push_back(std::string("MCP server start: internal error"));
    if (--starts->running == 0) starts->done.cancel();
  }
};

}  // namespace

asio::awaitable<std::vector<std::string>> Servers::start(std::vector<std::string> names) {
  // All at once: a slow server (npx fetching a package, one that never answers) does not delay
  // the others' start.
  auto executor = co_await asio::this_coro::executor;
  auto starts = std::make_shared<Starts>(executor);
  for (const auto& name : names) {
    auto* server = find(name);
    if (!server) {
      starts->problems.push_back("mcp.servers: no server '" + name + "'");
      continue;
    }
    ++starts->running;
    asio::co_spawn(executor, start_one(server, starts), StartDone{starts});
  }
  while (starts->running > 0) co_await starts->done.async_wait(asio::as_tuple(asio::use_awaitable));
  std::sort(starts->problems.begin(), starts->problems.end());  // the same order whichever failed first
  co_return std::move(starts->problems);
}

asio::awaitable<void> Servers::stop_all() {
  for (auto& [name, server] : servers_) co_await server->stop();
}

}  // namespace dagent::mcp
