#pragma once
// A JSON-RPC 2.0 session with one MCP server over a Transport: request ids, the calls pending,
// per-request time limits, `notifications/cancelled` when a caller gives up, progress routed by
// progressToken, and the server's own requests answered (`ping`) or refused.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include "dagent/tool.hpp"
#include "mcp/transport.hpp"

namespace dagent::mcp {

/// A `notifications/progress` for a pending request.
struct Progress {
  double progress = 0;
  std::optional<double> total;
  std::string message;
};

/// Why a request has no result. `code` is the tool error it maps to: unavailable (the channel
/// closed, the server crashed), timed_out (timeout_ms without an answer or progress), cancelled
/// (the caller gave up), failed (a JSON-RPC error response).
struct RequestError {
  ToolErrc code = ToolErrc::failed;
  std::string message;  ///< names the server
};

struct Outgoing;  ///< the session's send queue (session.cpp)

class Session {
 public:
  /// `server` names it in messages; `timeout` limits each request (a progress notification
  /// restarts it).
  Session(boost::asio::any_io_executor executor, std::shared_ptr<Transport> transport, std::string server,
          std::chrono::milliseconds timeout);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// Opens the transport; every later failure of it fails the pending requests.
  boost::asio::awaitable<boost::system::result<void, std::string>> open();

  /// Sends a request and awaits its result. `on_progress`, when set, asks the server for
  /// progress (`_meta.progressToken`). Cancelling the awaiting coroutine (a step timeout, Ctrl-C)
  /// sends `notifications/cancelled` for it and completes with ToolErrc::cancelled.
  boost::asio::awaitable<boost::system::result<boost::json::value, RequestError>> request(
      std::string method, boost::json::object params, std::function<void(const Progress&)> on_progress = {});

  /// Sends a notification.
  boost::asio::awaitable<boost::system::result<void, std::string>> notify(std::string method,
                                                                          boost::json::object params);

  /// Closes the transport (its shutdown sequence); pending requests fail. Idempotent.
  boost::asio::awaitable<void> close();

  /// False once the transport closed; `closed_reason()` then says why.
  bool alive() const noexcept { return alive_; }
  const std::string& closed_reason() const noexcept { return closed_reason_; }
  std::size_t pending() const noexcept { return pending_.size(); }

  /// Called (on the loop) when the transport closes by itself, after the pending requests failed.
  void on_closed(std::function<void(const std::string&)> callback) { on_closed_ = std::move(callback); }

  struct Pending;  ///< one request awaiting its response (session.cpp)

 private:
  void on_message(boost::json::object message);
  void on_transport_closed(std::string reason);
  void answer_server_request(const boost::json::object& message);
  void queue(boost::json::object message);  ///< sent in order by the session's sender
  void queue_cancelled(std::int64_t id, const std::string& reason);  ///< notifications/cancelled for request `id`
  /// Queues notifications/cancelled for a request whose send is abandoned by an exception.
  struct CancelOnUnwind {
    Session* session;
    std::int64_t id;
    const Pending* pending;
    bool armed = true;
    ~CancelOnUnwind();
  };

  boost::asio::any_io_executor executor_;
  std::shared_ptr<Transport> transport_;
  std::string server_;
  std::chrono::milliseconds timeout_;
  std::int64_t next_id_ = 1;
  std::map<std::int64_t, Pending*> pending_;
  bool alive_ = false;
  bool closing_ = false;
  std::string closed_reason_;
  std::function<void(const std::string&)> on_closed_;
  std::shared_ptr<Outgoing> outgoing_;  ///< messages sent from handlers (answers, cancellations)
};

}  // namespace dagent::mcp
