#pragma once
// The test server's network side: accept loop, HTTP/1.1 sessions (plain or TLS), faults, signals.

#include "server_state.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace dagent::test_server {

struct TlsFiles {
  std::string certificate_chain;  // PEM
  std::string private_key;        // PEM
};

struct ServerOptions {
  unsigned short port = 0;  // 0: the system picks a free port
  std::optional<TlsFiles> tls;
  ServerConfig config;
  int threads = 1;
  /// Every new connection waits this long after accept before the server reads from it or starts
  /// its TLS handshake: a remote provider's TCP + TLS setup. Kept-alive requests pay nothing.
  std::chrono::milliseconds connect_delay{0};
};

/// Listens on 127.0.0.1, prints `listening on 127.0.0.1:PORT` (flushed) once ready and serves
/// until SIGTERM or SIGINT. Returns the process exit code.
int run_server(ServerOptions options);

}  // namespace dagent::test_server
