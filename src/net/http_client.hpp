#pragma once
// A pooled keep-alive HTTP/1.1 client over TCP or TLS (Beast stays inside http_client.cpp).

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include "net/url.hpp"

namespace dagent::net {

class TlsContext;
struct CallMeter;

struct Header {
  std::string name;   ///< lowercase in responses
  std::string value;
};

struct HttpRequest {
  std::string method = "POST";
  std::string target;             ///< path and query, e.g. "/v1/chat/completions"
  std::vector<Header> headers;    ///< Host, Content-Length and Connection are set by the client
  std::string body;
};

/// The value of header `lower_name`, or null.
const std::string* find_header(const std::vector<Header>& headers, std::string_view lower_name);

struct HttpResponse {
  int status = 0;
  std::vector<Header> headers;
  std::string body;

  const std::string* header(std::string_view lower_name) const { return find_header(headers, lower_name); }
};

struct HttpOptions {
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{60000};  ///< whole request, connect included
  bool pooling = true;                               ///< false: a new connection per request
  int max_connections = 100;                         ///< per origin, in use and idle together
  int max_keepalive = 50;                            ///< idle connections kept per origin
  std::chrono::milliseconds idle_timeout{30000};     ///< idle connections older than this are closed
  std::size_t max_body_bytes = 64u << 20;
  std::string_view peer = "model";                   ///< its connections' `peer` label in the metrics (a literal)
};

/// A failed exchange. `before_response` is true when no byte of a response arrived, so the
/// request may not have reached the server (what makes a retry on a fresh connection safe).
struct HttpError {
  boost::system::error_code code;  ///< a NetErrc
  std::string message;
  bool before_response = false;
};
[[noreturn]] void throw_exception_from_error(const HttpError& e, const boost::source_location& loc);

template <class T>
using HttpResult = boost::system::result<T, HttpError>;

/// Bounds of a streamed body: the silence between two reads, the whole stream from the request
/// on (however lively, e.g. kept alive by comments), and its size.
struct StreamLimits {
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds total_timeout{600000};
  std::size_t max_bytes = 16u << 20;
};

class HttpStream;

/// One client per process and event loop: pools per origin, counts the connections it opens.
/// Must be used from a single-threaded loop.
class HttpClient {
 public:
  HttpClient(boost::asio::any_io_executor executor, std::shared_ptr<TlsContext> tls, HttpOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Sends `request` and reads the whole response. A pooled connection that fails before any
  /// response byte is replaced by a fresh one once. A connection opened for it counts to `meter`
  /// (null: none), which must outlive the call.
  boost::asio::awaitable<HttpResult<HttpResponse>> send(Origin origin, HttpRequest request, CallMeter* meter = nullptr);

  /// Sends `request` and completes when the response head has arrived; the body is then read
  /// from the stream within `limits`. Connections count to `meter` as for send().
  boost::asio::awaitable<HttpResult<HttpStream>> open_stream(Origin origin, HttpRequest request, StreamLimits limits,
                                                             CallMeter* meter = nullptr);

  /// Opens connections to `origin` concurrently until its pool holds `k` (idle, in use and
  /// connecting), never past max_connections, nor more idle ones than max_keepalive; each goes
  /// into the idle pool. A connect that fails frees its slot and is otherwise ignored. Completes
  /// when every connect has ended; cancelled, it stops them and frees their slots. Returns how
  /// many connections it added; 0 without pooling. The connections count to `meter` (null: none).
  boost::asio::awaitable<int> warm(Origin origin, int k, CallMeter* meter = nullptr);

  /// Connections opened since construction (TCP connects, TLS included).
  std::int64_t connections_opened() const noexcept;
  /// Idle connections currently pooled for `origin`.
  std::size_t idle_connections(const Origin& origin) const;
  /// Slots taken in `origin`'s pool: idle connections, connections in use and connects under way.
  /// Equal to idle_connections() once no request is in flight, however requests ended.
  int open_connections(const Origin& origin) const;
  /// Requests waiting for a free slot of `origin`'s pool.
  std::size_t waiting_for_connection(const Origin& origin) const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

/// The body of a streamed response; owns its connection until the body ends or it is dropped
/// (a dropped unfinished stream closes the connection).
class HttpStream {
 public:
  struct State;
  explicit HttpStream(std::unique_ptr<State> state);
  HttpStream(HttpStream&&) noexcept;
  HttpStream& operator=(HttpStream&&) noexcept;
  ~HttpStream();

  int status() const noexcept;
  const std::vector<Header>& headers() const noexcept;
  const std::string* header(std::string_view lower_name) const { return find_header(headers(), lower_name); }

  /// Appends the next body bytes to `out`; 0 means the body ended cleanly. A body cut short is
  /// NetErrc::truncated; no byte for the idle timeout is NetErrc::idle_timeout; a stream past its
  /// total timeout is NetErrc::request_timeout, past its size cap NetErrc::too_large.
  boost::asio::awaitable<HttpResult<std::size_t>> read_some(std::string& out);

  /// Reads the rest of the body (up to `limit` bytes, else NetErrc::too_large).
  boost::asio::awaitable<HttpResult<std::string>> read_all(std::size_t limit);

 private:
  std::unique_ptr<State> state_;
};

}  // namespace dagent::net
