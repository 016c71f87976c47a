#include "redis/redis_client.hpp"

#include <array>
#include <cstdlib>
#include <list>
#include <utility>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "net/tls_context.hpp"

namespace dagent::redis {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto k_token = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t k_read_chunk = 16 * 1024;

RedisError make_error(RedisErrc code, std::string message) { return RedisError{make_error_code(code), std::move(message)}; }

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// One TCP or TLS connection and its reply parser. Exactly one of the two streams is set; Beast's
// tcp_stream closes the socket when an operation's deadline passes, TLS included.
struct Connection {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<asio::ssl::stream<beast::tcp_stream>> secure;
  RespCodec codec;

  beast::tcp_stream& tcp() { return secure ? secure->next_layer() : *plain; }
  void close() {
    boost::system::error_code ignored;
    tcp().socket().close(ignored);
  }
};

}  // namespace

struct RedisClient::Impl {
  Impl(asio::any_io_executor ex, RedisOptions opt) : executor(std::move(ex)), options(std::move(opt)) {}

  asio::any_io_executor executor;
  RedisOptions options;
  std::vector<std::unique_ptr<Connection>> idle;
  int open = 0;                              // connections idle, in use, or being opened
  std::list<asio::steady_timer*> waiters;    // callers waiting for a connection, FIFO
  Clock::time_point down_until{};            // no connect before this (backoff)
  std::chrono::milliseconds backoff{0};
  std::string last_failure;                  // of the last failed connect, for `unavailable`
  Stats stats;

  void wake_first() {
    if (!waiters.empty()) waiters.front()->cancel();
  }
};

namespace {

using Impl = RedisClient::Impl;

// A connection slot held for one exchange: healthy, the connection returns to the pool; otherwise
// (a timeout, an error, a cancelled coroutine) it is closed. Either way the next waiter is woken.
class Lease {
 public:
  explicit Lease(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) { ++impl_->open; }
  Lease(std::shared_ptr<Impl> impl, std::unique_ptr<Connection> conn) : impl_(std::move(impl)), conn_(std::move(conn)) {}
  Lease(Lease&& other) noexcept : impl_(std::move(other.impl_)), conn_(std::move(other.conn_)), healthy_(other.healthy_) {}
  Lease& operator=(Lease&&) = delete;
  ~Lease() {
    if (!impl_) return;
    if (conn_ && healthy_) {
      impl_->idle.push_back(std::move(conn_));
    } else {
      if (conn_) conn_->close();
      --impl_->open;
    }
    impl_->wake_first();
  }

  Connection& conn() { return *conn_; }
  void set(std::unique_ptr<Connection> conn) { conn_ = std::move(conn); }
  void mark_healthy(bool healthy) { healthy_ = healthy; }

 private:
  std::shared_ptr<Impl> impl_;
  std::unique_ptr<Connection> conn_;
  bool healthy_ = false;
};

// A caller's place among the waiters for a connection, left on wake-up, timeout or cancellation.
class Waiting {
 public:
  Waiting(Impl& impl, asio::steady_timer& timer) : impl_(impl), self_(impl.waiters.insert(impl.waiters.end(), &timer)) {}
  ~Waiting() {
    const bool first = self_ == impl_.waiters.begin();
    impl_.waiters.erase(self_);
    // Why: a wake-up meant for this caller must not be lost when it leaves without a connection.
    if (first) impl_.wake_first();
  }
  Waiting(const Waiting&) = delete;
  Waiting& operator=(const Waiting&) = delete;

 private:
  Impl& impl_;
  std::list<asio::steady_timer*>::iterator self_;
};

RedisError classify(const boost::system::error_code& ec, Clock::time_point deadline, const std::string& what) {
  if (ec == beast::error::timeout || Clock::now() >= deadline) return make_error(RedisErrc::timeout, what + " timed out");
  if (ec == asio::error::operation_aborted) return make_error(RedisErrc::cancelled, what + " was cancelled");
  if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::ssl::error::stream_truncated ||
      ec == asio::error::broken_pipe)
    return make_error(RedisErrc::connection_closed, what + ": the server closed the connection");
  return make_error(RedisErrc::connection_closed, what + " failed: " + ec.message());
}

// Writes `request` and reads `count` replies on one stream, within `deadline`.
template <class Stream>
asio::awaitable<boost::system::result<std::vector<Reply>, RedisError>> exchange_on(Stream& stream, Connection& conn,
                                                                                  std::string request, std::size_t count,
                                                                                  Clock::time_point deadline,
                                                                                  std::string what) {
  conn.tcp().expires_at(deadline);
  auto [wec, written] = co_await asio::async_write(stream, asio::buffer(request), k_token);
  if (wec) co_return classify(wec, deadline, what);
  std::vector<Reply> replies;
  replies.reserve(count);
  std::array<char, k_read_chunk> buffer;
  while (replies.size() < count) {
    auto next = conn.codec.next();
    if (!next) co_return make_error(RedisErrc::protocol_error, what + ": " + next.error());
    if (*next) {
      replies.push_back(std::move(**next));
      continue;
    }
    auto [rec, n] = co_await stream.async_read_some(asio::buffer(buffer), k_token);
    if (rec) co_return classify(rec, deadline, what);
    conn.codec.feed(std::string_view(buffer.data(), n));
  }
  conn.tcp().expires_never();
  co_return replies;
}

asio::awaitable<boost::system::result<std::vector<Reply>, RedisError>> exchange(Connection& conn, std::string request,
                                                                               std::size_t count,
                                                                               Clock::time_point deadline,
                                                                               std::string what) {
  if (conn.secure) co_return co_await exchange_on(*conn.secure, conn, std::move(request), count, deadline, std::move(what));
  co_return co_await exchange_on(*conn.plain, conn, std::move(request), count, deadline, std::move(what));
}

// Opens, secures and authenticates one connection within the connect timeout.
asio::awaitable<boost::system::result<std::unique_ptr<Connection>, RedisError>> open_connection(std::shared_ptr<Impl> impl) {
  const RedisOptions& o = impl->options;
  const std::string where = o.endpoint.key();
  const auto deadline = Clock::now() + o.connect_timeout;
  tcp::resolver resolver(impl->executor);
  auto [rec, endpoints] = co_await resolver.async_resolve(o.endpoint.host, o.endpoint.port, k_token);
  if (rec) co_return make_error(RedisErrc::connect_failed, "cannot resolve " + where + ": " + rec.message());
  auto conn = std::make_unique<Connection>();
  if (o.endpoint.tls) conn->secure = std::make_unique<asio::ssl::stream<beast::tcp_stream>>(impl->executor, o.tls->native());
  else conn->plain = std::make_unique<beast::tcp_stream>(impl->executor);
  conn->tcp().expires_at(deadline);
  auto [cec, ep] = co_await conn->tcp().async_connect(endpoints, k_token);
  if (cec) {
    if (cec == beast::error::timeout) co_return make_error(RedisErrc::connect_timeout, "connecting to " + where + " timed out");
    co_return make_error(RedisErrc::connect_failed, "cannot connect to " + where + ": " + cec.message());
  }
  boost::system::error_code option_ec;
  conn->tcp().socket().set_option(tcp::no_delay(true), option_ec);
  if (conn->secure) {
    SSL* ssl = conn->secure->native_handle();
    // As for the model's connection: the certificate is always checked against the host.
    if (is_ip_literal(o.endpoint.host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), o.endpoint.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, o.endpoint.host.c_str());
      SSL_set1_host(ssl, o.endpoint.host.c_str());
    }
    SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
    auto [hec] = co_await conn->secure->async_handshake(asio::ssl::stream_base::client, k_token);
    if (hec) {
      const std::string with = "TLS handshake with " + where;
      if (const long verify = SSL_get_verify_result(ssl); verify != X509_V_OK)
        co_return make_error(RedisErrc::connect_failed, with + " failed: " + X509_verify_cert_error_string(verify));
      if (hec == beast::error::timeout) co_return make_error(RedisErrc::connect_timeout, with + " timed out");
      co_return make_error(RedisErrc::connect_failed, with + " failed: " + hec.message());
    }
  }
  std::string setup;
  std::size_t count = 0;
  if (!o.password.empty()) {
    RespCodec::format({"AUTH", o.password}, setup);
    ++count;
  }
  if (o.endpoint.db != 0) {
    RespCodec::format({"SELECT", std::to_string(o.endpoint.db)}, setup);
    ++count;
  }
  if (count > 0) {
    auto replies = co_await exchange(*conn, std::move(setup), count, deadline, "connecting to " + where);
    if (!replies) {
      if (replies.error().code == RedisErrc::timeout)
        co_return make_error(RedisErrc::connect_timeout, "connecting to " + where + " timed out");
      co_return replies.error();
    }
    for (const Reply& r : *replies) {
      // Why not r.str: the server's text is untrusted, and our message says all that matters.
      if (r.is_error()) {
        const bool auth = !o.password.empty() && &r == &replies->front();
        co_return make_error(RedisErrc::auth_failed, where + " refused " +
                                                         (auth ? std::string("AUTH (wrong password in redis.password_env?)")
                                                               : "SELECT " + std::to_string(o.endpoint.db)));
      }
    }
  }
  co_return std::move(conn);
}

void note_connect_failure(Impl& impl, const RedisError& error) {
  ++impl.stats.connect_failures;
  impl.backoff = impl.backoff.count() == 0 ? impl.options.backoff_min
                                           : std::min(impl.backoff * 2, impl.options.backoff_max);
  impl.down_until = Clock::now() + impl.backoff;
  impl.last_failure = error.message;
}

// A connection for one exchange: an idle one, a new one while the pool has room, or the next
// one returned, in FIFO order, until `deadline`.
asio::awaitable<boost::system::result<Lease, RedisError>> checkout(std::shared_ptr<Impl> impl, Clock::time_point deadline) {
  for (;;) {
    if (!impl->idle.empty()) {
      auto conn = std::move(impl->idle.back());
      impl->idle.pop_back();
      co_return Lease(impl, std::move(conn));
    }
    if (impl->open < impl->options.pool_size) {
      const auto now = Clock::now();
      if (now < impl->down_until) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(impl->down_until - now);
        co_return make_error(RedisErrc::unavailable, impl->last_failure + "; next attempt in " +
                                                          std::to_string(left.count()) + " ms");
      }
      Lease lease(impl);
      auto made = co_await open_connection(impl);
      if (!made) {
        // Why: a cancelled caller says nothing about the server.
        if (made.error().code != RedisErrc::cancelled) note_connect_failure(*impl, made.error());
        co_return made.error();
      }
      ++impl->stats.connects;
      impl->backoff = std::chrono::milliseconds(0);
      lease.set(std::move(*made));
      co_return std::move(lease);
    }
    asio::steady_timer timer(impl->executor, deadline);
    Waiting waiting(*impl, timer);
    auto [ec] = co_await timer.async_wait(k_token);
    if (!ec) {
      ++impl->stats.timeouts;
      co_return make_error(RedisErrc::timeout, "waiting for a connection to " + impl->options.endpoint.key() + " timed out");
    }
    const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none)
      co_return make_error(RedisErrc::cancelled, "cancelled while waiting for a connection");
  }
}

asio::awaitable<boost::system::result<std::vector<Reply>, RedisError>> run_pipeline(std::shared_ptr<Impl> impl,
                                                                                   std::vector<Command> commands,
                                                                                   std::chrono::milliseconds timeout) {
  if (commands.empty()) co_return std::vector<Reply>{};
  const auto deadline = Clock::now() + timeout;
  auto lease = co_await checkout(impl, deadline);
  if (!lease) co_return lease.error();
  std::string request;
  for (const Command& c : commands) RespCodec::format(c, request);
  impl->stats.commands += commands.size();
  auto replies = co_await exchange(lease->conn(), std::move(request), commands.size(), deadline,
                                   commands.front().front() + " on " + impl->options.endpoint.key());
  if (!replies && replies.error().code == RedisErrc::timeout) ++impl->stats.timeouts;
  lease->mark_healthy(replies.has_value());
  co_return replies;
}

asio::awaitable<boost::system::result<Reply, RedisError>> run_command(std::shared_ptr<Impl> impl, Command args,
                                                                     std::chrono::milliseconds timeout) {
  std::vector<Command> one;
  one.push_back(std::move(args));
  auto replies = co_await run_pipeline(std::move(impl), std::move(one), timeout);
  if (!replies) co_return replies.error();
  co_return std::move(replies->front());
}

}  // namespace

boost::system::result<RedisOptions, RedisError> RedisOptions::from(const config::RedisConfig& cfg,
                                                                   const std::filesystem::path& base_dir) {
  RedisOptions o;
  auto endpoint = parse_redis_url(cfg.url);
  if (!endpoint) return make_error(RedisErrc::invalid_url, "redis.url: " + endpoint.error());
  o.endpoint = std::move(*endpoint);
  if (!cfg.password_env.empty()) {
    const char* value = std::getenv(cfg.password_env.c_str());
    if (value == nullptr || *value == '\0')
      return make_error(RedisErrc::no_password, "the environment variable " + cfg.password_env +
                                                     " (redis.password_env) is not set");
    o.password = value;
  }
  if (o.endpoint.tls) {
    auto tls = net::TlsContext::create(cfg.ca_file.empty() ? "" : (base_dir / cfg.ca_file).string(), "redis.ca_file");
    if (!tls) return make_error(RedisErrc::connect_failed, tls.error());
    o.tls = std::move(*tls);
  }
  o.timeout = std::chrono::milliseconds(cfg.timeout_ms);
  o.connect_timeout = std::chrono::milliseconds(cfg.connect_timeout_ms);
  o.pool_size = cfg.pool_size;
  return o;
}

RedisClient::RedisClient(asio::any_io_executor executor, RedisOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {}

RedisClient::~RedisClient() = default;

asio::awaitable<boost::system::result<Reply, RedisError>> RedisClient::command(Command args) {
  return run_command(impl_, std::move(args), impl_->options.timeout);
}

asio::awaitable<boost::system::result<Reply, RedisError>> RedisClient::command(Command args,
                                                                              std::chrono::milliseconds timeout) {
  return run_command(impl_, std::move(args), timeout);
}

asio::awaitable<boost::system::result<std::vector<Reply>, RedisError>> RedisClient::pipeline(std::vector<Command> commands) {
  return run_pipeline(impl_, std::move(commands), impl_->options.timeout);
}

RedisClient::Stats RedisClient::stats() const noexcept { return impl_->stats; }
int RedisClient::open_connections() const noexcept { return impl_->open; }
const RedisEndpoint& RedisClient::endpoint() const noexcept { return impl_->options.endpoint; }

}  // namespace dagent::redis
