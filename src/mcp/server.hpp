#pragma once
// One configured MCP server: started when first needed (initialize, protocol version,
// notifications/initialized, tools/list with pagination), restarted with backoff after it
// crashes, and stopped as the specification says.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include "config/config.hpp"
#include "dagent/tool.hpp"
#include "mcp/session.hpp"

namespace dagent::mcp {

/// The protocol versions dagent speaks, newest first; it asks for the first.
inline constexpr std::string_view k_protocol_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};

/// A tool as the server lists it.
struct RemoteTool {
  std::string name;          ///< the server's name for it (without `SERVER.`)
  std::string description;
  boost::json::object input_schema;
};

/// `text` with each `${NAME}` replaced by the environment variable and `$$` by `$`; the problem
/// names the variable when it is not set.
boost::system::result<std::string, std::string> expand_env(std::string_view text);

/// What a `tools/call` result becomes: {"text", "content", "structured"}, or the server's text
/// as a failed call when `isError` is true.
ToolResult tool_result_of(std::string_view server, std::string_view tool, const boost::json::value& result);

class Server {
 public:
  /// `log_dir`: where the stdio server's stderr goes (`mcp-NAME.log`); `hidden_env`: variables a
  /// stdio server does not inherit from dagent (the API key's), unless its `env` sets them.
  Server(boost::asio::any_io_executor executor, std::string name, config::McpServerConfig cfg,
         std::filesystem::path base_dir, std::filesystem::path log_dir, std::vector<std::string> hidden_env = {});
  ~Server();

  const std::string& name() const noexcept { return name_; }
  std::filesystem::path log_file() const { return log_dir_ / ("mcp-" + name_ + ".log"); }

  /// Running and initialized, starting it if needed (after a crash, once its backoff has
  /// passed). The problem names the server.
  boost::asio::awaitable<boost::system::result<void, std::string>> start();

  /// The tools listed by the first successful start.
  const std::vector<RemoteTool>& tools() const noexcept { return tools_; }

  /// `tools/call`, starting the server if needed.
  boost::asio::awaitable<ToolResult> call(std::string tool, boost::json::object arguments,
                                          std::function<void(const Progress&)> on_progress);

  /// The shutdown sequence; a later start() starts it again.
  boost::asio::awaitable<void> stop();

  /// Starts so far (restarts included), for tests and `mcp list`.
  int starts() const noexcept { return starts_; }

 private:
  boost::asio::awaitable<boost::system::result<void, std::string>> start_once();
  std::shared_ptr<Transport> make_transport(std::string& problem) const;
  void failed(std::string reason);

  boost::asio::any_io_executor executor_;
  std::string name_;
  config::McpServerConfig cfg_;
  std::filesystem::path base_dir_;
  std::filesystem::path log_dir_;
  std::vector<std::string> hidden_env_;
  std::shared_ptr<Session> session_;             ///< null: not started
  std::vector<std::shared_ptr<Session>> dead_;   ///< crashed sessions, closed (reaped) at the next start or stop
  std::vector<RemoteTool> tools_;
  bool listed_ = false;
  bool starting_ = false;
  boost::asio::steady_timer started_;            ///< cancelled when a start ends, for those who wait on it
  int failures_ = 0;                             ///< consecutive failed starts and crashes
  std::chrono::steady_clock::time_point retry_at_{};
  std::string last_failure_;
  int starts_ = 0;
};

}  // namespace dagent::mcp
