#include "net/http_client.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <boost/system/system_error.hpp>

#include "net/net_error.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent::net;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

// Requests whose body says "hold" are never answered: they keep their connection until cancelled.
json::value holding_script() {
  return json::parse(R"({"rules": [{"contains": "hold", "fault": "stall"}]})");
}

HttpRequest post(std::string body) {
  HttpRequest r;
  r.target = "/v1/chat/completions";
  r.headers.push_back({"content-type", "application/json"});
  r.body = std::move(body);
  return r;
}

const std::string k_chat = R"({"model": "m", "messages": [{"role": "user", "content": "hi"}]})";

// How one request ended.
struct Ending {
  bool finished = false;
  std::optional<int> status;           // a response arrived
  boost::system::error_code error;     // an HttpError, or the exception a cancelled coroutine threw
};

struct Pooled {
  asio::io_context io;
  HttpClient http;
  Origin origin;
  std::map<int, Ending> endings;
  std::map<int, std::unique_ptr<asio::cancellation_signal>> signals;

  Pooled(const TestServer& server, HttpOptions options)
      : http(io.get_executor(), nullptr, options), origin(parse_base_url(server.base_url())->origin) {}

  void spawn(int id, HttpRequest request);
  void spawn_with_timeout(int id, HttpRequest request, std::chrono::milliseconds timeout);
  // Ctrl-C for one request: the terminal cancellation the scheduler emits for a step.
  void interrupt(int id) {
    if (!endings[id].finished) signals.at(id)->emit(asio::cancellation_type::terminal);
  }
  // Runs handlers until `done()` holds; fails instead of blocking when nothing is left to run.
  template <class Done>
  void run_until(Done done) {
    io.restart();
    while (!done()) REQUIRE(io.run_one() > 0);
  }
  void run_all() {
    io.restart();
    io.run();
  }
};

struct Ended {
  Pooled* p;
  int id;
  void operator()(std::exception_ptr e, HttpResult<HttpResponse> r) const {
    auto& ending = p->endings[id];
    ending.finished = true;
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const boost::system::system_error& error) {
        ending.error = error.code();
      }
      return;
    }
    if (r) ending.status = r->status;
    else ending.error = r.error().code;
  }
};

asio::awaitable<HttpResult<HttpResponse>> send_on(HttpClient* http, Origin origin, HttpRequest request) {
  co_return co_await http->send(std::move(origin), std::move(request));
}

// A step timeout as the scheduler sets one: the call races a timer, and the loser is cancelled.
asio::awaitable<HttpResult<HttpResponse>> send_within(HttpClient* http, Origin origin, HttpRequest request,
                                                      std::chrono::milliseconds timeout) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
  auto winner = co_await (http->send(std::move(origin), std::move(request)) ||
                          timer.async_wait(asio::as_tuple(asio::use_awaitable)));
  if (winner.index() == 0) co_return std::move(std::get<0>(winner));
  co_return HttpError{make_error_code(NetErrc::request_timeout), "step timed out", true};
}

void Pooled::spawn(int id, HttpRequest request) {
  auto& signal = signals[id];
  signal = std::make_unique<asio::cancellation_signal>();
  asio::co_spawn(io, send_on(&http, origin, std::move(request)), asio::bind_cancellation_slot(signal->slot(), Ended{this, id}));
}

void Pooled::spawn_with_timeout(int id, HttpRequest request, std::chrono::milliseconds timeout) {
  auto& signal = signals[id];
  signal = std::make_unique<asio::cancellation_signal>();
  asio::co_spawn(io, send_within(&http, origin, std::move(request), timeout),
                 asio::bind_cancellation_slot(signal->slot(), Ended{this, id}));
}

HttpOptions two_connections(int keepalive) {
  HttpOptions o;
  o.max_connections = 2;
  o.max_keepalive = keepalive;
  o.connect_timeout = std::chrono::milliseconds(5000);
  o.request_timeout = std::chrono::milliseconds(20000);
  return o;
}

// Cancels request `id` after `turns` trips through the loop, unless it has finished by then.
asio::awaitable<void> interrupt_after(Pooled* p, int id, int turns) {
  auto executor = co_await asio::this_coro::executor;
  for (int i = 0; i < turns; ++i) co_await asio::post(executor, asio::use_awaitable);
  p->interrupt(id);
}

struct Rethrow {
  void operator()(std::exception_ptr e) const {
    if (e) std::rethrow_exception(e);
  }
};

}  // namespace

TEST_CASE("pool full and waiters cancelled by timeouts and Ctrl-C (cancellation), then the pool's open count returns to zero",
          "[net][http][pool]") {
  TestServer server(TestServerOptions{.script = holding_script()});
  Pooled p(server, two_connections(0));
  p.spawn(1, post("hold 1"));
  p.spawn(2, post("hold 2"));
  p.spawn(4, post(k_chat));  // Ctrl-C below
  p.spawn(5, post(k_chat));  // waits it out
  p.run_until([&] { return p.http.open_connections(p.origin) == 2 && p.http.waiting_for_connection(p.origin) == 2; });
  p.spawn_with_timeout(3, post(k_chat), std::chrono::milliseconds(20));  // a step timeout
  p.run_until([&] { return p.endings[3].finished; });
  CHECK(p.endings[3].error == NetErrc::request_timeout);  // the step's own timeout

  p.interrupt(4);
  p.run_until([&] { return p.endings[4].finished; });
  CHECK_FALSE(p.endings[4].status);  // cancelled, never sent
  CHECK(p.http.waiting_for_connection(p.origin) == 1);
  CHECK(p.http.open_connections(p.origin) == 2);

  p.interrupt(1);  // a slot comes free: the one request still waiting gets it
  p.run_until([&] { return p.endings[5].finished; });
  CHECK(p.endings[5].status == 200);
  CHECK(p.endings[1].finished);
  CHECK_FALSE(p.endings[1].status);
  p.interrupt(2);
  p.run_all();
  CHECK(p.endings[2].finished);
  CHECK(p.http.waiting_for_connection(p.origin) == 0);
  CHECK(p.http.open_connections(p.origin) == 0);
}

TEST_CASE("pool slots come back after 1 000 random cancellations", "[net][http][pool]") {
  TestServer server(TestServerOptions{.script = holding_script()});
  Pooled p(server, two_connections(2));
  std::mt19937 random(20261202);
  int id = 0;
  int answered = 0;
  while (id < 1000) {
    // A batch wants more connections than the pool has: some wait for a slot, some connect,
    // some are mid-request when their cancellation lands (after 0 to 60 trips through the loop).
    const int batch = 6;
    for (int i = 0; i < batch; ++i, ++id) {
      const bool hold = random() % 4 == 0;  // held requests end only by cancellation
      p.spawn(id, post(hold ? "hold" : k_chat));
      if (hold || random() % 3 != 0) asio::co_spawn(p.io, interrupt_after(&p, id, static_cast<int>(random() % 60)), Rethrow{});
    }
    p.run_all();
    INFO("after request " << id);
    REQUIRE(p.http.waiting_for_connection(p.origin) == 0);
    REQUIRE(p.http.open_connections(p.origin) == static_cast<int>(p.http.idle_connections(p.origin)));
  }
  for (auto& [n, ending] : p.endings) {
    REQUIRE(ending.finished);
    if (ending.status) ++answered;
  }
  CHECK(answered > 0);
  CHECK(answered < 1000);
  // Both slots are free: two requests at once get them without waiting for a deadline.
  p.spawn(2000, post(k_chat));
  p.spawn(2001, post(k_chat));
  p.run_all();
  CHECK(p.endings[2000].status == 200);
  CHECK(p.endings[2001].status == 200);
  CHECK(p.http.open_connections(p.origin) == static_cast<int>(p.http.idle_connections(p.origin)));
}

namespace {

asio::awaitable<void> read_to_end(HttpStream* stream, std::string* out) {
  for (;;) {
    auto got = co_await stream->read_some(*out);
    if (!got || *got == 0) co_return;
  }
}

// Reads a stream until it fails, racing a step timeout.
asio::awaitable<std::size_t> stream_until_timeout(HttpClient* http, Origin origin, HttpRequest request,
                                                  std::chrono::milliseconds timeout) {
  using namespace asio::experimental::awaitable_operators;
  auto opened = co_await http->open_stream(std::move(origin), std::move(request), StreamLimits{});
  REQUIRE(opened.has_value());
  std::string body;
  asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
  co_await (read_to_end(&*opened, &body) || timer.async_wait(asio::as_tuple(asio::use_awaitable)));
  co_return body.size();
}

struct StreamDone {
  std::optional<std::size_t>* out;
  void operator()(std::exception_ptr e, std::size_t n) const {
    if (e) std::rethrow_exception(e);
    *out = n;
  }
};

}  // namespace

TEST_CASE("a stream cancelled mid-body by a step timeout gives its slot back", "[net][http][pool]") {
  TestServer server(TestServerOptions{.script = json::parse(
                                          R"({"rules": [{"fault": "ping", "stream_chunks": ["a"], "stream_interval_ms": 5}]})")});
  Pooled p(server, two_connections(2));
  std::optional<std::size_t> read;
  asio::co_spawn(p.io,
                 stream_until_timeout(&p.http, p.origin,
                                      post(R"({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]})"),
                                      std::chrono::milliseconds(50)),
                 StreamDone{&read});
  p.run_all();
  REQUIRE(read.has_value());
  CHECK(*read > 0);  // the first event and some pings arrived before the timeout
  CHECK(p.http.open_connections(p.origin) == 0);  // an unfinished stream's connection is not pooled
  CHECK(p.http.idle_connections(p.origin) == 0);
}

namespace {

// Reads a stream until it ends or fails; `error` gets the failure, if any.
asio::awaitable<void> read_recording_error(HttpStream* stream, std::string* out, std::optional<HttpError>* error) {
  for (;;) {
    auto got = co_await stream->read_some(*out);
    if (!got) *error = got.error();
    if (!got || *got == 0) co_return;
  }
}

struct StalledRead {
  std::string body;
  std::optional<HttpError> error;
};

asio::awaitable<void> cancel_stalled_read(HttpClient* http, Origin origin, HttpRequest request, StalledRead* out) {
  using namespace asio::experimental::awaitable_operators;
  StreamLimits limits;
  limits.idle_timeout = std::chrono::milliseconds(30000);  // the server never sends more: only cancellation ends the read
  auto opened = co_await http->open_stream(std::move(origin), std::move(request), limits);
  REQUIRE(opened.has_value());
  asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(20));
  co_await (read_recording_error(&*opened, &out->body, &out->error) || timer.async_wait(asio::as_tuple(asio::use_awaitable)));
}


}  // namespace

TEST_CASE("stream_read_ignores_cancellation: a read waiting on a silent server ends when cancelled, not at the idle timeout",
          "[net][http][pool]") {
  TestServer server(TestServerOptions{.script = json::parse(R"({"rules": [{"fault": "stall", "stream_chunks": ["a", "b"]}]})")});
  Pooled p(server, two_connections(2));
  StalledRead read;
  asio::co_spawn(p.io,
                 cancel_stalled_read(&p.http, p.origin,
                                     post(R"({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]})"),
                                     &read),
                 Rethrow{});
  p.run_all();
  REQUIRE(read.error.has_value());
  INFO(read.error->message);
  CHECK(read.error->code != make_error_code(dagent::net::NetErrc::idle_timeout));
  CHECK(read.error->code == make_error_code(dagent::net::NetErrc::cancelled));
  CHECK(p.http.open_connections(p.origin) == 0);
}

namespace {

// Sends `requests` one after another on `http`, each result into `out`.
asio::awaitable<void> send_in_turn(HttpClient* http, Origin origin, std::vector<HttpRequest> requests,
                                   std::vector<HttpResult<HttpResponse>>* out) {
  for (auto& request : requests) out->push_back(co_await http->send(origin, std::move(request)));
}

std::vector<HttpResult<HttpResponse>> send_all(const TestServer& server, HttpClient& http, asio::io_context& io,
                                               std::vector<HttpRequest> requests) {
  std::vector<HttpResult<HttpResponse>> out;
  asio::co_spawn(io, send_in_turn(&http, parse_base_url(server.base_url())->origin, std::move(requests), &out), Rethrow{});
  io.restart();
  io.run();
  return out;
}

}  // namespace

TEST_CASE("one kept-alive connection reads a small, a large and a small response in turn, each whole",
          "[net][http]") {
  const std::string big(300 * 1024 + 7, 'b');
  TestServer server(TestServerOptions{.script = json::value{
      {"rules", json::array{json::object{{"contains", "big"}, {"body", big}, {"headers", json::object{{"X-Mixed-Case", "Value"}}}},
                            json::object{{"contains", "tiny"}, {"body", "ok"}}}}}});
  asio::io_context io;
  HttpOptions options;
  SECTION("within the body limit") {
    HttpClient http(io.get_executor(), nullptr, options);
    auto got = send_all(server, http, io, {post("tiny"), post("big"), post("tiny"), post("big")});
    REQUIRE(got.size() == 4);
    for (const auto& r : got) REQUIRE(r.has_value());
    CHECK(got[0]->body == "ok");
    CHECK(got[1]->body == big);
    CHECK(got[2]->body == "ok");
    CHECK(got[3]->body == big);
    // Names arrive lowercased whatever the server wrote; values as they were.
    REQUIRE(got[1]->header("x-mixed-case"));
    CHECK(*got[1]->header("x-mixed-case") == "Value");
    CHECK(got[1]->header("X-Mixed-Case") == nullptr);
    CHECK(got[0]->header("x-mixed-case") == nullptr);
    CHECK(http.connections_opened() == 1);
  }
  SECTION("a body over the limit fails alone; the next request gets a new connection") {
    options.max_body_bytes = 100 * 1024;
    HttpClient http(io.get_executor(), nullptr, options);
    auto got = send_all(server, http, io, {post("tiny"), post("big"), post("tiny")});
    REQUIRE(got.size() == 3);
    REQUIRE(got[0].has_value());
    CHECK(got[0]->body == "ok");
    REQUIRE_FALSE(got[1].has_value());
    CHECK(got[1].error().code == NetErrc::too_large);
    REQUIRE(got[2].has_value());
    CHECK(got[2]->body == "ok");
    CHECK(http.connections_opened() == 2);
  }
}

TEST_CASE("a request header with a line break in its name or value is left out, the rest is sent",
          "[net][http]") {
  TestServer server;
  asio::io_context io;
  HttpClient http(io.get_executor(), nullptr, HttpOptions{});
  HttpRequest request = post(k_chat);
  request.headers.push_back({"x-good", "1"});
  request.headers.push_back({"x-bad", "a\r\nx-injected: 1"});
  request.headers.push_back({"x-bad-name\n", "v"});
  request.headers.push_back({"x-also-good", "2"});
  auto got = send_all(server, http, io, {std::move(request)});
  REQUIRE(got.size() == 1);
  REQUIRE(got[0].has_value());
  CHECK(got[0]->status == 200);
  const auto headers = server.stats().at("recent").as_array().back().at("headers").as_object();
  CHECK(headers.at("x-good") == "1");
  CHECK(headers.at("x-also-good") == "2");
  CHECK(headers.at("content-type") == "application/json");
  CHECK_FALSE(headers.contains("x-bad"));
  CHECK_FALSE(headers.contains("x-injected"));
  CHECK_FALSE(headers.contains("x-bad-name"));
}

namespace {

// A one-shot server on 127.0.0.1 that answers the first request on each of `connections`
// connections with `reply` and closes.
asio::awaitable<void> answer_raw(asio::ip::tcp::acceptor* acceptor, std::string reply, int connections) {
  for (int i = 0; i < connections; ++i) {
    auto socket = co_await acceptor->async_accept(asio::use_awaitable);
    char request[4096];
    co_await socket.async_read_some(asio::buffer(request), asio::use_awaitable);
    co_await asio::async_write(socket, asio::buffer(reply), asio::use_awaitable);
    boost::system::error_code ec;
    socket.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  }
}

struct RawEnd {
  std::optional<HttpError> sent;
  std::optional<HttpError> streamed;
};

asio::awaitable<void> send_then_stream(HttpClient* http, Origin origin, RawEnd* out) {
  auto sent = co_await http->send(origin, post(k_chat));
  if (!sent) out->sent = sent.error();
  auto opened = co_await http->open_stream(origin, post(k_chat), StreamLimits{});
  REQUIRE(opened.has_value());
  auto rest = co_await opened->read_all(1u << 20);
  if (!rest) out->streamed = rest.error();
}

}  // namespace

TEST_CASE("a response claiming a huge Content-Length is refused by send and truncated on a stream, nothing reserved for it",
          "[net][http]") {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  const std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 999999999999999\r\n\r\nabc";
  asio::co_spawn(io, answer_raw(&acceptor, reply, 2), Rethrow{});
  HttpClient http(io.get_executor(), nullptr, HttpOptions{});
  Origin origin{"127.0.0.1", std::to_string(acceptor.local_endpoint().port()), false};
  RawEnd end;
  asio::co_spawn(io, send_then_stream(&http, origin, &end), Rethrow{});
  io.run();
  REQUIRE(end.sent.has_value());
  CHECK(end.sent->code == NetErrc::too_large);
  REQUIRE(end.streamed.has_value());
  CHECK(end.streamed->code == NetErrc::truncated);
}
