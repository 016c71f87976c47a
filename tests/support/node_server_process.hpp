#pragma once
// Runs a Node.js server (a real MCP server in Streamable HTTP mode) as a child process on
// loopback, on a port it picks itself, for end-to-end tests.

#include <filesystem>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace dagent::test {

/// `node --require tests/mcp/loopback.cjs SCRIPT ARGS...` with PORT=0 and `env` added: the
/// preload binds the server to 127.0.0.1 and reports the port it got. The constructor returns
/// once the server listens (throws std::runtime_error with its output if it never does). The
/// server's stdout and stderr go to log(). Killed (SIGKILL) and reaped on destruction, and killed
/// by the kernel if the thread that started it dies first (PR_SET_PDEATHSIG), so a test aborted
/// by a sanitizer leaves no server behind.
class NodeServer {
 public:
  NodeServer(const std::filesystem::path& script, const std::vector<std::string>& args,
             const std::vector<std::string>& env = {});
  ~NodeServer();
  NodeServer(const NodeServer&) = delete;
  NodeServer& operator=(const NodeServer&) = delete;

  unsigned short port() const { return port_; }
  int pid() const { return pid_; }
  /// What the server printed so far (stdout and stderr, interleaved).
  std::string log() const;
  /// Kills the server and waits for it (the port then refuses connections).
  void stop();

 private:
  TempDir dir_;  // the log
  int pid_ = -1;
  unsigned short port_ = 0;
};

/// server-everything's entry point in tests/mcp/node_modules (scripts/install-mcp-servers.sh).
std::filesystem::path server_everything_script();

}  // namespace dagent::test
