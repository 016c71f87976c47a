#include "serve/http_server.hpp"

#include <array>
#include <chrono>
#include <exception>
#include <iostream>
#include <map>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>

#include "report/report.hpp"
#include "serve/reply.hpp"
#include "serve/route.hpp"
#include "serve/run_events.hpp"
#include "serve/service.hpp"

namespace dagent::serve {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

// Expected conditions (EOF, timeouts, cancellation) are values: every I/O object completes with a
// tuple whose first element is the error code.
using Token = net::as_tuple_t<net::use_awaitable_t<>>;
using Executor = Token::executor_with_default<net::any_io_executor>;
using TcpStream = beast::tcp_stream::rebind_executor<Executor>::other;
using Acceptor = Token::as_default_on_t<tcp::acceptor>;
using Timer = Token::as_default_on_t<net::steady_timer>;

namespace {

constexpr auto k_write_timeout = std::chrono::seconds(10);
constexpr auto k_keepalive_comment_every = std::chrono::seconds(15);
constexpr std::uint32_t k_header_limit = 16 * 1024;
constexpr std::size_t k_frames_per_write = 256 * 1024;

}  // namespace

struct HttpServer::Impl {
  Impl(net::any_io_executor ex, ServerLimits l, Service& s, BearerAuth a)
      : executor(ex), acceptor(ex), limits(l), service(s), auth(std::move(a)), grace_timer(ex) {}

  struct Session {
    TcpStream* stream = nullptr;
    bool idle = true;  // waiting for a request: safe to close when stopping
  };

  void session_ended(std::uint64_t id) {
    sessions.erase(id);
    if (stopping && sessions.empty()) finish_stop();
  }
  void finish_stop() {
    if (!stopped) return;
    grace_timer.cancel();
    auto done = std::move(stopped);
    stopped = nullptr;
    done();
  }
  void close_all(bool idle_only) {
    for (auto& [id, s] : sessions) {
      if (idle_only && !s.idle) continue;
      boost::system::error_code ignored;
      s.stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
      s.stream->socket().close(ignored);
    }
  }

  net::any_io_executor executor;
  Acceptor acceptor;
  ServerLimits limits;
  Service& service;
  BearerAuth auth;
  std::map<std::uint64_t, Session> sessions;
  std::uint64_t next_session = 1;
  int event_clients = 0;
  bool stopping = false;
  std::function<void()> stopped;
  Timer grace_timer;
};

namespace {

using Impl = HttpServer::Impl;

std::string_view sv(beast::string_view text) { return {text.data(), text.size()}; }

/// Completion of the server's coroutines: expected failures are values inside them, so an
/// exception here is a bug worth printing (never with request content).
struct LogFailure {
  const char* what;
  void operator()(std::exception_ptr error) const {
    if (!error) return;
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      std::cerr << "dagent serve: " << what << ": " << e.what() << std::endl;
    } catch (...) {
      std::cerr << "dagent serve: " << what << ": unknown exception" << std::endl;
    }
  }
};

/// Keeps the session table right however a session's coroutine ends.
class SessionGuard {
 public:
  SessionGuard(Impl& impl, TcpStream& stream) : impl_(impl), id_(impl.next_session++) {
    impl_.sessions[id_] = Impl::Session{&stream, true};
  }
  ~SessionGuard() { impl_.session_ended(id_); }
  SessionGuard(const SessionGuard&) = delete;
  SessionGuard& operator=(const SessionGuard&) = delete;
  void idle(bool value) { impl_.sessions[id_].idle = value; }

 private:
  Impl& impl_;
  std::uint64_t id_;
};

class EventClientGuard {
 public:
  explicit EventClientGuard(Impl& impl) : impl_(impl) { ++impl_.event_clients; }
  ~EventClientGuard() { --impl_.event_clients; }
  EventClientGuard(const EventClientGuard&) = delete;
  EventClientGuard& operator=(const EventClientGuard&) = delete;

 private:
  Impl& impl_;
};

/// Wakes a waiting event stream when its run adds an event; unsubscribes on destruction.
struct WakeTimer {
  Timer* timer;
  void operator()() const { timer->cancel(); }
};

class Subscription {
 public:
  Subscription(RunEvents& events, Timer& timer) : events_(events), token_(events.subscribe(WakeTimer{&timer})) {}
  ~Subscription() { events_.unsubscribe(token_); }
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

 private:
  RunEvents& events_;
  std::uint64_t token_;
};

net::awaitable<bool> write_reply(TcpStream& stream, const Reply& reply, bool keep_alive) {
  http::response<http::string_body> response{static_cast<http::status>(reply.status), 11};
  response.set(http::field::server, "dagent");
  response.set(http::field::content_type, reply.content_type);
  response.set(http::field::cache_control, "no-store");
  response.set("X-Content-Type-Options", "nosniff");
  for (const auto& [name, value] : reply.headers) response.set(name, value);
  response.keep_alive(keep_alive);
  response.body() = reply.body;
  response.prepare_payload();
  stream.expires_after(k_write_timeout);
  auto [ec, n] = co_await http::async_write(stream, response);
  co_return !ec;
}

/// The events of a run as one chunked text/event-stream reply: those buffered after `cursor`
/// first, then live ones, until the run's `end` has been sent (or the client goes away or stalls
/// for k_write_timeout: a slow client costs the loop nothing but its cursor).
net::awaitable<void> stream_events(TcpStream& stream, Impl& impl, std::shared_ptr<RunEvents> events,
                                   std::uint64_t cursor) {
  http::response<http::empty_body> response{http::status::ok, 11};
  response.set(http::field::server, "dagent");
  response.set(http::field::content_type, "text/event-stream");
  response.set(http::field::cache_control, "no-store");
  response.set("X-Accel-Buffering", "no");
  response.keep_alive(false);
  response.chunked(true);
  http::response_serializer<http::empty_body> serializer{response};
  stream.expires_after(k_write_timeout);
  auto [ec, n] = co_await http::async_write_header(stream, serializer);
  if (ec) co_return;

  Timer wake(impl.executor);
  Subscription subscription(*events, wake);
  for (;;) {
    std::uint64_t last = cursor;
    const std::string frames = events->frames_after(cursor, k_frames_per_write, &last);
    if (!frames.empty()) {
      stream.expires_after(k_write_timeout);
      auto [write_ec, written] = co_await net::async_write(stream, http::make_chunk(net::buffer(frames)));
      if (write_ec) co_return;
      cursor = last;
      continue;
    }
    if (events->closed()) break;
    // Checked before each wait: an event added while a write was underway is sent above first.
    wake.expires_after(k_keepalive_comment_every);
    auto [wait_ec] = co_await wake.async_wait();
    if (!wait_ec) {  // nothing for a while: a comment, so a vanished client is found out
      static const std::string k_comment = ": keep-alive\n\n";
      stream.expires_after(k_write_timeout);
      auto [write_ec, written] = co_await net::async_write(stream, http::make_chunk(net::buffer(k_comment)));
      if (write_ec) co_return;
    }
  }
  stream.expires_after(k_write_timeout);
  auto [last_ec, last_n] = co_await net::async_write(stream, http::make_chunk_last());
  (void)last_ec;
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

/// After a reply to a request whose body was not read (401, 413): a close with unread bytes would
/// send a RST that can destroy the reply before the client reads it, so stop sending, then read
/// and discard what the client still sends (at most `limit` bytes, one second) before closing.
net::awaitable<void> lingering_close(TcpStream& stream, std::int64_t limit) {
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  std::array<char, 16384> sink;
  std::int64_t discarded = 0;
  stream.expires_after(std::chrono::seconds(1));
  while (discarded <= limit) {
    auto [ec, n] = co_await stream.async_read_some(net::buffer(sink));
    if (ec) break;
    discarded += static_cast<std::int64_t>(n);
  }
}

std::uint64_t last_event_id(std::string_view header) {
  std::uint64_t value = 0;
  for (char c : header) {
    if (c < '0' || c > '9' || value > (UINT64_MAX - 9) / 10) return 0;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

Reply run_report(Service& service, const std::string& id) {
  Reply result = service.get(id);
  if (result.status != 200) return result;
  boost::system::error_code ec;
  const auto value = boost::json::parse(result.body, ec);
  if (ec || !value.is_object()) return error_reply(500, "the result of run '" + id + "' is not a JSON object");
  auto page = report::render_report(value.get_object());
  if (!page) return error_reply(409, "no report for run '" + id + "' yet: " + page.error());
  Reply html;
  html.content_type = "text/html; charset=utf-8";
  html.body = std::move(*page);
  return html;
}

Reply dispatch(Impl& impl, const Route& route, const http::request<http::string_body>& request) {
  switch (route.kind) {
    case RouteKind::healthz:
      return Reply{200, "application/json", {}, impl.service.draining() ? "{\"status\":\"draining\"}\n" : "{\"status\":\"ok\"}\n"};
    case RouteKind::metrics:
      return impl.service.metrics();
    case RouteKind::submit_run:
      return impl.service.submit(request.body());
    case RouteKind::list_runs:
      return impl.service.list();
    case RouteKind::get_run:
      return impl.service.get(route.run_id);
    case RouteKind::cancel_run:
      return impl.service.cancel(route.run_id);
    case RouteKind::run_report:
      return run_report(impl.service, route.run_id);
    case RouteKind::bad_method: {
      Reply r = error_reply(405, "method " + std::string(sv(request.method_string()).substr(0, 16)) + " is not allowed here");
      r.headers.emplace_back("Allow", route.allow);
      return r;
    }
    case RouteKind::run_events:
    case RouteKind::not_found:
      break;
  }
  return error_reply(404, "no such route");
}

/// A request whose header could not be read whole: the status to answer with, or 0 to just close.
unsigned status_of_read_error(const boost::system::error_code& ec) {
  if (ec == http::error::body_limit) return 413;
  if (ec == http::error::header_limit) return 431;
  if (ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message)
    return 400;
  return 0;
}

/// HTTP/1.1 keep-alive loop: read a request (its size bounded), check the token, answer, repeat.
net::awaitable<void> run_session(TcpStream stream, std::shared_ptr<Impl> owner) {
  Impl& impl = *owner;  // shared: a frame destroyed with the loop after the server still finds it
  SessionGuard guard(impl, stream);
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(k_header_limit);
    parser.body_limit(static_cast<std::uint64_t>(impl.limits.max_body_bytes));
    guard.idle(true);
    stream.expires_after(std::chrono::milliseconds(impl.limits.idle_timeout_ms));
    auto [ec, n] = co_await http::async_read_header(stream, buffer, parser);
    guard.idle(false);
    if (!ec) {
      // The token is checked before the body is read: without it nothing more is taken in.
      const auto& header = parser.get();
      const Route route = match_route(sv(header.method_string()), sv(header.target()));
      if (route.kind != RouteKind::healthz && !impl.auth.allows(sv(header[http::field::authorization]))) {
        Reply r = error_reply(401, "a bearer token is required: Authorization: Bearer TOKEN");
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        if (co_await write_reply(stream, r, false) && !parser.is_done())
          co_await lingering_close(stream, impl.limits.max_body_bytes);
        co_return;
      }
      if (!parser.is_done()) {
        if (beast::iequals(header[http::field::expect], "100-continue")) {  // curl waits a second for it otherwise
          http::response<http::empty_body> go_on{http::status::continue_, 11};
          stream.expires_after(k_write_timeout);
          auto [continue_ec, continue_n] = co_await http::async_write(stream, go_on);
          if (continue_ec) co_return;
        }
        stream.expires_after(std::chrono::milliseconds(impl.limits.idle_timeout_ms));
        auto [body_ec, body_n] = co_await http::async_read(stream, buffer, parser);
        ec = body_ec;
      }
    }
    if (ec) {
      if (const unsigned status = status_of_read_error(ec)) {
        // The rest of the request was not read: answer and close.
        const char* what = status == 413 ? "the request body is larger than serve.max_body_bytes"
                           : status == 431 ? "the request header is too large"
                                           : "malformed HTTP request";
        if (co_await write_reply(stream, error_reply(status, what), false))
          co_await lingering_close(stream, impl.limits.max_body_bytes);
      }
      co_return;
    }
    const auto& request = parser.get();
    const Route route = match_route(sv(request.method_string()), sv(request.target()));
    const bool keep_alive = request.keep_alive() && !impl.stopping;
    if (route.kind == RouteKind::run_events) {
      auto events = impl.service.events(route.run_id);
      Reply refused;
      if (!events) {
        refused = error_reply(404, "no run with id '" + route.run_id + "' in this service (events are kept for its own runs)");
      } else if (impl.event_clients >= impl.limits.max_event_clients) {
        refused = error_reply(503, "too many event streams open (serve.max_event_clients)");
        refused.headers.emplace_back("Retry-After", "1");
      } else {
        EventClientGuard client(impl);
        co_await stream_events(stream, impl, std::move(events), last_event_id(sv(request["Last-Event-ID"])));
        co_return;
      }
      if (!co_await write_reply(stream, refused, keep_alive) || !keep_alive) co_return;
      continue;
    }
    const Reply reply = dispatch(impl, route, request);
    if (!co_await write_reply(stream, reply, keep_alive) || !keep_alive) {
      boost::system::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
      co_return;
    }
  }
}

net::awaitable<void> accept_connections(std::shared_ptr<Impl> owner) {
  Impl& impl = *owner;
  for (;;) {
    auto [ec, socket] = co_await impl.acceptor.async_accept();
    if (ec == net::error::operation_aborted || impl.stopping) co_return;
    if (ec) {  // e.g. out of file descriptors: wait a little, keep serving once some close
      Timer pause(impl.executor, std::chrono::milliseconds(50));
      auto [wait_ec] = co_await pause.async_wait();
      (void)wait_ec;
      continue;
    }
    if (static_cast<int>(impl.sessions.size()) >= impl.limits.max_connections) {
      boost::system::error_code ignored;
      socket.close(ignored);  // serve.max_connections: refused at once
      continue;
    }
    boost::system::error_code nodelay_ec;
    socket.set_option(tcp::no_delay(true), nodelay_ec);  // an SSE event is not held back by Nagle
    net::co_spawn(impl.executor, run_session(TcpStream(std::move(socket)), owner), LogFailure{"session"});
  }
}

struct GraceOver {
  std::shared_ptr<Impl> impl;
  void operator()(const boost::system::error_code& ec) const {
    if (ec) return;
    impl->close_all(false);
    impl->finish_stop();  // the sessions' frames share the Impl: safe to outlive this
  }
};

}  // namespace

std::variant<std::unique_ptr<HttpServer>, std::string> HttpServer::listen(net::any_io_executor executor,
                                                                          const ListenAddress& address,
                                                                          ServerLimits limits, Service& service,
                                                                          BearerAuth auth) {
  auto impl = std::make_shared<Impl>(executor, limits, service, std::move(auth));
  boost::system::error_code ec;
  const auto ip = net::ip::make_address(address.host, ec);
  const tcp::endpoint endpoint(ip, address.port);
  if (!ec) impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return "cannot listen on " + address.host + ":" + std::to_string(address.port) + ": " + ec.message();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() = default;

unsigned short HttpServer::port() const {
  boost::system::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

void HttpServer::start() { net::co_spawn(impl_->executor, accept_connections(impl_), LogFailure{"accept loop"}); }

void HttpServer::stop(std::int64_t grace_ms, std::function<void()> stopped) {
  impl_->stopping = true;
  impl_->stopped = std::move(stopped);
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->close_all(true);
  if (impl_->sessions.empty()) {
    impl_->finish_stop();
    return;
  }
  impl_->grace_timer.expires_after(std::chrono::milliseconds(grace_ms));
  impl_->grace_timer.async_wait(GraceOver{impl_});
}

}  // namespace dagent::serve
