// The pooled HTTP/1.1 client: connection state per origin, TLS with SNI and host name checks,
// timeouts on every step, and the one safe retry of a stale pooled connection.

#include "net/http_client.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <list>
#include <map>
#include <stdexcept>
#include <tuple>
#include <type_traits>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/read.hpp>

#include "net/call_meter.hpp"
#include "net/net_error.hpp"
#include "net/tls_context.hpp"
#include "observe/metrics.hpp"

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

// The deadline of one connection's operations, kept by one timer. Why not Beast's tcp_stream:
// it arms its timer for every read and every write, and arming the earliest timer reprograms the
// timerfd, two syscalls per request. This timer is re-armed only for a deadline earlier than its
// expiry; a later deadline is picked up when the timer fires, so a busy connection re-arms once
// per timeout period, not per request. Between operations the wait is cancelled, but only once
// the handlers ready to run have run: a pending wait would keep the event loop from returning,
// and the next request usually starts before then and keeps the wait.
struct Watchdog {
  explicit Watchdog(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
  tcp::socket* socket = nullptr;                         // null once the connection is gone
  Clock::time_point deadline = Clock::time_point::max();  // of the operation under way; max: none
  std::uint64_t wait_id = 0;                              // the one wait whose completion counts
  bool waiting = false;                                   // a wait until timer.expiry() is pending
  bool check_posted = false;                              // an IdleCheck is queued
  bool fired = false;  // a deadline passed during an operation, and the socket was closed
};

void watch(const std::shared_ptr<Watchdog>& w);

// Why a functor holding the state: a wait that completed is queued and may run after its
// connection is gone.
struct WatchdogFired {
  std::shared_ptr<Watchdog> w;
  std::uint64_t id;
  void operator()(const boost::system::error_code&) const {
    if (id != w->wait_id) return;  // superseded by a wait for an earlier deadline
    w->waiting = false;
    if (!w->socket || w->deadline == Clock::time_point::max()) return;  // gone, or between operations
    if (Clock::now() < w->deadline) return watch(w);                  // the deadline moved on
    // As tcp_stream does: closing the socket ends the operation under way, TLS included.
    w->fired = true;
    boost::system::error_code ignored;
    w->socket->close(ignored);
  }
};

void watch(const std::shared_ptr<Watchdog>& w) {
  w->timer.expires_at(w->deadline);
  w->waiting = true;
  w->timer.async_wait(WatchdogFired{w, ++w->wait_id});
}

// Ends the wait of a connection that is still between operations.
struct IdleCheck {
  std::shared_ptr<Watchdog> w;
  void operator()() const {
    w->check_posted = false;
    if (!w->waiting || w->deadline != Clock::time_point::max()) return;
    w->waiting = false;
    ++w->wait_id;  // the cancelled wait's completion does not count
    w->timer.cancel();
  }
};

// One TCP or TLS connection. Exactly one of the two streams is set.
struct Connection {
  explicit Connection(const asio::any_io_executor& ex) : watchdog(std::make_shared<Watchdog>(ex)) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    watchdog->socket = nullptr;
    watchdog->timer.cancel();
  }

  std::unique_ptr<tcp::socket> plain;
  std::unique_ptr<asio::ssl::stream<tcp::socket>> secure;
  std::shared_ptr<Watchdog> watchdog;
  // Beast reads into the buffer's free capacity, at least 512 bytes: without room reserved up
  // front, a 150 KB embedding response would take some 300 reads.
  beast::flat_buffer buffer = with_capacity(k_read_capacity);
  Clock::time_point idle_since{};
  bool reused = false;
  observe::GaugeLease open_count, idle_count;  // in dagent_http_connections_open / _idle

  tcp::socket& socket() { return plain ? *plain : secure->next_layer(); }
  void close() {
    beast::error_code ec;
    socket().shutdown(tcp::socket::shutdown_both, ec);
    socket().close(ec);
  }
  // Bounds the operations from now on by `deadline`, until unbound().
  void bound(Clock::time_point deadline) {
    auto& w = *watchdog;
    w.deadline = deadline;
    if (!w.waiting || w.timer.expiry() > deadline) watch(watchdog);
  }
  void unbound() {
    auto& w = *watchdog;
    w.deadline = Clock::time_point::max();
    if (w.waiting && !w.check_posted) {
      w.check_posted = true;
      asio::post(w.timer.get_executor(), IdleCheck{watchdog});
    }
  }
  // `ec` of an operation, beast::error::timeout if the deadline ended it.
  beast::error_code outcome(const beast::error_code& ec) const {
    return ec && watchdog->fired ? beast::error_code(beast::error::timeout) : ec;
  }
};

// Keeps a connection bounded by a deadline for a scope, however it is left.
class Bounded {
 public:
  Bounded(Connection& conn, Clock::time_point deadline) : conn_(conn) { conn_.bound(deadline); }
  Bounded(const Bounded&) = delete;
  Bounded& operator=(const Bounded&) = delete;
  ~Bounded() { conn_.unbound(); }

 private:
  Connection& conn_;
};

// Spare capacity past a response body: readers that look past the end (simdjson reads up to
// 64 bytes further) then need not reallocate and copy it.
constexpr std::size_t k_body_slack = 64;
// The most reserved up front for a body on the strength of its Content-Length.
constexpr std::uint64_t k_reserve_cap = 4u << 20;

// Reads a response straight into our types: each header as a Header with its name lowercased,
// the body appended to `sink`. Skips Beast's fields container and body types, which cost a
// field-table insert per header and a copy of every header afterwards.
class ResponseReader final : public http::basic_parser<false> {
 public:
  int status = 0;
  std::vector<Header> headers;
  std::string body;
  std::string* sink = &body;  ///< where body bytes go; a stream points it at the caller's string

 private:
  void on_request_impl(http::verb, beast::string_view, beast::string_view, int, beast::error_code& ec) override {
    ec = http::error::bad_method;  // never called: this parses responses
  }
  void on_response_impl(int code, beast::string_view, int, beast::error_code&) override {
    status = code;
    headers.reserve(16);
  }
  void on_field_impl(http::field, beast::string_view name, beast::string_view value, beast::error_code&) override {
    auto& h = headers.emplace_back();
    h.name.resize(name.size());
    std::transform(name.begin(), name.end(), h.name.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
    h.value.assign(value.data(), value.size());
  }
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, beast::error_code&) override {
    // Why capped: the length is the server's claim, and a stream has no body limit; a body
    // larger than the cap grows as its bytes arrive. Only a body the reader keeps is sized.
    if (length && sink == &body)
      body.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(*length, k_reserve_cap)) + k_body_slack);
  }
  std::size_t on_body_impl(beast::string_view part, beast::error_code&) override {
    sink->append(part.data(), part.size());
    return part.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view part, beast::error_code&) override {
    sink->append(part.data(), part.size());
    return part.size();
  }
  void on_finish_impl(beast::error_code&) override {}
};

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
  if (ec == http::error::body_limit) return make_error(NetErrc::too_large, "response body too large");
  // A step timeout or Ctrl-C cancelled the read or write: the caller's doing, never retried.
  if (ec == asio::error::operation_aborted)
    return make_error(NetErrc::cancelled, "request cancelled " + std::string(during), !got_some);
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

// Two memchr scans: vectorized, where a loop over the characters cost some 1.5 k instructions
// per request over the header values (each checked twice, for the size and the copy).
bool has_line_break(std::string_view v) {
  return !v.empty() && (std::memchr(v.data(), '\r', v.size()) || std::memchr(v.data(), '\n', v.size()));
}

// The fields every request to `origin` starts with, built once per pool.
std::string origin_fields(const Origin& origin) {
  return "Host: " + host_header(origin) + "\r\nUser-Agent: dagent/" DAGENT_VERSION "\r\n";
}

// The request as one buffer, written with a single write: cheaper than Beast's serializer, and
// a header whose name or value holds a line break is left out, so nothing can inject a header.
// Sized first and filled with plain copies: appends would pay a length check each.
std::string serialize_request(const std::string& fields, const HttpRequest& req, bool keep_alive) {
  using namespace std::string_view_literals;
  char length[24];
  const std::string_view content_length(length, std::to_chars(length, length + sizeof length, req.body.size()).ptr - length);
  const auto close = keep_alive ? ""sv : "Connection: close\r\n"sv;
  std::size_t size = req.method.size() + 1 + req.target.size() + " HTTP/1.1\r\n"sv.size() + fields.size() +
                     "Content-Length: "sv.size() + content_length.size() + 2 + close.size() + 2 + req.body.size();
  for (const auto& h : req.headers)
    if (!has_line_break(h.name) && !has_line_break(h.value)) size += h.name.size() + 2 + h.value.size() + 2;
  std::string out(size, '\0');
  char* p = out.data();
  const auto put = [&p](std::string_view part) { p = std::copy(part.begin(), part.end(), p); };
  put(req.method), put(" "sv), put(req.target), put(" HTTP/1.1\r\n"sv), put(fields);
  for (const auto& h : req.headers)
    if (!has_line_break(h.name) && !has_line_break(h.value)) put(h.name), put(": "sv), put(h.value), put("\r\n"sv);
  put("Content-Length: "sv), put(content_length), put("\r\n"sv), put(close), put("\r\n"sv), put(req.body);
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

struct HttpClient::Impl {
  // A request waiting for a slot; the entry belongs to that request's PoolWait.
  struct Waiter {
    asio::steady_timer* timer;
    bool woken = false;
  };
  struct Pool {
    std::vector<std::unique_ptr<Connection>> idle;  // most recently used last
    int open = 0;                                   // slots taken: idle, in use and connecting
    std::list<Waiter> waiters;                      // FIFO of requests waiting for a slot
    std::string fields;                             // Host and User-Agent, as serialized
    int warming = 0;                                // warm-up connects under way (counted in open)
    int claims = 0;                                 // requests waiting for one of them
  };

  Impl(asio::any_io_executor ex, std::shared_ptr<TlsContext> t, HttpOptions o)
      : executor(std::move(ex)), tls(std::move(t)), options(o) {}

  asio::any_io_executor executor;
  std::shared_ptr<TlsContext> tls;
  HttpOptions options;
  std::map<std::string, Pool> pools;  // never erased: a Pool& stays valid
  std::int64_t opened = 0;
  observe::ConnectionMeters meters = observe::connection_meters(options.peer);

  Pool& pool_of(const Origin& origin) {
    // Why: a client nearly always talks to one origin, and comparing it is cheaper than
    // building origin.key() and searching the map.
    if (last_pool && origin == last_origin) return *last_pool;
    auto [it, added] = pools.try_emplace(origin.key());
    if (added) it->second.fields = origin_fields(origin);
    last_origin = origin;
    last_pool = &it->second;
    return it->second;
  }
  Origin last_origin;        // of the last pool_of
  Pool* last_pool = nullptr;

  // Wakes the first waiter not woken yet; it looks for a slot again when it runs.
  void wake_one(Pool& pool) {
    for (auto& w : pool.waiters) {
      if (w.woken) continue;
      w.woken = true;
      w.timer->cancel();
      return;
    }
  }

  // Returns a connection to its pool, or closes it and frees its slot (`conn` null: a connect
  // that failed or was abandoned), and lets a waiter try again.
  void release(Pool& pool, std::unique_ptr<Connection> conn, bool reusable) {
    if (conn && reusable && options.pooling && static_cast<int>(pool.idle.size()) < options.max_keepalive) {
      conn->idle_since = Clock::now();
      conn->idle_count.take(meters.idle);
      pool.idle.push_back(std::move(conn));
    } else {
      if (conn) conn->close();
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
      conn->idle_count.release();
      if (now - conn->idle_since <= options.idle_timeout && conn->socket().is_open()) {
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

using Pool = HttpClient::Impl::Pool;

// One slot of an origin's pool, counted in `open` while the lease lives, with its connection
// once made. Given back exactly once, by give_back() or the destructor: a request cancelled
// during DNS, connect or I/O (its next co_await throws) cannot keep the slot.
class Lease {
 public:
  Lease() = default;
  // Takes a new slot.
  Lease(std::shared_ptr<HttpClient::Impl> impl, Pool& pool) : impl_(std::move(impl)), pool_(&pool) { ++pool_->open; }
  // Takes over an idle connection, whose slot is already counted.
  Lease(std::shared_ptr<HttpClient::Impl> impl, Pool& pool, std::unique_ptr<Connection> idle)
      : conn(std::move(idle)), impl_(std::move(impl)), pool_(&pool) {}
  Lease(Lease&& other) noexcept
      : conn(std::move(other.conn)), impl_(std::move(other.impl_)), pool_(std::exchange(other.pool_, nullptr)) {}
  Lease& operator=(Lease&& other) noexcept {
    if (this != &other) {
      give_back(false);
      conn = std::move(other.conn);
      impl_ = std::move(other.impl_);
      pool_ = std::exchange(other.pool_, nullptr);
    }
    return *this;
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() { give_back(false); }

  /// Pools the connection when `reusable` (its slot stays taken, by an idle connection), else
  /// closes it and frees the slot. Only the first call counts.
  void give_back(bool reusable) {
    if (auto impl = std::move(impl_)) impl->release(*pool_, std::move(conn), reusable);
  }

  std::unique_ptr<Connection> conn;

 private:
  std::shared_ptr<HttpClient::Impl> impl_;
  Pool* pool_ = nullptr;
};

// A request's place in its pool's FIFO for one wait: leaves it however the wait ends (wake-up,
// deadline, cancellation, destruction of the frame), and hands a wake-up it got but never used
// on to the next waiter, so a slot freed for a request that then went away is not lost.
class PoolWait {
 public:
  PoolWait(HttpClient::Impl& impl, Pool& pool, asio::any_io_executor executor, Clock::time_point deadline)
      : impl_(&impl), pool_(&pool), timer_(std::move(executor), deadline),
        self_(pool.waiters.insert(pool.waiters.end(), HttpClient::Impl::Waiter{&timer_})) {}
  PoolWait(const PoolWait&) = delete;
  PoolWait& operator=(const PoolWait&) = delete;
  ~PoolWait() {
    const bool unused_wake = self_->woken && !used_;
    pool_->waiters.erase(self_);
    if (unused_wake) impl_->wake_one(*pool_);
  }

  asio::steady_timer& timer() noexcept { return timer_; }
  /// Whether a slot was freed for this waiter; marks the wake-up used.
  bool take_wake() noexcept { return used_ = self_->woken; }

 private:
  HttpClient::Impl* impl_;
  Pool* pool_;
  asio::steady_timer timer_;
  std::list<HttpClient::Impl::Waiter>::iterator self_;
  bool used_ = false;
};

// A warm-up connect in `warming` from its start until it ends (its connection pooled or not), so
// a request in checkout waits for it rather than open one of its own alongside it.
class WarmSlot {
 public:
  explicit WarmSlot(Pool& pool) : pool_(&pool) { ++pool_->warming; }
  WarmSlot(WarmSlot&& other) noexcept : pool_(std::exchange(other.pool_, nullptr)) {}
  WarmSlot& operator=(WarmSlot&&) = delete;
  ~WarmSlot() { end(); }
  void end() noexcept {
    if (pool_) --std::exchange(pool_, nullptr)->warming;
  }

 private:
  Pool* pool_ = nullptr;
};

// A request waiting for a warm-up connect, counted in `claims` however the wait ends: each
// warm-up connect is waited for by one request at most.
class WarmClaim {
 public:
  explicit WarmClaim(Pool& pool) : pool_(pool) { ++pool_.claims; }
  WarmClaim(const WarmClaim&) = delete;
  WarmClaim& operator=(const WarmClaim&) = delete;
  ~WarmClaim() { --pool_.claims; }

 private:
  Pool& pool_;
};

// A lookup that may outlive the request waiting for it: getaddrinfo cannot be interrupted, so
// the request leaves at its deadline and the lookup finishes on its own with this state.
struct Lookup {
  explicit Lookup(const asio::any_io_executor& ex) : resolver(ex), done_signal(ex) {}
  tcp::resolver resolver;
  asio::steady_timer done_signal;  // cancelled when the lookup completes
  boost::system::error_code ec;
  tcp::resolver::results_type results;
  bool done = false;
};

struct LookupDone {
  std::shared_ptr<Lookup> lookup;
  void operator()(const boost::system::error_code& ec, tcp::resolver::results_type results) const {
    lookup->ec = ec;
    lookup->results = std::move(results);
    lookup->done = true;
    lookup->done_signal.cancel();
  }
};

// DNS bounded by the connect deadline.
asio::awaitable<HttpResult<tcp::resolver::results_type>> resolve(Origin origin, Clock::time_point deadline) {
  auto lookup = std::make_shared<Lookup>(co_await asio::this_coro::executor);
  lookup->done_signal.expires_at(deadline);
  lookup->resolver.async_resolve(origin.host, origin.port, LookupDone{lookup});
  auto [ec] = co_await lookup->done_signal.async_wait(k_token);
  if (!lookup->done) {
    lookup->resolver.cancel();
    if (!ec) co_return make_error(NetErrc::connect_timeout, "resolving '" + origin.host + "' timed out", true);
    co_return make_error(NetErrc::cancelled, "cancelled while resolving '" + origin.host + "'", true);
  }
  if (lookup->ec)
    co_return make_error(NetErrc::resolve_failed, "cannot resolve '" + origin.host + "': " + lookup->ec.message(), true);
  co_return std::move(lookup->results);
}

asio::awaitable<HttpResult<std::unique_ptr<Connection>>> connect(HttpClient::Impl* impl, Origin origin,
                                                                  Clock::time_point deadline, CallMeter* meter) {
  auto ex = co_await asio::this_coro::executor;
  const auto connect_deadline = std::min(deadline, Clock::now() + impl->options.connect_timeout);
  auto endpoints = co_await resolve(origin, connect_deadline);
  if (!endpoints) co_return endpoints.error();

  auto conn = std::make_unique<Connection>(ex);
  if (origin.tls) {
    conn->secure = std::make_unique<asio::ssl::stream<tcp::socket>>(ex, impl->tls->native());
  } else {
    conn->plain = std::make_unique<tcp::socket>(ex);
  }
  auto& socket = conn->socket();
  conn->watchdog->socket = &socket;
  Bounded bounded(*conn, connect_deadline);
  auto [connect_ec, ep] = co_await asio::async_connect(socket, *endpoints, k_token);
  if (const auto cec = conn->outcome(connect_ec)) {
    if (cec == beast::error::timeout)
      co_return make_error(NetErrc::connect_timeout, "connecting to " + origin.key() + " timed out", true);
    co_return make_error(NetErrc::connect_failed, "cannot connect to " + origin.key() + ": " + cec.message(), true);
  }
  // Error codes, not exceptions: a deadline that passed as the connect completed has closed the
  // socket, and the first write then reports the timeout.
  boost::system::error_code option_ec;
  socket.set_option(tcp::no_delay(true), option_ec);
  if (!origin.tls) socket.non_blocking(true, option_ec);  // for write_ready
  ++impl->opened;
  if (meter) ++meter->connections_opened;
  observe::connection_opened(impl->meters, conn->open_count);

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
    auto [handshake_ec] = co_await conn->secure->async_handshake(asio::ssl::stream_base::client, k_token);
    if (const auto hec = conn->outcome(handshake_ec)) {
      const std::string with = "TLS handshake with " + origin.key();
      // Why: only a certificate that fails verification is final. A handshake that stalls or is
      // reset says nothing about the server's identity; it is a connection error and retried.
      if (const long verify = SSL_get_verify_result(ssl); verify != X509_V_OK)
        co_return make_error(NetErrc::tls_handshake_failed, with + " failed: " + X509_verify_cert_error_string(verify), true);
      if (hec == beast::error::timeout) co_return make_error(NetErrc::connect_timeout, with + " timed out", true);
      co_return make_error(NetErrc::connect_failed, with + " failed: " + hec.message(), true);
    }
  }
  co_return std::move(conn);
}

// A lease on a connection for `origin`: a fresh pooled one, a new one, or the next free slot in
// FIFO order.
asio::awaitable<HttpResult<Lease>> checkout(std::shared_ptr<HttpClient::Impl> impl, Pool* pool_ptr, Origin origin,
                                            Clock::time_point deadline, bool fresh_only, CallMeter* meter) {
  auto& pool = *pool_ptr;
  bool claimed = false;  // waits for a warm-up connect once at most: one that fails is not waited out twice
  for (;;) {
    if (!fresh_only && impl->options.pooling) {
      if (auto conn = impl->take_idle(pool)) co_return Lease(impl, pool, std::move(conn));
    }
    if (!fresh_only && !claimed && pool.warming > pool.claims) {  // a warm-up connect under way is this request's
      claimed = true;
      WarmClaim claim(pool);
      PoolWait wait(*impl, pool, co_await asio::this_coro::executor, deadline);
      auto [ec] = co_await wait.timer().async_wait(k_token);
      if (wait.take_wake()) continue;
      if (!ec) co_return make_error(NetErrc::request_timeout, "timed out waiting for a connection to " + origin.key(), true);
      co_return make_error(NetErrc::cancelled, "cancelled while waiting for a connection to " + origin.key(), true);
    }
    if (pool.open < impl->options.max_connections) {
      Lease lease(impl, pool);
      auto made = co_await connect(impl.get(), origin, deadline, meter);
      if (!made) co_return made.error();  // the lease frees the slot
      lease.conn = std::move(*made);
      co_return std::move(lease);
    }
    if (fresh_only && !pool.idle.empty()) {  // make room: an idle connection yields its slot
      pool.idle.front()->close();
      pool.idle.erase(pool.idle.begin());
      --pool.open;
      continue;
    }
    PoolWait wait(*impl, pool, co_await asio::this_coro::executor, deadline);
    auto [ec] = co_await wait.timer().async_wait(k_token);
    if (wait.take_wake()) continue;
    if (!ec) co_return make_error(NetErrc::request_timeout, "timed out waiting for a free connection to " + origin.key(), true);
    co_return make_error(NetErrc::cancelled, "cancelled while waiting for a free connection to " + origin.key(), true);
  }
}

// Writes what the socket takes without waiting (it takes a whole request nearly always); would
// block is not an error. Why: an asynchronous write that completes at once still queues its
// completion, which costs the loop a non-blocking epoll_wait and a trip through the scheduler.
// TLS keeps the asynchronous write: its engine cannot resume a partial synchronous one.
std::size_t write_ready(tcp::socket& socket, const std::string& req, beast::error_code& ec) {
  const std::size_t n = socket.write_some(asio::buffer(req), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
  return n;
}

template <class Stream>
asio::awaitable<HttpResult<void>> exchange_on(Stream& stream, Connection& conn, const std::string& req,
                                              ResponseReader& reader) {
  std::size_t sent = 0;
  beast::error_code write_ec;
  if constexpr (std::is_same_v<Stream, tcp::socket>) {
    // Not sent when the caller was cancelled meanwhile, as an awaited write would not send it.
    const auto cancellation = co_await asio::this_coro::cancellation_state;
    if (cancellation.cancelled() == asio::cancellation_type::none) sent = write_ready(stream, req, write_ec);
  }
  if (!write_ec && sent < req.size()) std::tie(write_ec, std::ignore) = co_await asio::async_write(stream, asio::buffer(req) + sent, k_token);
  if (const auto wec = conn.outcome(write_ec)) co_return io_error(wec, false, "while sending the request");
  auto [read_ec, read] = co_await http::async_read(stream, conn.buffer, reader, k_token);
  if (const auto rec = conn.outcome(read_ec)) co_return io_error(rec, reader.got_some(), "while reading the response");
  co_return HttpResult<void>{};
}

// A lease on a fresh idle connection of `pool`, or an empty one: the common case of a checkout,
// without a coroutine of its own.
Lease idle_lease(const std::shared_ptr<HttpClient::Impl>& impl, Pool& pool) {
  if (impl->options.pooling)
    if (auto conn = impl->take_idle(pool)) return Lease(impl, pool, std::move(conn));
  return {};
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

int HttpClient::open_connections(const Origin& origin) const {
  auto it = impl_->pools.find(origin.key());
  return it == impl_->pools.end() ? 0 : it->second.open;
}

std::size_t HttpClient::waiting_for_connection(const Origin& origin) const {
  auto it = impl_->pools.find(origin.key());
  return it == impl_->pools.end() ? 0 : it->second.waiters.size();
}

asio::awaitable<HttpResult<HttpResponse>> HttpClient::send(Origin origin, HttpRequest request, CallMeter* meter) {
  auto impl = impl_;  // keeps the pools alive across suspensions
  if (origin.tls && !impl->tls) co_return make_error(NetErrc::invalid_url, "https needs a TLS context", true);
  const auto deadline = Clock::now() + impl->options.request_timeout;
  if (has_line_break(request.method) || has_line_break(request.target))
    co_return make_error(NetErrc::protocol_error, "invalid request line", true);
  auto& pool = impl->pool_of(origin);  // pools are never erased: the reference stays valid
  const std::string req = serialize_request(pool.fields, request, impl->options.pooling);
  for (int fresh = 0;; ++fresh) {
    Lease lease = fresh == 0 ? idle_lease(impl, pool) : Lease();
    if (!lease.conn) {
      auto made = co_await checkout(impl, &pool, origin, deadline, fresh > 0, meter);
      if (!made) co_return made.error();
      lease = std::move(*made);
    }
    auto& conn = *lease.conn;
    ResponseReader reader;
    reader.body_limit(impl->options.max_body_bytes);
    HttpResult<void> res;
    {
      Bounded bounded(conn, deadline);
      if (conn.secure) {
        res = co_await exchange_on(*conn.secure, conn, req, reader);
      } else {
        res = co_await exchange_on(*conn.plain, conn, req, reader);
      }
    }
    if (!res) {
      const bool stale = conn.reused && res.error().before_response &&
                         res.error().code == make_error_code(NetErrc::connection_closed);
      lease.give_back(false);
      // A kept-alive connection the server closed meanwhile fails before any response byte:
      // the request never arrived, so one retry on a new connection is safe.
      if (stale && fresh == 0) continue;
      co_return res.error();
    }
    HttpResponse out;
    out.status = reader.status;
    out.headers = std::move(reader.headers);
    out.body = std::move(reader.body);
    lease.give_back(reader.keep_alive());
    co_return out;
  }
}

// ---------------------------------------------------------------------------------------------

struct HttpStream::State {
  Lease lease;  // given back when the body ends, fails, or the stream is dropped
  ResponseReader parser;
  StreamLimits limits;
  Clock::time_point deadline{};  // the whole stream's
  std::size_t received = 0;      // body bytes so far
  bool done = false;

  Connection& conn() { return *lease.conn; }
  // Ends the stream with `e`; the connection is not reused.
  HttpError fail(HttpError e) {
    done = true;
    lease.give_back(false);
    return e;
  }
};

namespace {

template <class Stream>
asio::awaitable<HttpResult<std::size_t>> read_body_on(Stream& stream, HttpStream::State& s, std::string& out) {
  const std::size_t before = out.size();
  // `out` may not outlive this read, cancelled or not: the parser never keeps it.
  struct SinkScope {
    ResponseReader& reader;
    ~SinkScope() { reader.sink = &reader.body; }
  } scope{s.parser};
  s.parser.sink = &out;
  auto [read_ec, n] = co_await http::async_read_some(stream, s.conn().buffer, s.parser, k_token);
  if (const auto ec = s.conn().outcome(read_ec)) {
    if (ec == beast::error::timeout && Clock::now() >= s.deadline)
      co_return make_error(NetErrc::request_timeout, "the stream took longer than " +
                                                         std::to_string(s.limits.total_timeout.count()) + " ms in all");
    if (ec == beast::error::timeout)
      co_return make_error(NetErrc::idle_timeout,
                           "no data for " + std::to_string(s.limits.idle_timeout.count()) + " ms while streaming");
    co_return io_error(ec, true, "while streaming the response");
  }
  co_return out.size() - before;
}

template <class Stream>
asio::awaitable<HttpResult<int>> start_stream_on(Stream& stream, HttpStream::State& s,
                                                 const std::string& req) {
  std::size_t sent = 0;
  beast::error_code write_ec;
  if constexpr (std::is_same_v<Stream, tcp::socket>) {
    // Not sent when the caller was cancelled meanwhile, as an awaited write would not send it.
    const auto cancellation = co_await asio::this_coro::cancellation_state;
    if (cancellation.cancelled() == asio::cancellation_type::none) sent = write_ready(stream, req, write_ec);
  }
  if (!write_ec && sent < req.size()) std::tie(write_ec, std::ignore) = co_await asio::async_write(stream, asio::buffer(req) + sent, k_token);
  if (const auto wec = s.conn().outcome(write_ec)) co_return io_error(wec, false, "while sending the request");
  s.parser.body_limit(boost::none);  // counted by read_some against limits.max_bytes
  auto [read_ec, read] = co_await http::async_read_header(stream, s.conn().buffer, s.parser, k_token);
  if (const auto rec = s.conn().outcome(read_ec)) co_return io_error(rec, s.parser.got_some(), "while reading the response head");
  co_return 0;
}

}  // namespace

HttpStream::HttpStream(std::unique_ptr<State> state) : state_(std::move(state)) {}
HttpStream::HttpStream(HttpStream&&) noexcept = default;
HttpStream& HttpStream::operator=(HttpStream&&) noexcept = default;
HttpStream::~HttpStream() = default;

int HttpStream::status() const noexcept { return state_->parser.status; }
const std::vector<Header>& HttpStream::headers() const noexcept { return state_->parser.headers; }

asio::awaitable<HttpResult<std::size_t>> HttpStream::read_some(std::string& out) {
  auto& s = *state_;
  for (;;) {
    if (s.done || s.parser.is_done()) {
      if (!s.done) {
        s.done = true;
        s.lease.give_back(s.parser.keep_alive());
      }
      co_return std::size_t{0};
    }
    // Why both: the idle timeout alone lets a stream kept alive by comments run for ever.
    HttpResult<std::size_t> got = std::size_t{0};
    {
      Bounded bounded(s.conn(), std::min(s.deadline, Clock::now() + s.limits.idle_timeout));
      if (s.conn().secure) {
        got = co_await read_body_on(*s.conn().secure, s, out);
      } else {
        got = co_await read_body_on(*s.conn().plain, s, out);
      }
    }
    if (!got) co_return s.fail(got.error());
    s.received += *got;
    if (s.received > s.limits.max_bytes)
      co_return s.fail(make_error(NetErrc::too_large, "the streamed response exceeded " +
                                                          std::to_string(s.limits.max_bytes) + " bytes"));
    if (*got > 0) co_return got;
  }
}

asio::awaitable<HttpResult<std::string>> HttpStream::read_all(std::size_t limit) {
  std::string body;
  for (;;) {
    auto got = co_await read_some(body);
    if (!got) co_return got.error();
    if (*got == 0) co_return body;
    if (body.size() > limit)
      co_return state_->fail(make_error(NetErrc::too_large, "response body larger than " + std::to_string(limit) + " bytes"));
  }
}

asio::awaitable<HttpResult<HttpStream>> HttpClient::open_stream(Origin origin, HttpRequest request, StreamLimits limits,
                                                                CallMeter* meter) {
  auto impl = impl_;
  if (origin.tls && !impl->tls) co_return make_error(NetErrc::invalid_url, "https needs a TLS context", true);
  const auto now = Clock::now();
  const auto deadline = now + impl->options.request_timeout;
  const auto stream_deadline = now + limits.total_timeout;
  if (has_line_break(request.method) || has_line_break(request.target))
    co_return make_error(NetErrc::protocol_error, "invalid request line", true);
  auto& pool = impl->pool_of(origin);  // pools are never erased: the reference stays valid
  const std::string req = serialize_request(pool.fields, request, impl->options.pooling);
  for (int fresh = 0;; ++fresh) {
    auto lease = co_await checkout(impl, &pool, origin, deadline, fresh > 0, meter);
    if (!lease) co_return lease.error();
    auto state = std::make_unique<HttpStream::State>();
    state->lease = std::move(*lease);
    state->limits = limits;
    state->deadline = stream_deadline;
    const bool reused = state->conn().reused;
    HttpResult<int> head = 0;
    {
      Bounded bounded(state->conn(), std::min({deadline, stream_deadline, Clock::now() + limits.idle_timeout}));
      if (state->conn().secure) {
        head = co_await start_stream_on(*state->conn().secure, *state, req);
      } else {
        head = co_await start_stream_on(*state->conn().plain, *state, req);
      }
    }
    if (!head) {
      const bool stale = reused && head.error().before_response &&
                         head.error().code == make_error_code(NetErrc::connection_closed);
      if (fresh == 0 && stale) continue;  // state's lease closes the stale connection
      co_return head.error();
    }
    co_return HttpStream(std::move(state));
  }
}

// ---------------------------------------------------------------------------------------------

namespace {

// One warm-up connect into the slot `lease` already counts: the connection goes idle, or the
// slot is freed (a failure, or cancellation: the lease gives it back however the frame ends).
asio::awaitable<bool> warm_one(Lease lease, WarmSlot slot, HttpClient::Impl* impl, Origin origin,
                               Clock::time_point deadline, CallMeter* meter) {
  auto made = co_await connect(impl, origin, deadline, meter);
  slot.end();  // before the lease wakes a waiting request: it then looks at an up-to-date count
  if (!made) co_return false;
  lease.conn = std::move(*made);
  lease.give_back(true);
  co_return true;
}

}  // namespace

asio::awaitable<int> HttpClient::warm(Origin origin, int k, CallMeter* meter) {
  auto impl = impl_;
  if (!impl->options.pooling || k <= 0 || (origin.tls && !impl->tls)) co_return 0;
  auto& pool = impl->pool_of(origin);  // pools are never erased: the reference stays valid
  const int target = std::min(k, impl->options.max_connections);
  // Why max_keepalive too: a warmed connection waits idle, and one past it would be closed.
  const int missing = std::min(target - pool.open, impl->options.max_keepalive - static_cast<int>(pool.idle.size()));
  if (missing <= 0) co_return 0;
  const auto deadline = Clock::now() + impl->options.connect_timeout;
  using Connect =
      decltype(asio::co_spawn(impl->executor, warm_one({}, WarmSlot(pool), nullptr, origin, deadline, meter), asio::deferred));
  std::vector<Connect> connects;
  connects.reserve(static_cast<std::size_t>(missing));
  // Each slot is taken here, before anything suspends: requests and other warm-ups starting
  // meanwhile see them counted.
  for (int i = 0; i < missing; ++i)
    connects.push_back(
        asio::co_spawn(impl->executor, warm_one(Lease(impl, pool), WarmSlot(pool), impl.get(), origin, deadline, meter),
                       asio::deferred));
  auto [order, errors, made] = co_await asio::experimental::make_parallel_group(std::move(connects))
                                   .async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  (void)order;
  (void)errors;  // a cancelled connect ends with an exception: its lease has freed the slot
  co_return static_cast<int>(std::count(made.begin(), made.end(), true));
}

}  // namespace dagent::net
