#pragma once
// The HTTP/1.1 side of `dagent serve` (Beast, kept out of this header): routes, the bearer token,
// size and time limits, Server-Sent Events, and a graceful stop.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <variant>

#include <boost/asio/any_io_executor.hpp>

#include "serve/bearer_auth.hpp"
#include "serve/listen_address.hpp"

namespace dagent::serve {

class Service;

struct ServerLimits {
  std::int64_t max_body_bytes = 1 << 20;
  int max_connections = 256;
  std::int64_t idle_timeout_ms = 30000;
  int max_event_clients = 64;
};

/// Accepts connections on the runtime's loop and answers them from a Service. Use it on that
/// loop; it and the Service must outlive it.
class HttpServer {
 public:
  /// Binds and listens on `address`; a message naming the address when it cannot.
  static std::variant<std::unique_ptr<HttpServer>, std::string> listen(boost::asio::any_io_executor executor,
                                                                       const ListenAddress& address,
                                                                       ServerLimits limits, Service& service,
                                                                       BearerAuth auth);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// The port bound (the kernel's choice when the address asked for 0).
  unsigned short port() const;
  /// Starts accepting.
  void start();
  /// Stops accepting, closes idle connections, lets replies and event streams (whose runs have
  /// ended) finish, closes whatever is left after `grace_ms`, then calls `stopped`.
  void stop(std::int64_t grace_ms, std::function<void()> stopped);

  struct Impl;

 private:
  explicit HttpServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace dagent::serve
