// The pooled HTTP/1.1 client: connection state per origin, TLS with SNI and host name checks,
// timeouts on every step, and the one safe retry of a stale pooled connection.

#include "net/http_client.hpp"

#include <algorithm>
#include <cctype>
#include <deque>
#include <map>
#include <stdexcept>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "net/net_error.hpp"
#include "net/tls_context.hpp"

namespace dagent::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto k_token = asio::as_tuple(asio::use_awaitable);

const std::string* find_header(const std::vector<Header>& headers, std::string_view lower_name) {
  for (const auto& h : headers)
    if (h.name == lower_name) return &h.value;
  return nullptr;
}

void throw_exception_from_error(const HttpError& e, const boost::source_location&) {
  throw boost::system::system_error(e.code, e.message);
}

namespace {

HttpError make_error(NetErrc code, std::string message, bool before_response = false) {
  return HttpError{make_error_code(code), std::move(message), before_response};
}

constexpr std::size_t k_read_capacity = 16 * 1024;

beast::flat_buffer with_capacity(std::size_t n) {
  beast::flat_buffer b;
  b.reserve(n);
  return b;
}

// One TCP or TLS connection. Exactly one of the two streams is set.
struct Connection {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
  // Beast reads into the buffer's free capacity, at least 512 bytes: without room reserved up
  // front, a 150 KB embedding response would take some 300 reads.
  beast::flat_buffer buffer = with_capacity(k_read_capacity);
  Clock::time_point idle_since{};
  bool reused = false;

  beast::tcp_stream& tcp() { return plain ? *plain : beast::get_lowest_layer(*secure); }
  void close() {
    beast::error_code ec;
    tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
    tcp().socket().close(ec);
  }
};

std::vector<Header> copy_headers(const http::fields& fields) {
  std::vector<Header> out;
  for (const auto& f : fields) {
    std::string name(f.name_string());
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    out.push_back({std::move(name), std::string(f.value())});
  }
  return out;
}

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

std::string host_header(const Origin& origin) {
  std::string host = origin.host.find(':') != std::string::npos ? "[" + origin.host + "]" : origin.host;
  const bool default_port = origin.port == (origin.tls ? "443" : "80");
  return default_port ? host : host + ":" + origin.port;
}

// Classifies a read or write failure; `got_some`: whether any response byte arrived.
HttpError io_error(const beast::error_code& ec, bool got_some, std::string_view during) {
  if (ec == beast::error::timeout)
    return make_error(NetErrc::request_timeout, "request timed out " + std::string(during), !got_some);
  if (!got_some)
    return make_error(NetErrc::connection_closed,
                      "connection closed " + std::string(during) + " before any response: " + ec.message(), true);
  if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == asio::error::eof ||
      ec == asio::ssl::error::stream_truncated || ec == asio::error::connection_reset)
    return make_error(NetErrc::truncated, "response truncated " + std::string(during) + ": " + ec.message());
  if (ec.category() == make_error_code(http::error::end_of_stream).category())
    return make_error(NetErrc::protocol_error, "invalid HTTP response: " + ec.message());
  return make_error(NetErrc::connection_closed, "connection failed " + std::string(during) + ": " + ec.message());
}

bool has_line_break(std::string_view v) { return v.find_first_of("\r\n") != std::string_view::npos; }

// The request as one buffer, written with a single write: cheaper than Beast's serializer, and
// every header value is checked for line breaks so nothing can inject a header.
std::string serialize_request(const Origin& origin, const HttpRequest& req, bool keep_alive) {
  std::string out;
  out.reserve(256 + req.body.size());
  out.append(req.method).append(" ").append(req.target).append(" HTTP/1.1\r\nHost: ");
  out.append(host_header(origin)).append("\r\nUser-Agent: dagent/" DAGENT_VERSION "\r\n");
  for (const auto& h : req.headers) {
    if (has_line_break(h.name) || has_line_break(h.value)) continue;
    out.append(h.name).append(": ").append(h.value).append("\r\n");
  }
  out.append("Content-Length: ").append(std::to_string(req.body.size())).append("\r\n");
  if (!keep_alive) out.append("Connection: close\r\n");
  out.append("\r\n").append(req.body);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct HttpClient::Impl {
  struct Pool {
    std::vector<std::unique_ptr<Connection>> idle;  // most recently used last
    int open = 0;                                   // idle and in use
    std::deque<asio::steady_timer*> waiters;        // FIFO of requests waiting for a slot
  };

  Impl(asio::any_io_executor ex, std::shared_ptr<TlsContext> t, HttpOptions o)
      : executor(std::move(ex)), tls(std::move(t)), options(o) {}

  asio::any_io_executor executor;
  std::shared_ptr<TlsContext> tls;
  HttpOptions options;
  std::map<std::string, Pool> pools;
  std::int64_t opened = 0;

  Pool& pool_of(const Origin& origin) { return pools[origin.key()]; }

  void wake_one(Pool& pool) {
    if (pool.waiters.empty()) return;
    pool.waiters.front()->cancel();
    pool.waiters.pop_front();
  }

  // Returns a connection to its pool (or closes it) and frees its slot for a waiter.
  void release(const Origin& origin, std::unique_ptr<Connection> conn, bool reusable) {
    auto& pool = pool_of(origin);
    if (reusable && options.pooling && static_cast<int>(pool.idle.size()) < options.max_keepalive) {
      conn->idle_since = Clock::now();
      pool.idle.push_back(std::move(conn));
    } else {
      conn->close();
      --pool.open;
    }
    wake_one(pool);
  }

  // A pooled connection that is still fresh, or null.
  std::unique_ptr<Connection> take_idle(Pool& pool) {
    const auto now = Clock::now();
    while (!pool.idle.empty()) {
      auto conn = std::move(pool.idle.back());
      pool.idle.pop_back();
      if (now - conn->idle_since <= options.idle_timeout && conn->tcp().socket().is_open()) {
        conn->reused = true;
        return conn;
      }
      conn->close();  // expired: idle connections older than idle_timeout are not reused
      --pool.open;
    }
    return nullptr;
  }
};

namespace {

asio::awaitable<HttpResult<std::unique_ptr<Connection>>> connect(HttpClient::Impl* impl, Origin origin,
                                                                  Clock::time_point deadline) {
  auto ex = co_await asio::this_coro::executor;
  const auto connect_deadline = std::min(deadline, Clock::now() + impl->options.connect_timeout);
  tcp::resolver resolver(ex);
  auto [rec, endpoints] = co_await resolver.async_resolve(origin.host, origin.port, k_token);
  if (rec)
    co_return make_error(NetErrc::resolve_failed, "cannot resolve '" + origin.host + "': " + rec.message(), true);

  auto conn = std::make_unique<Connection>();
  if (origin.tls) {
    conn->secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ex, impl->tls->native());
  } else {
    conn->plain = std::make_unique<beast::tcp_stream>(ex);
  }
  auto& tcp_stream = conn->tcp();
  tcp_stream.expires_at(connect_deadline);
  auto [cec, ep] = co_await tcp_stream.async_connect(endpoints, k_token);
  if (cec) {
    if (cec == beast::error::timeout)
      co_return make_error(NetErrc::connect_timeout, "connecting to " + origin.key() + " timed out", true);
    co_return make_error(NetErrc::connect_failed, "cannot connect to " + origin.key() + ": " + cec.message(), true);
  }
  tcp_stream.socket().set_option(tcp::no_delay(true));
  ++impl->opened;

  if (origin.tls) {
    SSL* ssl = conn->secure->native_handle();
    // SNI carries names only; the certificate is always checked against the host, name or IP.
    if (is_ip_literal(origin.host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), origin.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, origin.host.c_str());
      SSL_set1_host(ssl, origin.host.c_str());
    }
    SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
    tcp_stream.expires_at(connect_deadline);
    auto [hec] = co_await conn->secure->async_handshake(asio::ssl::stream_base::client, k_token);
    if (hec) {
      long verify = SSL_get_verify_result(ssl);
      std::string why = verify != X509_V_OK ? X509_verify_cert_error_string(verify)
                        : hec == beast::error::timeout ? "timed out"
                                                       : hec.message();
      co_return make_error(NetErrc::tls_handshake_failed, "TLS handshake with " + origin.key() + " failed: " + why, true);
    }
  }
  co_return std::move(conn);
}

// A connection for `origin`: a fresh pooled one, a new one, or the next free slot in FIFO order.
asio::awaitable<HttpResult<std::unique_ptr<Connection>>> checkout(HttpClient::Impl* impl, Origin origin,
                                                                  Clock::time_point deadline, bool fresh_only) {
  for (;;) {
    auto& pool = impl->pool_of(origin);
    if (!fresh_only && impl->options.pooling) {
      if (auto conn = impl->take_idle(pool)) co_return std::move(conn);
    }
    if (pool.open < impl->options.max_connections) {
      ++pool.open;
      auto conn = co_await connect(impl, origin, deadline);
      if (!conn) {
        --impl->pool_of(origin).open;
        impl->wake_one(impl->pool_of(origin));
      }
      co_return std::move(conn);
    }
    if (fresh_only && !pool.idle.empty()) {  // make room: an idle connection yields its slot
      pool.idle.front()->close();
      pool.idle.erase(pool.idle.begin());
      --pool.open;
      continue;
    }
    asio::steady_timer wait(co_await asio::this_coro::executor, deadline);
    pool.waiters.push_back(&wait);
    auto [ec] = co_await wait.async_wait(k_token);
    auto& waiters = impl->pool_of(origin).waiters;
    if (auto it = std::find(waiters.begin(), waiters.end(), &wait); it != waiters.end()) waiters.erase(it);
    if (!ec) co_return make_error(NetErrc::request_timeout, "timed out waiting for a free connection to " + origin.key(), true);
  }
}

template <class Stream>
asio::awaitable<HttpResult<http::response<http::string_body>>> exchange_on(Stream& stream, Connection& conn,
                                                                           const std::string& req,
                                                                           std::size_t body_limit) {
  auto [wec, written] = co_await asio::async_write(stream, asio::buffer(req), k_token);
  if (wec) co_return io_error(wec, false, "while sending the request");
  http::response_parser<http::string_body> parser;
  parser.body_limit(body_limit);
  auto [rec, read] = co_await http::async_read(stream, conn.buffer, parser, k_token);
  if (rec) co_return io_error(rec, parser.got_some(), "while reading the response");
  co_return parser.release();
}

asio::awaitable<HttpResult<http::response<http::string_body>>> exchange(Connection& conn,
                                                                        const std::string& req,
                                                                        Clock::time_point deadline,
                                                                        std::size_t body_limit) {
  conn.tcp().expires_at(deadline);
  if (conn.secure) co_return co_await exchange_on(*conn.secure, conn, req, body_limit);
  co_return co_await exchange_on(*conn.plain, conn, req, body_limit);
}

}  // namespace

HttpClient::HttpClient(asio::any_io_executor executor, std::shared_ptr<TlsContext> tls, HttpOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(tls), options)) {}

HttpClient::~HttpClient() {
  for (auto& [key, pool] : impl_->pools)
    for (auto& conn : pool.idle) conn->close();
}

std::int64_t HttpClient::connections_opened() const noexcept { return impl_->opened; }

std::size_t HttpClient::idle_connections(const Origin& origin) const {
  auto it = impl_->pools.find(origin.key());
  return it == impl_->pools.end() ? 0 : it->second.idle.size();
}

asio::awaitable<HttpResult<HttpResponse>> HttpClient::send(Origin origin, HttpRequest request) {
  auto impl = impl_;  // keeps the pools alive across suspensions
  if (origin.tls && !impl->tls) co_return make_error(NetErrc::invalid_url, "https needs a TLS context", true);
  const auto deadline = Clock::now() + impl->options.request_timeout;
  if (has_line_break(request.method) || has_line_break(request.target))
    co_return make_error(NetErrc::protocol_error, "invalid request line", true);
  const std::string req = serialize_request(origin, request, impl->options.pooling);
  for (int fresh = 0;; ++fresh) {
    auto conn = co_await checkout(impl.get(), origin, deadline, fresh > 0);
    if (!conn) co_return conn.error();
    auto res = co_await exchange(**conn, req, deadline, impl->options.max_body_bytes);
    if (!res) {
      const bool stale = (*conn)->reused && res.error().before_response &&
                         res.error().code != make_error_code(NetErrc::request_timeout);
      impl->release(origin, std::move(*conn), false);
      // A kept-alive connection the server closed meanwhile fails before any response byte:
      // the request never arrived, so one retry on a new connection is safe.
      if (stale && fresh == 0) continue;
      co_return res.error();
    }
    HttpResponse out;
    out.status = static_cast<int>(res->result_int());
    out.headers = copy_headers(res->base());
    const bool keep = res->keep_alive();
    out.body = std::move(res->body());
    impl->release(origin, std::move(*conn), keep);
    co_return out;
  }
}

// ---------------------------------------------------------------------------------------------

struct HttpStream::State {
  std::shared_ptr<HttpClient::Impl> impl;
  Origin origin;
  std::unique_ptr<Connection> conn;
  http::response_parser<http::buffer_body> parser;
  std::vector<Header> headers;
  int status = 0;
  std::chrono::milliseconds idle_timeout{0};
  bool done = false;

  ~State() {
    if (conn) impl->release(origin, std::move(conn), false);
  }
};

namespace {

template <class Stream>
asio::awaitable<HttpResult<std::size_t>> read_body_on(Stream& stream, HttpStream::State& s, std::string& out) {
  char chunk[16384];
  s.parser.get().body().data = chunk;
  s.parser.get().body().size = sizeof chunk;
  auto [ec, n] = co_await http::async_read_some(stream, s.conn->buffer, s.parser, k_token);
  if (ec == http::error::need_buffer) ec = {};
  if (ec) {
    if (ec == beast::error::timeout)
      co_return make_error(NetErrc::idle_timeout,
                           "no data for " + std::to_string(s.idle_timeout.count()) + " ms while streaming");
    co_return io_error(ec, true, "while streaming the response");
  }
  const std::size_t got = sizeof chunk - s.parser.get().body().size;
  out.append(chunk, got);
  co_return got;
}

template <class Stream>
asio::awaitable<HttpResult<int>> start_stream_on(Stream& stream, HttpStream::State& s,
                                                 const std::string& req) {
  auto [wec, written] = co_await asio::async_write(stream, asio::buffer(req), k_token);
  if (wec) co_return io_error(wec, false, "while sending the request");
  s.parser.body_limit(boost::none);
  auto [rec, read] = co_await http::async_read_header(stream, s.conn->buffer, s.parser, k_token);
  if (rec) co_return io_error(rec, s.parser.got_some(), "while reading the response head");
  co_return 0;
}

}  // namespace

HttpStream::HttpStream(std::unique_ptr<State> state) : state_(std::move(state)) {}
HttpStream::HttpStream(HttpStream&&) noexcept = default;
HttpStream& HttpStream::operator=(HttpStream&&) noexcept = default;
HttpStream::~HttpStream() = default;

int HttpStream::status() const noexcept { return state_->status; }
const std::vector<Header>& HttpStream::headers() const noexcept { return state_->headers; }

asio::awaitable<HttpResult<std::size_t>> HttpStream::read_some(std::string& out) {
  auto& s = *state_;
  for (;;) {
    if (s.done || s.parser.is_done()) {
      if (!s.done && s.conn) {
        s.done = true;
        s.impl->release(s.origin, std::move(s.conn), s.parser.keep_alive());
      }
      co_return std::size_t{0};
    }
    s.conn->tcp().expires_after(s.idle_timeout);
    HttpResult<std::size_t> got = std::size_t{0};
    if (s.conn->secure) {
      got = co_await read_body_on(*s.conn->secure, s, out);
    } else {
      got = co_await read_body_on(*s.conn->plain, s, out);
    }
    if (!got) {
      s.done = true;
      s.impl->release(s.origin, std::move(s.conn), false);
      co_return got;
    }
    if (*got > 0) co_return got;
  }
}

asio::awaitable<HttpResult<std::string>> HttpStream::read_all(std::size_t limit) {
  std::string body;
  for (;;) {
    auto got = co_await read_some(body);
    if (!got) co_return got.error();
    if (*got == 0) co_return body;
    if (body.size() > limit) co_return make_error(NetErrc::protocol_error, "response body too large");
  }
}

asio::awaitable<HttpResult<HttpStream>> HttpClient::open_stream(Origin origin, HttpRequest request,
                                                                std::chrono::milliseconds idle_timeout) {
  auto impl = impl_;
  if (origin.tls && !impl->tls) co_return make_error(NetErrc::invalid_url, "https needs a TLS context", true);
  const auto deadline = Clock::now() + impl->options.request_timeout;
  if (has_line_break(request.method) || has_line_break(request.target))
    co_return make_error(NetErrc::protocol_error, "invalid request line", true);
  const std::string req = serialize_request(origin, request, impl->options.pooling);
  for (int fresh = 0;; ++fresh) {
    auto conn = co_await checkout(impl.get(), origin, deadline, fresh > 0);
    if (!conn) co_return conn.error();
    auto state = std::make_unique<HttpStream::State>();
    state->impl = impl;
    state->origin = origin;
    state->conn = std::move(*conn);
    state->idle_timeout = idle_timeout;
    const bool reused = state->conn->reused;
    state->conn->tcp().expires_at(std::min(deadline, Clock::now() + idle_timeout));
    HttpResult<int> head = 0;
    if (state->conn->secure) {
      head = co_await start_stream_on(*state->conn->secure, *state, req);
    } else {
      head = co_await start_stream_on(*state->conn->plain, *state, req);
    }
    if (!head) {
      const bool stale = reused && head.error().before_response &&
                         head.error().code != make_error_code(NetErrc::request_timeout);
      if (fresh == 0 && stale) continue;  // state's destructor closes the stale connection
      co_return head.error();
    }
    state->status = static_cast<int>(state->parser.get().result_int());
    state->headers = copy_headers(state->parser.get().base());
    co_return HttpStream(std::move(state));
  }
}

}  // namespace dagent::net
