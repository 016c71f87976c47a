#include "server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <array>
#include <csignal>
#include <exception>
#include <iostream>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

namespace dagent::test_server {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

// Every I/O object completes with a tuple (error_code first): EOF, timeouts and cancellation
// are values to branch on, not exceptions.
using Token = net::as_tuple_t<net::use_awaitable_t<>>;
using Executor = Token::executor_with_default<net::any_io_executor>;
using TcpStream = beast::tcp_stream::rebind_executor<Executor>::other;
using TlsStream = beast::ssl_stream<TcpStream>;
using Acceptor = Token::as_default_on_t<tcp::acceptor>;
using Timer = Token::as_default_on_t<net::steady_timer>;
using SignalSet = Token::as_default_on_t<net::signal_set>;

constexpr auto k_idle_timeout = std::chrono::seconds(300);
constexpr auto k_io_timeout = std::chrono::seconds(30);
constexpr auto k_handshake_timeout = std::chrono::seconds(10);
constexpr auto k_tls_shutdown_timeout = std::chrono::seconds(1);
constexpr auto k_stall_limit = std::chrono::hours(1);
constexpr auto k_ping_limit = std::chrono::seconds(60);
constexpr auto k_hold_limit = std::chrono::seconds(20);
constexpr std::uint64_t k_request_body_limit = 64ull * 1024 * 1024;

/// What happens to the connection after a reply.
enum class After {
  keep_open,
  close_gracefully,  // TLS close_notify, or a TCP FIN
  drop,              // a TCP FIN without TLS close_notify: the peer learns only when it next uses it
  closed,            // already closed or broken: nothing more to send
};

struct Delivery {
  unsigned status_sent = 0;
  After after = After::closed;
};

template <class Stream>
TcpStream& tcp_of(Stream& stream) {
  return beast::get_lowest_layer(stream);
}

net::awaitable<void> sleep_for(std::chrono::milliseconds duration) {
  if (duration.count() <= 0) co_return;
  auto executor = co_await net::this_coro::executor;
  Timer timer(executor);
  timer.expires_after(duration);
  auto [ec] = co_await timer.async_wait();
  (void)ec;  // cancelled only when the server stops
}

/// SO_LINGER 0 then close: the peer gets a RST instead of an orderly FIN.
void abort_connection(TcpStream& tcp) {
  boost::system::error_code ignored;
  tcp.socket().set_option(net::socket_base::linger(true, 0), ignored);
  tcp.close();
}

void drop_connection(TcpStream& tcp) {
  boost::system::error_code ignored;
  tcp.socket().shutdown(tcp::socket::shutdown_both, ignored);
  tcp.close();
}

/// Reads and discards until the peer closes: a stall that holds no timer of its own beyond the
/// stream's and ends as soon as the client gives up.
template <class Stream>
net::awaitable<void> wait_for_peer_close(Stream& stream) {
  tcp_of(stream).expires_after(k_stall_limit);
  std::array<char, 4096> sink;
  for (;;) {
    auto [ec, n] = co_await stream.async_read_some(net::buffer(sink));
    if (ec) co_return;
  }
}

template <class Body>
void set_headers(http::response<Body>& response, const Reply& reply, bool keep_alive) {
  response.result(reply.status);
  response.version(11);
  response.set(http::field::server, "dagent-openai-test-server");
  response.set(http::field::content_type, reply.content_type);
  for (const auto& [name, value] : reply.headers) response.set(name, value);
  response.keep_alive(keep_alive);
}

After after_success(const Reply& reply, bool keep_alive) {
  if (reply.fault == Fault::close_after_response) return After::drop;
  return keep_alive ? After::keep_open : After::close_gracefully;
}

template <class Stream>
net::awaitable<Delivery> write_whole_reply(Stream& stream, const Reply& reply, bool keep_alive) {
  http::response<http::string_body> response;
  set_headers(response, reply, keep_alive);
  response.body() = reply.body;
  response.prepare_payload();
  tcp_of(stream).expires_after(k_io_timeout);

  if (reply.fault == Fault::truncate) {
    // Declare the whole body (at least one byte), send half of it, close: a short read.
    response.content_length(std::max<std::size_t>(reply.body.size(), 1));
    http::response_serializer<http::string_body> serializer{response};
    auto [ec, n] = co_await http::async_write_header(stream, serializer);
    if (ec) co_return Delivery{0, After::closed};
    auto half = net::buffer(reply.body.data(), reply.body.size() / 2);
    auto [body_ec, body_n] = co_await net::async_write(stream, half);
    co_return Delivery{reply.status, body_ec ? After::closed : After::drop};
  }

  auto [ec, n] = co_await http::async_write(stream, response);
  if (ec) co_return Delivery{0, After::closed};
  co_return Delivery{reply.status, after_success(reply, keep_alive)};
}

/// A stream kept alive by comments and nothing else: `: ping` every stream_interval (20 ms when
/// unset) until the peer goes away, or k_ping_limit.
template <class Stream>
net::awaitable<Delivery> ping_until_closed(Stream& stream, const Reply& reply) {
  static const std::string k_ping = ": ping\n\n";
  const auto interval = reply.stream_interval.count() > 0 ? reply.stream_interval : std::chrono::milliseconds(20);
  const auto until = std::chrono::steady_clock::now() + k_ping_limit;
  while (std::chrono::steady_clock::now() < until) {
    co_await sleep_for(interval);
    auto chunk = http::make_chunk(net::buffer(k_ping));
    tcp_of(stream).expires_after(k_io_timeout);
    auto [ec, n] = co_await net::async_write(stream, chunk);
    if (ec) break;
  }
  co_return Delivery{reply.status, After::closed};
}

/// Headers, then one chunk per SSE event with `stream_interval` between them, then the last chunk.
template <class Stream>
net::awaitable<Delivery> write_event_stream(Stream& stream, const Reply& reply, bool keep_alive) {
  http::response<http::empty_body> response;
  set_headers(response, reply, keep_alive);
  response.chunked(true);
  http::response_serializer<http::empty_body> serializer{response};
  tcp_of(stream).expires_after(k_io_timeout);
  auto [ec, n] = co_await http::async_write_header(stream, serializer);
  if (ec) co_return Delivery{0, After::closed};

  std::size_t count = reply.events.size();
  // A truncated stream stops well before [DONE] (always the last event).
  if (reply.fault == Fault::truncate) count = std::max<std::size_t>(1, (count - 1) / 2);
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) co_await sleep_for(reply.stream_interval);
    auto chunk = http::make_chunk(net::buffer(reply.events[i]));
    tcp_of(stream).expires_after(k_io_timeout);
    auto [chunk_ec, chunk_n] = co_await net::async_write(stream, chunk);
    if (chunk_ec) co_return Delivery{reply.status, After::closed};
    if (reply.fault == Fault::stall) {
      co_await wait_for_peer_close(stream);
      co_return Delivery{reply.status, After::closed};
    }
    if (reply.fault == Fault::ping) co_return co_await ping_until_closed(stream, reply);
  }
  if (reply.fault == Fault::truncate) co_return Delivery{reply.status, After::drop};

  auto last = http::make_chunk_last();
  tcp_of(stream).expires_after(k_io_timeout);
  auto [last_ec, last_n] = co_await net::async_write(stream, last);
  if (last_ec) co_return Delivery{reply.status, After::closed};
  co_return Delivery{reply.status, after_success(reply, keep_alive)};
}

/// Waits until the reply's hold_until is met (at most k_hold_limit). The session runs on its own
/// strand and the waker posts the cancel there, so a wake that comes before async_wait starts
/// still ends it.
net::awaitable<bool> wait_for_hold(ServerState& state, const Reply& reply) {
  auto timer = std::make_shared<Timer>(co_await net::this_coro::executor, k_hold_limit);
  std::weak_ptr<Timer> weak = timer;
  auto wake = [weak] {
    if (auto t = weak.lock()) net::post(t->get_executor(), [weak] {
        if (auto held = weak.lock()) held->cancel();
      });
  };
  if (state.hold(reply, wake)) co_return true;
  auto [ec] = co_await timer->async_wait();
  co_return ec == net::error::operation_aborted;  // cancelled: the hold is met; otherwise it expired
}

template <class Stream>
net::awaitable<Delivery> deliver(Stream& stream, ServerState& state, const Reply& reply, bool keep_alive) {
  if (reply.held && !co_await wait_for_hold(state, reply)) {
    // A hold that never met its request is a broken test: it fails loudly instead of passing late.
    Reply expired;
    expired.status = 500;
    expired.record = reply.record;
    expired.body = R"({"error":{"message":"test server: hold_until not met within 20 s","type":"server_error"}})";
    co_return co_await write_whole_reply(stream, expired, keep_alive);
  }
  co_await sleep_for(reply.latency);
  if (reply.fault == Fault::reset) {
    abort_connection(tcp_of(stream));
    co_return Delivery{0, After::closed};
  }
  if (reply.fault == Fault::stall && reply.events.empty()) {
    co_await wait_for_peer_close(stream);
    co_return Delivery{0, After::closed};
  }
  if (!reply.events.empty()) co_return co_await write_event_stream(stream, reply, keep_alive);
  co_return co_await write_whole_reply(stream, reply, keep_alive);
}

IncomingRequest to_incoming(const http::request<http::string_body>& request) {
  IncomingRequest incoming;
  incoming.method = std::string(request.method_string());
  incoming.target = std::string(request.target());
  for (const auto& field : request) incoming.headers.emplace_back(field.name_string(), field.value());
  incoming.body = request.body();
  return incoming;
}

/// HTTP/1.1 keep-alive loop: read a request (Content-Length or chunked), answer, repeat.
template <class Stream>
net::awaitable<After> serve_requests(Stream& stream, ServerState& state, ConnectionInfo& connection) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(k_request_body_limit);
    tcp_of(stream).expires_after(k_idle_timeout);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser);
    if (ec) co_return After::closed;  // EOF, reset, idle timeout or a malformed request

    const bool keep_alive = parser.get().keep_alive();
    const IncomingRequest incoming = to_incoming(parser.get());
    const Reply reply = state.respond(connection, incoming);
    const Delivery delivery = co_await deliver(stream, state, reply, keep_alive);
    state.request_finished(reply, delivery.status_sent);
    if (delivery.after != After::keep_open) co_return delivery.after;
  }
}

template <class Stream>
net::awaitable<void> finish_connection(Stream& stream, After after) {
  if (after == After::drop) {
    drop_connection(tcp_of(stream));
  } else if (after == After::close_gracefully) {
    if constexpr (std::is_same_v<Stream, TlsStream>) {
      tcp_of(stream).expires_after(k_tls_shutdown_timeout);
      auto [ec] = co_await stream.async_shutdown();
      (void)ec;  // most clients close without answering close_notify
    } else {
      boost::system::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }
}

/// Reports the end of a connection to the stats however its session ends.
class ConnectionGuard {
 public:
  ConnectionGuard(ServerState& state, std::uint64_t id) : state_(state) {
    info.id = id;
    info.accepted = std::chrono::steady_clock::now();
  }
  ~ConnectionGuard() { state_.connection_closed(info); }
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;

  ConnectionInfo info;

 private:
  ServerState& state_;
};

net::awaitable<void> run_plain_session(TcpStream stream, ServerState& state, std::uint64_t id,
                                       std::chrono::milliseconds connect_delay) {
  ConnectionGuard guard(state, id);
  co_await sleep_for(connect_delay);
  const After after = co_await serve_requests(stream, state, guard.info);
  co_await finish_connection(stream, after);
}

net::awaitable<void> run_tls_session(TlsStream stream, ServerState& state, std::uint64_t id,
                                     std::chrono::milliseconds connect_delay) {
  ConnectionGuard guard(state, id);
  co_await sleep_for(connect_delay);  // before the ClientHello is read: the handshake waits too
  if (const Fault fault = state.take_handshake_fault(); fault != Fault::none) {
    state.tls_handshake(guard.info, false);
    if (fault == Fault::stall) {
      co_await wait_for_peer_close(tcp_of(stream));
      co_return;
    }
    // Reset once the ClientHello is in: the client is mid-handshake when the RST arrives.
    std::array<char, 4096> hello;
    tcp_of(stream).expires_after(k_handshake_timeout);
    auto [ec, n] = co_await tcp_of(stream).async_read_some(net::buffer(hello));
    (void)ec;  // read or not, the client gets a RST
    (void)n;
    abort_connection(tcp_of(stream));
    co_return;
  }
  tcp_of(stream).expires_after(k_handshake_timeout);
  auto [ec] = co_await stream.async_handshake(ssl::stream_base::server);
  state.tls_handshake(guard.info, !ec);
  if (ec) co_return;  // e.g. the client rejected our certificate: counted, not logged
  const After after = co_await serve_requests(stream, state, guard.info);
  co_await finish_connection(stream, after);
}

/// Completion handler of the server's coroutines: expected failures are values inside them, so
/// an exception here is a bug worth printing.
struct LogFailure {
  std::string what;
  void operator()(std::exception_ptr error) const {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      std::cerr << "openai_test_server: " << what << ": " << e.what() << std::endl;
    } catch (...) {
      std::cerr << "openai_test_server: " << what << ": unknown exception" << std::endl;
    }
  }
};

net::awaitable<void> accept_connections(Acceptor& acceptor, net::io_context& io, ServerState& state,
                                        ssl::context* tls, std::chrono::milliseconds connect_delay) {
  for (;;) {
    // One strand per connection: with --threads N a session's handlers never run concurrently.
    auto strand = net::make_strand(io);
    auto [ec, socket] = co_await acceptor.async_accept(strand);
    if (ec == net::error::operation_aborted) co_return;
    if (ec) {  // e.g. out of file descriptors: keep serving once some close
      std::cerr << "openai_test_server: accept: " << ec.message() << std::endl;
      co_await sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    // As real servers do: without it a streamed event waits for the client's delayed ACK (Nagle),
    // some 40 ms per streamed reply on loopback.
    boost::system::error_code nodelay_ec;
    socket.set_option(tcp::no_delay(true), nodelay_ec);
    const std::uint64_t id = state.connection_opened();
    if (tls) {
      TlsStream stream(std::move(socket), *tls);
      auto executor = stream.get_executor();
      net::co_spawn(executor, run_tls_session(std::move(stream), state, id, connect_delay),
                    LogFailure{"tls session " + std::to_string(id)});
    } else {
      TcpStream stream(std::move(socket));
      auto executor = stream.get_executor();
      net::co_spawn(executor, run_plain_session(std::move(stream), state, id, connect_delay),
                    LogFailure{"session " + std::to_string(id)});
    }
  }
}

net::awaitable<void> stop_on_signal(SignalSet& signals, net::io_context& io) {
  auto [ec, signal] = co_await signals.async_wait();
  (void)signal;
  if (!ec) io.stop();  // open sessions are destroyed with the io_context
}

}  // namespace

int run_server(ServerOptions options) {
  ServerState state(std::move(options.config));

  std::optional<ssl::context> tls;
  if (options.tls) {
    tls.emplace(ssl::context::tls_server);
    tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    tls->use_certificate_chain_file(options.tls->certificate_chain, ec);
    if (!ec) tls->use_private_key_file(options.tls->private_key, ssl::context::pem, ec);
    if (ec) {
      std::cerr << "openai_test_server: cannot load TLS certificate or key: " << ec.message() << std::endl;
      return 1;
    }
  }

  const int threads = std::max(1, options.threads);
  net::io_context io(threads);
  Acceptor acceptor(io);
  const tcp::endpoint endpoint(net::ip::make_address_v4("127.0.0.1"), options.port);
  boost::system::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    std::cerr << "openai_test_server: cannot listen on 127.0.0.1:" << options.port << ": " << ec.message()
              << std::endl;
    return 1;
  }
  std::cout << "listening on 127.0.0.1:" << acceptor.local_endpoint().port() << std::endl;

  SignalSet signals(io, SIGINT, SIGTERM);
  net::co_spawn(io, accept_connections(acceptor, io, state, tls ? &*tls : nullptr, options.connect_delay), LogFailure{"accept loop"});
  net::co_spawn(io, stop_on_signal(signals, io), LogFailure{"signal handler"});

  std::vector<std::thread> workers;
  for (int i = 1; i < threads; ++i) workers.emplace_back([&io] { io.run(); });
  io.run();
  for (std::thread& worker : workers) worker.join();
  return 0;
}

}  // namespace dagent::test_server
