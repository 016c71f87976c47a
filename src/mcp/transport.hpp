#pragma once
// One JSON-RPC 2.0 message channel to an MCP server (Model Context Protocol, "Transports"):
// stdio (a child process, newline-delimited JSON) or Streamable HTTP. The session above it
// (ids, pending calls, cancellation, progress) is the same for both.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

namespace dagent::mcp {

/// What a transport reports to its session. Both are called on the transport's executor.
struct TransportHandler {
  /// One message from the server: a response, a request or a notification.
  std::function<void(boost::json::object message)> message;
  /// The channel is gone (the process exited, the stream broke, garbage arrived); `reason` is for
  /// people and names what happened. Every request still pending must fail; the session may open
  /// a new transport later.
  std::function<void(std::string reason)> closed;
};

class Transport {
 public:
  virtual ~Transport() = default;
  /// Set once, before open().
  virtual void set_handler(TransportHandler handler) = 0;
  /// Starts the channel (spawns the process; for HTTP nothing may need to happen). An error names
  /// what failed.
  virtual boost::asio::awaitable<boost::system::result<void, std::string>> open() = 0;
  /// Sends one message. Stdio: writes it as one line. HTTP: POSTs it and delivers every message of
  /// the response (JSON body or SSE events) through the handler before completing; a notification
  /// or response answered 202 delivers nothing. A transport failure is returned (and `closed` may
  /// also be called). Cancelling the awaiting coroutine abandons the exchange.
  virtual boost::asio::awaitable<boost::system::result<void, std::string>> send(boost::json::object message) = 0;
  /// Ends the channel as the specification says (stdio: close stdin, wait, SIGTERM, SIGKILL;
  /// HTTP: DELETE the session). Never throws; safe to call twice.
  virtual boost::asio::awaitable<void> close() = 0;
  /// "stdio: npx -y @modelcontextprotocol/server-everything" or "http: https://host/mcp".
  virtual std::string describe() const = 0;
};

/// A Streamable HTTP endpoint (config `mcp.servers.NAME.url` and `headers`).
struct HttpEndpoint {
  std::string server;                                        ///< the server's name in config
  std::string url;                                           ///< https://host[:port]/path (http:// only to loopback)
  std::vector<std::pair<std::string, std::string>> headers;  ///< values already resolved from the environment
  std::chrono::milliseconds timeout{30000};                  ///< one request (connect included)
  std::string ca_file;                                       ///< extra CA bundle (tests), empty for the system's
};

/// The Streamable HTTP transport over dagent's pooled HTTP client (src/mcp/http_transport.cpp).
std::unique_ptr<Transport> make_http_transport(boost::asio::any_io_executor executor, HttpEndpoint endpoint);

}  // namespace dagent::mcp
