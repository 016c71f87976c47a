#pragma once
// Runs `dagent serve` as a child process on a loopback port the kernel picks, and talks to it.

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "support/process.hpp"
#include "support/test_server_process.hpp"

namespace dagent::test {

/// `dagent serve --listen 127.0.0.1:0 ARGS...` in `cwd`: the constructor returns once it printed
/// the address it listens on (throws with its stderr if it did not). SIGKILLed on destruction
/// if still running.
class ServeProcess {
 public:
  ServeProcess(std::vector<std::string> args, const std::filesystem::path& cwd, const std::vector<std::string>& env = {});
  ~ServeProcess();
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  unsigned short port() const { return port_; }
  /// Added to every request as `Authorization: Bearer TOKEN` when not empty.
  std::string token;

  HttpReply request(HttpRequest request, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  /// Each on its own connection, all at once (see http_requests).
  std::vector<HttpReply> requests(std::vector<HttpRequest> requests,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(30)) const;

  void kill(int signal) const;
  /// Waits for the exit; its stderr so far.
  ProcessResult wait();
  std::string err() const;

 private:
  TempDir io_;
  int pid_ = -1;
  unsigned short port_ = 0;
};

/// GET `target`.
HttpRequest get(std::string target);

}  // namespace dagent::test
