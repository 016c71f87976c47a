#pragma once
// redis-server (Debian's package) on a free loopback port, started by the test that needs it,
// with no persistence; stopped (or killed, and started again on the same port) by the test.

#include <string>
#include <sys/types.h>

#include "support/process.hpp"

namespace dagent::test {

struct RedisServerOptions {
  std::string password;  ///< --requirepass when not empty
  bool tls = false;      ///< serve TLS only (--tls-port) with the test CA's localhost certificate
};

class RedisServer {
 public:
  /// Starts redis-server and returns once it accepts connections; throws with its log if not.
  explicit RedisServer(RedisServerOptions options = {});
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  unsigned short port() const { return port_; }
  /// `redis://127.0.0.1:PORT` or `rediss://localhost:PORT`.
  std::string url() const;
  /// SIGKILL and reap: the port refuses connections afterwards.
  void kill();
  /// SIGSTOP / SIGCONT: the server accepts nothing and answers nothing while stopped.
  void pause();
  void resume();
  /// Starts the server again on the same port (after kill()).
  void start();
  bool running() const { return pid_ > 0; }

 private:
  RedisServerOptions options_;
  TempDir dir_;
  unsigned short port_ = 0;
  pid_t pid_ = -1;
  bool paused_ = false;
};

}  // namespace dagent::test
