// HttpClient::warm against the test server over TLS: how many connections it opens, that they
// serve the requests that follow, and that failures and cancellation leave the pool as it was.

#include "net/http_client.hpp"

#include <catch2/catch.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "net/tls_context.hpp"
#include "net/url.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent::net;
using dagent::test::HandshakeFault;
using dagent::test::ServerCert;
using dagent::test::TestCerts;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

std::int64_t count(const json::value& stats, std::string_view key) { return stats.at(key).to_number<std::int64_t>(); }

HttpOptions pool_of(int max_connections, int max_keepalive) {
  HttpOptions o;
  o.max_connections = max_connections;
  o.max_keepalive = max_keepalive;
  o.connect_timeout = std::chrono::milliseconds(10000);
  o.request_timeout = std::chrono::milliseconds(20000);
  return o;
}

// A client of `server` on a loop of its own.
struct Warmed {
  asio::io_context io;
  HttpClient http;
  Origin origin;
  std::optional<int> added;  // warm()'s result once it ended
  bool threw = false;
  asio::cancellation_signal cancel;

  Warmed(const TestServer& server, HttpOptions options)
      : http(io.get_executor(), *TlsContext::create(TestCerts::get().ca().string()), options),
        origin(parse_base_url(server.base_url())->origin) {}

  void start(int k);
  int warm(int k) {
    start(k);
    io.restart();
    io.run();
    REQUIRE(added);
    return *added;
  }
};

struct WarmEnded {
  Warmed* w;
  void operator()(std::exception_ptr e, int added) const {
    if (e) w->threw = true;
    else w->added = added;
  }
};

void Warmed::start(int k) {
  added.reset();
  threw = false;
  asio::co_spawn(io, http.warm(origin, k), asio::bind_cancellation_slot(cancel.slot(), WarmEnded{this}));
}

asio::awaitable<HttpResult<HttpResponse>> chat_on(HttpClient* http, Origin origin) {
  HttpRequest r;
  r.target = "/v1/chat/completions";
  r.headers.push_back({"content-type", "application/json"});
  r.body = R"({"model": "m", "messages": [{"role": "user", "content": "hi"}]})";
  co_return co_await http->send(std::move(origin), std::move(r));
}

struct Status {
  int* out;
  void operator()(std::exception_ptr e, HttpResult<HttpResponse> r) const { *out = !e && r ? r->status : -1; }
};

TestServerOptions tls_server(std::int64_t connect_delay_ms = 0) {
  TestServerOptions o;
  o.cert = ServerCert::valid;
  o.connect_delay_ms = connect_delay_ms;
  return o;
}

}  // namespace

TEST_CASE("warm opens the missing connections into the idle pool and requests use them", "[net][http][warm]") {
  TestServer server(tls_server(50));
  Warmed w(server, pool_of(10, 10));
  CHECK(w.warm(3) == 3);
  CHECK(w.http.open_connections(w.origin) == 3);
  CHECK(w.http.idle_connections(w.origin) == 3);
  CHECK(w.http.connections_opened() == 3);
  CHECK(w.warm(3) == 0);  // counted: the pool holds 3 already
  CHECK(w.warm(4) == 1);

  int statuses[3] = {0, 0, 0};
  for (int& s : statuses) asio::co_spawn(w.io, chat_on(&w.http, w.origin), Status{&s});
  w.io.restart();
  w.io.run();
  for (int s : statuses) CHECK(s == 200);
  CHECK(w.http.connections_opened() == 4);  // the three requests opened none
  const auto stats = server.stats();
  CHECK(count(stats, "connections_accepted") == 4);
  CHECK(count(stats, "tls_handshakes") == 4);
}

TEST_CASE("a request made while warm-up connects are under way takes one of them, not a connection of its own",
          "[net][http][warm]") {
  TestServer server(tls_server(50));
  Warmed w(server, pool_of(10, 10));
  w.start(3);
  int status = 0;
  asio::co_spawn(w.io, chat_on(&w.http, w.origin), Status{&status});  // as a planning call would
  w.io.restart();
  w.io.run();
  CHECK(status == 200);
  REQUIRE(w.added);
  CHECK(*w.added == 3);
  CHECK(w.http.connections_opened() == 3);
  CHECK(w.http.idle_connections(w.origin) == 3);
  CHECK(count(server.stats(), "connections_accepted") == 3);
}

TEST_CASE("a request waiting for a warm-up connect that fails opens a connection of its own", "[net][http][warm]") {
  TestServerOptions options = tls_server();
  options.handshake_fault = HandshakeFault::reset;
  options.handshake_faults = 1;  // the warm-up's: the request waits for it and opens nothing first
  TestServer server(options);
  Warmed w(server, pool_of(10, 10));
  w.start(1);
  int status = 0;
  asio::co_spawn(w.io, chat_on(&w.http, w.origin), Status{&status});
  w.io.restart();
  w.io.run();
  CHECK(status == 200);
  REQUIRE(w.added);
  CHECK(*w.added == 0);
  CHECK(w.http.open_connections(w.origin) == 1);  // the request's own, now idle
  const auto stats = server.stats();
  CHECK(count(stats, "tls_handshake_failures") == 1);
  CHECK(count(stats, "tls_handshakes") == 1);
}

TEST_CASE("warm is bounded by max_connections and max_keepalive", "[net][http][warm]") {
  TestServer server(tls_server());
  SECTION("max_connections") {
    Warmed w(server, pool_of(2, 10));
    CHECK(w.warm(5) == 2);
    CHECK(w.http.open_connections(w.origin) == 2);
  }
  SECTION("max_keepalive") {
    Warmed w(server, pool_of(10, 1));
    CHECK(w.warm(5) == 1);
    CHECK(w.http.idle_connections(w.origin) == 1);
  }
  SECTION("max_keepalive 0 opens none") {
    Warmed w(server, pool_of(10, 0));
    CHECK(w.warm(5) == 0);
  }
  SECTION("pooling off opens none") {
    auto options = pool_of(10, 10);
    options.pooling = false;
    Warmed w(server, options);
    CHECK(w.warm(5) == 0);
    CHECK(w.http.open_connections(w.origin) == 0);
  }
  CHECK(count(server.stats(), "connections_accepted") <= 2);
}

TEST_CASE("warm-up connections that fail their handshake are dropped and their slots freed", "[net][http][warm]") {
  TestServerOptions options = tls_server();
  options.handshake_fault = HandshakeFault::reset;
  options.handshake_faults = 2;
  TestServer server(options);
  Warmed w(server, pool_of(10, 10));
  CHECK(w.warm(3) == 1);
  CHECK_FALSE(w.threw);
  CHECK(w.http.open_connections(w.origin) == 1);
  CHECK(w.http.idle_connections(w.origin) == 1);
  CHECK(count(server.stats(), "tls_handshake_failures") == 2);
}

TEST_CASE("a warm-up cancelled while its handshakes stall frees every slot", "[net][http][warm]") {
  TestServerOptions options = tls_server();
  options.handshake_fault = HandshakeFault::stall;
  options.handshake_faults = 3;
  TestServer server(options);
  Warmed w(server, pool_of(10, 10));
  w.start(3);
  w.io.restart();
  // Until the three TCP connects are made: their TLS handshakes are then under way, and stalled.
  while (w.http.connections_opened() < 3) REQUIRE(w.io.run_one() > 0);
  CHECK(w.http.open_connections(w.origin) == 3);
  CHECK_FALSE(w.added);
  w.cancel.emit(asio::cancellation_type::terminal);
  w.io.run();  // ends: nothing is left once the connects are cancelled
  CHECK((w.threw || w.added == 0));
  CHECK(w.http.open_connections(w.origin) == 0);
  CHECK(w.http.idle_connections(w.origin) == 0);
}
