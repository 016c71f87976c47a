#pragma once
// The stdio transport (MCP "Transports"): the server is a child process; messages are JSON-RPC
// objects, one per line, on its stdin and stdout. Its stderr is appended to a log file and its
// last lines kept for the message that says why it went away.

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "mcp/transport.hpp"

namespace dagent::mcp {

/// How to start a stdio server (config `mcp.servers.NAME.command`, `env`, `cwd`).
struct StdioCommand {
  std::string server;                                     ///< the server's name in config
  std::vector<std::string> argv;                          ///< argv[0] is looked up in PATH
  std::vector<std::pair<std::string, std::string>> env;   ///< set on top of dagent's environment, expanded
  std::vector<std::string> hidden_env;                    ///< names left out of the inherited environment
  std::filesystem::path cwd;                              ///< empty: dagent's own
  std::filesystem::path log_file;                         ///< the server's stderr is appended here; empty: dropped
};

/// Bytes a single message line may have; a longer line closes the channel (a server gone wrong).
inline constexpr std::size_t k_max_line_bytes = 16u << 20;
/// Lines of stderr kept for the "closed" reason.
inline constexpr std::size_t k_stderr_lines = 5;

/// The child runs in a process group of its own with PR_SET_PDEATHSIG(SIGKILL), so it dies with
/// dagent even after `kill -9`; close() is the specification's sequence (close stdin, wait,
/// SIGTERM the group, wait, SIGKILL the group). Destroying an open transport kills the group.
std::unique_ptr<Transport> make_stdio_transport(boost::asio::any_io_executor executor, StdioCommand command);

}  // namespace dagent::mcp
