#include "redis/redis_client.hpp"

#include <array>
#include <cstdlib>
#include <deque>
#include <optional>
#include <utility>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
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

  // One write's callers on its connection: when every one of them has left, nobody waits for
  // the replies (a cancelled XREAD BLOCK, say), so the connection is closed instead of read.
  struct Flight {
    Connection* conn = nullptr;  // null once the exchange is over
    std::size_t live = 0;        // callers of the write still waiting
  };

  // One caller's commands, waiting to be sent or for their replies.
  struct Pending {
    Pending(asio::any_io_executor ex, Clock::time_point d) : deadline(d), timer(std::move(ex), d) {}
    std::string request;  // the commands, formatted
    std::size_t count = 0;
    std::string what;     // "EVAL on host:port", for errors
    Clock::time_point deadline;
    asio::steady_timer timer;  // the caller waits here; cancelled when the outcome is in
    std::optional<boost::system::result<std::vector<Reply>, RedisError>> outcome;
    bool taken = false;      // a connection carries it: it may reach the server
    bool abandoned = false;  // the caller left (its deadline, or cancelled): not sent, if not yet taken
    std::shared_ptr<Flight> flight;  // set when taken
  };

  asio::any_io_executor executor;
  RedisOptions options;
  std::vector<std::unique_ptr<Connection>> idle;
  int open = 0;                               // connections idle, carrying commands, or being opened
  bool starting = false;                      // a carrier was started and has not run yet: it takes the queue
  std::deque<std::shared_ptr<Pending>> queue; // commands waiting for a connection, FIFO
  Clock::time_point down_until{};             // no connect before this (backoff)
  std::chrono::milliseconds backoff{0};
  std::string last_failure;                   // of the last failed connect, for `unavailable`
  Stats stats;
};

namespace {

using Impl = RedisClient::Impl;
using Pending = Impl::Pending;
using Outcome = boost::system::result<std::vector<Reply>, RedisError>;

RedisError classify(const boost::system::error_code& ec, Clock::time_point deadline, const std::string& what) {
  if (ec == beast::error::timeout || Clock::now() >= deadline) return make_error(RedisErrc::timeout, what + " timed out");
  if (ec == asio::error::operation_aborted) return make_error(RedisErrc::cancelled, what + " was cancelled");
  if (ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::ssl::error::stream_truncated ||
      ec == asio::error::broken_pipe)
    return make_error(RedisErrc::connection_closed, what + ": the server closed the connection");
  return make_error(RedisErrc::connection_closed, what + " failed: " + ec.message());
}

// How an exchange failed: a transport error (classified per caller) or a protocol error.
struct ExchangeFailure {
  boost::system::error_code ec;
  std::string protocol;  // set: the bytes were not RESP
};

// Writes `request` and reads `count` replies on one stream, within `deadline`.
template <class Stream, class Buffers>
asio::awaitable<boost::system::result<std::vector<Reply>, ExchangeFailure>> exchange_on(Stream& stream, Connection& conn,
                                                                                       const Buffers& request,
                                                                                       std::size_t count,
                                                                                       Clock::time_point deadline) {
  conn.tcp().expires_at(deadline);
  auto [wec, written] = co_await asio::async_write(stream, request, k_token);
  if (wec) co_return ExchangeFailure{wec, {}};
  std::vector<Reply> replies;
  replies.reserve(count);
  std::array<char, k_read_chunk> buffer;
  while (replies.size() < count) {
    auto next = conn.codec.next();
    if (!next) co_return ExchangeFailure{{}, next.error()};
    if (*next) {
      replies.push_back(std::move(**next));
      continue;
    }
    auto [rec, n] = co_await stream.async_read_some(asio::buffer(buffer), k_token);
    if (rec) co_return ExchangeFailure{rec, {}};
    conn.codec.feed(std::string_view(buffer.data(), n));
  }
  conn.tcp().expires_never();
  co_return replies;
}

template <class Buffers>
asio::awaitable<boost::system::result<std::vector<Reply>, ExchangeFailure>> exchange(Connection& conn, const Buffers& request,
                                                                                    std::size_t count,
                                                                                    Clock::time_point deadline) {
  if (conn.secure) co_return co_await exchange_on(*conn.secure, conn, request, count, deadline);
  co_return co_await exchange_on(*conn.plain, conn, request, count, deadline);
}

RedisError error_of(const ExchangeFailure& f, Clock::time_point deadline, const std::string& what) {
  if (!f.protocol.empty()) return make_error(RedisErrc::protocol_error, what + ": " + f.protocol);
  return classify(f.ec, deadline, what);
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
    auto replies = co_await exchange(*conn, asio::buffer(setup), count, deadline);
    if (!replies) {
      RedisError error = error_of(replies.error(), deadline, "connecting to " + where);
      if (error.code == RedisErrc::timeout) co_return make_error(RedisErrc::connect_timeout, "connecting to " + where + " timed out");
      co_return error;
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

void deliver(Pending& p, Outcome outcome) {
  p.outcome = std::move(outcome);
  p.timer.cancel();
}

// The commands sent in one write; at most this many, so one slow batch holds few callers.
constexpr std::size_t k_batch_commands = 1024;

// Takes the callers waiting at the front of the queue (their commands go in one write).
std::vector<std::shared_ptr<Pending>> take_batch(Impl& impl) {
  std::vector<std::shared_ptr<Pending>> batch;
  std::size_t commands = 0;
  while (!impl.queue.empty()) {
    auto& front = impl.queue.front();
    if (front->abandoned) {
      impl.queue.pop_front();
      continue;
    }
    if (!batch.empty() && commands + front->count > k_batch_commands) break;
    commands += front->count;
    front->taken = true;
    batch.push_back(std::move(front));
    impl.queue.pop_front();
  }
  return batch;
}

bool has_waiting(Impl& impl) {
  while (!impl.queue.empty() && impl.queue.front()->abandoned) impl.queue.pop_front();
  return !impl.queue.empty();
}

void fail_waiting(Impl& impl, const RedisError& error) {
  for (auto& p : impl.queue)
    if (!p->abandoned) deliver(*p, error);
  impl.queue.clear();
}

asio::awaitable<void> carry(std::shared_ptr<Impl> impl, std::unique_ptr<Connection> conn);

// Starts a carrier for the waiting commands when none is about to take them and a connection
// is idle or may be opened. During a connect backoff with no connection open, they fail at once.
void kick(const std::shared_ptr<Impl>& impl) {
  if (impl->starting || !has_waiting(*impl)) return;
  std::unique_ptr<Connection> conn;
  if (!impl->idle.empty()) {
    conn = std::move(impl->idle.back());
    impl->idle.pop_back();
  } else if (impl->open < impl->options.pool_size) {
    const auto now = Clock::now();
    if (now < impl->down_until) {
      if (impl->open > 0) return;  // the connections carrying commands take these next
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(impl->down_until - now);
      fail_waiting(*impl, make_error(RedisErrc::unavailable,
                                     impl->last_failure + "; next attempt in " + std::to_string(left.count()) + " ms"));
      return;
    }
    ++impl->open;  // the carrier opens it
  } else {
    return;  // every connection is carrying commands: the first to finish takes these
  }
  impl->starting = true;
  asio::co_spawn(impl->executor, carry(impl, std::move(conn)), asio::detached);
}

// Carries the queue's commands over one connection (opened first when `conn` is null): each
// round takes every caller waiting (up to k_batch_commands) and sends their commands in one
// write, so commands issued while the connections are busy share round trips (pipelining that
// callers need not arrange). Detached from the callers: one caller cancelled or past its deadline
// leaves the others' commands and the connection alone; when all of a write's callers have left,
// the connection is closed rather than waited on. It goes back to the pool when the queue is
// empty, and is closed after a failed exchange (its replies would be out of step).
asio::awaitable<void> carry(std::shared_ptr<Impl> impl, std::unique_ptr<Connection> conn) {
  // co_spawn may start this inline, in the middle of the caller that kicked it; after one turn of
  // the loop, the commands issued in that turn are all waiting and go in this first write.
  (void)co_await asio::post(impl->executor, k_token);
  // From here commands that come in may start another carrier: one opening a connection must not
  // hold them back from a connection that turns idle meanwhile.
  impl->starting = false;
  if (!conn) {
    auto made = co_await open_connection(impl);
    if (!made) {
      --impl->open;
      note_connect_failure(*impl, made.error());
      if (impl->open == 0) fail_waiting(*impl, made.error());
      else kick(impl);  // an idle connection takes them, or a busy one when it is done
      co_return;
    }
    ++impl->stats.connects;
    impl->backoff = std::chrono::milliseconds(0);
    conn = std::move(*made);
  }
  std::vector<asio::const_buffer> buffers;
  for (;;) {
    auto batch = take_batch(*impl);
    if (batch.empty()) {
      impl->idle.push_back(std::move(conn));
      co_return;
    }
    kick(impl);  // what is left (a batch at its cap) goes on another connection
    buffers.clear();
    std::size_t count = 0;
    Clock::time_point deadline{};
    for (const auto& p : batch) {
      buffers.push_back(asio::buffer(p->request));
      count += p->count;
      deadline = std::max(deadline, p->deadline);
    }
    impl->stats.commands += count;
    ++impl->stats.writes;
    auto flight = std::make_shared<Impl::Flight>(Impl::Flight{conn.get(), batch.size()});
    for (const auto& p : batch) p->flight = flight;
    auto replies = co_await exchange(*conn, buffers, count, deadline);
    flight->conn = nullptr;
    if (!replies) {
      conn->close();
      --impl->open;
      for (const auto& p : batch) {
        if (p->abandoned) continue;
        RedisError error = error_of(replies.error(), p->deadline, p->what);
        if (error.code == RedisErrc::timeout) ++impl->stats.timeouts;
        deliver(*p, std::move(error));
      }
      kick(impl);
      co_return;
    }
    auto next = std::make_move_iterator(replies->begin());
    for (const auto& p : batch) {
      std::vector<Reply> own(next, next + static_cast<std::ptrdiff_t>(p->count));
      next += static_cast<std::ptrdiff_t>(p->count);
      if (!p->abandoned) deliver(*p, std::move(own));
    }
  }
}

asio::awaitable<Outcome> run_pipeline(std::shared_ptr<Impl> impl, std::vector<Command> commands,
                                      std::chrono::milliseconds timeout) {
  if (commands.empty()) co_return std::vector<Reply>{};
  const auto now = Clock::now();
  if (impl->open == 0 && now < impl->down_until) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(impl->down_until - now);
    co_return make_error(RedisErrc::unavailable, impl->last_failure + "; next attempt in " + std::to_string(left.count()) + " ms");
  }
  auto pending = std::make_shared<Pending>(impl->executor, now + timeout);
  for (const Command& c : commands) RespCodec::format(c, pending->request);
  pending->count = commands.size();
  pending->what = commands.front().front() + " on " + impl->options.endpoint.key();
  impl->queue.push_back(pending);
  kick(impl);
  if (!pending->outcome) (void)co_await pending->timer.async_wait(k_token);
  if (pending->outcome) co_return std::move(*pending->outcome);
  pending->abandoned = true;
  if (const auto& flight = pending->flight; flight && --flight->live == 0 && flight->conn) flight->conn->close();
  const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
  if (state.cancelled() != asio::cancellation_type::none)
    co_return make_error(RedisErrc::cancelled, pending->what + " was cancelled");
  ++impl->stats.timeouts;
  if (!pending->taken)
    co_return make_error(RedisErrc::timeout, "waiting for a connection to " + impl->options.endpoint.key() + " timed out");
  co_return make_error(RedisErrc::timeout, pending->what + " timed out");
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
