#include "mcp/servers.hpp"

#include <algorithm>

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

asio::awaitable<std::vector<std::string>> Servers::start(std::vector<std::string> names) {
  std::vector<std::string> problems;
  for (const auto& name : names) {
    auto* server = find(name);
    if (!server) {
      problems.push_back("mcp.servers: no server '" + name + "'");
      continue;
    }
    if (auto started = co_await server->start(); !started) problems.push_back(started.error());
  }
  co_return problems;
}

asio::awaitable<void> Servers::stop_all() {
  for (auto& [name, server] : servers_) co_await server->stop();
}

}  // namespace dagent::mcp
