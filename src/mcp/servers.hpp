#pragma once
// The MCP servers of a config (`mcp.servers`), by name: started on demand, stopped together.

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "config/config.hpp"
#include "mcp/server.hpp"

namespace dagent::mcp {

class Servers {
 public:
  /// Logs go to `<config folder>/.dagent/logs/mcp-NAME.log`. Stdio servers do not inherit the
  /// API key's variable (llm.api_key_env).
  Servers(boost::asio::any_io_executor executor, const config::Config& cfg);

  /// The server called `name`, or nullptr.
  Server* find(std::string_view name) const;
  bool empty() const noexcept { return servers_.empty(); }
  std::vector<std::string> names() const;

  /// The configured servers a plan's actions name (`SERVER.TOOL`), sorted, each once.
  std::vector<std::string> named_by(const std::vector<std::string>& actions) const;

  /// Starts each of `names`, concurrently (each request has its server's time limit); every
  /// problem, sorted.
  boost::asio::awaitable<std::vector<std::string>> start(std::vector<std::string> names);

  /// Stops every running server (the specification's shutdown sequence).
  boost::asio::awaitable<void> stop_all();

 private:
  std::map<std::string, std::unique_ptr<Server>, std::less<>> servers_;
};

}  // namespace dagent::mcp
