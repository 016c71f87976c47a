#include "mcp/transport.hpp"

#include <catch2/catch.hpp>

#include <functional>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json.hpp>

#include "support/nginx_process.hpp"
#include "support/node_server_process.hpp"
#include "support/test_server_process.hpp"
#include "support/run_on.hpp"
#include "text/redact.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using dagent::mcp::HttpEndpoint;
using dagent::mcp::Transport;
using dagent::mcp::TransportHandler;
using dagent::test::run_on;
using Result = boost::system::result<void, std::string>;
constexpr auto k_token = asio::as_tuple(asio::use_awaitable);

// ---- messages --------------------------------------------------------------------------------

json::object request(std::int64_t id, std::string_view method, json::object params = {}) {
  return json::object{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}};
}

json::object initialize(std::int64_t id, std::string_view version = "2025-11-25") {
  return request(id, "initialize",
                 json::object{{"protocolVersion", version},
                              {"capabilities", json::object{}},
                              {"clientInfo", json::object{{"name", "dagent-test"}, {"version", "0"}}}});
}

json::object initialized() { return json::object{{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}; }

json::object echo(std::int64_t id, std::string_view text) {
  return request(id, "tools/call",
                 json::object{{"name", "echo"}, {"arguments", json::object{{"message", text}}}});
}

json::object long_running(std::int64_t id, double seconds, int steps, std::string_view token) {
  return request(id, "tools/call",
                 json::object{{"name", "trigger-long-running-operation"},
                              {"arguments", json::object{{"duration", seconds}, {"steps", steps}}},
                              {"_meta", json::object{{"progressToken", token}}}});
}

std::string text_of(const json::object& response) {
  return std::string(response.at("result").at("content").at(0).at("text").as_string());
}

// ---- what the transport reports ----------------------------------------------------------------

struct Seen {
  std::vector<json::object> messages;
  std::vector<std::string> closed;
  std::function<void(const json::object&)> on_message;  // runs after the message is recorded
};

TransportHandler recorder(Seen* seen) {
  TransportHandler h;
  h.message = [seen](json::object m) {
    seen->messages.push_back(std::move(m));
    if (seen->on_message) seen->on_message(seen->messages.back());
  };
  h.closed = [seen](std::string reason) { seen->closed.push_back(std::move(reason)); };
  return h;
}

std::unique_ptr<Transport> make(asio::io_context& io, std::string url, Seen* seen,
                                std::vector<std::pair<std::string, std::string>> headers = {},
                                std::string ca_file = {}) {
  HttpEndpoint endpoint;
  endpoint.server = "everything";
  endpoint.url = std::move(url);
  endpoint.headers = std::move(headers);
  endpoint.ca_file = std::move(ca_file);
  endpoint.timeout = std::chrono::seconds(30);
  auto t = dagent::mcp::make_http_transport(io.get_executor(), std::move(endpoint));
  t->set_handler(recorder(seen));
  return t;
}

Result send(asio::io_context& io, Transport& t, json::object message) { return run_on(io, t.send(std::move(message))); }

asio::awaitable<bool> closed_then_true(Transport* t) {
  co_await t->close();
  co_return true;
}
void close(asio::io_context& io, Transport& t) { run_on(io, closed_then_true(&t)); }

// How a send that may be cancelled ended: an exception (cancelled at a co_await) or a result.
struct Outcome {
  bool done = false;
  bool threw = false;
  std::optional<Result> result;
  asio::steady_timer* wake = nullptr;
};

// Sends `message`, recording how it ended in `out` (and waking `out->wake`).
asio::awaitable<void> send_recording(Transport* t, json::object message, Outcome* out) {
  try {
    out->result = co_await t->send(std::move(message));
  } catch (const boost::system::system_error&) {
    out->threw = true;  // cancelled at a co_await
  }
  out->done = true;
  if (out->wake) out->wake->cancel();
}

struct Everything {
  dagent::test::NodeServer server{dagent::test::server_everything_script(), {"streamableHttp"}};
  asio::io_context io;
  Seen seen;
  std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/mcp";
  std::unique_ptr<Transport> transport = make(io, url, &seen);

  // initialize and notifications/initialized, as the session does.
  void start() {
    REQUIRE(run_on(io, transport->open()));
    const Result r = send(io, *transport, initialize(1));
    INFO((r ? std::string() : r.error()) << "\nserver log:\n" << server.log());
    REQUIRE(r);
    REQUIRE(send(io, *transport, initialized()));
    seen.messages.clear();
  }
};

}  // namespace

// ---- against the real server-everything ------------------------------------------------------

TEST_CASE("HTTP transport against server-everything: initialize, session, tools", "[mcp][http]") {
  Everything e;
  CHECK(e.transport->describe() == "http: " + e.url);
  REQUIRE(run_on(e.io, e.transport->open()));

  const Result init = send(e.io, *e.transport, initialize(1));
  INFO("server log:\n" << e.server.log());
  REQUIRE(init);
  REQUIRE(e.seen.messages.size() == 1);  // the response arrived before send() completed
  const json::object& result = e.seen.messages[0].at("result").as_object();
  CHECK(e.seen.messages[0].at("id").as_int64() == 1);
  CHECK(result.at("protocolVersion").as_string() == "2025-11-25");
  CHECK(result.at("serverInfo").at("name").as_string() == "mcp-servers/everything");

  // 202 Accepted: nothing is delivered.
  REQUIRE(send(e.io, *e.transport, initialized()));
  CHECK(e.seen.messages.size() == 1);

  SECTION("later requests carry the session ID: the server refuses them without it") {
    Seen other_seen;
    auto other = make(e.io, e.url, &other_seen);
    REQUIRE(run_on(e.io, other->open()));
    const Result refused = send(e.io, *other, request(2, "tools/list"));
    REQUIRE_FALSE(refused);
    CHECK(refused.error() == "MCP server 'everything' (http: " + e.url + "): HTTP 400: Bad Request: Server not initialized");
    CHECK(other_seen.messages.empty());
    CHECK(other_seen.closed.empty());

    const Result listed = send(e.io, *e.transport, request(2, "tools/list"));
    REQUIRE(listed);
    REQUIRE(e.seen.messages.size() == 2);
    const json::object& tools = e.seen.messages[1];
    CHECK(tools.at("id").as_int64() == 2);
    bool has_echo = false;
    for (const auto& tool : tools.at("result").at("tools").as_array())
      has_echo = has_echo || tool.at("name").as_string() == "echo";
    CHECK(has_echo);
  }

  SECTION("tools/call echo, answered with an event stream") {
    REQUIRE(send(e.io, *e.transport, echo(3, "hello \xC3\xA9t\xC3\xA9")));
    REQUIRE(e.seen.messages.size() == 2);
    CHECK(e.seen.messages[1].at("id").as_int64() == 3);
    CHECK(text_of(e.seen.messages[1]) == "Echo: hello \xC3\xA9t\xC3\xA9");
    // Pooled connection, session and protocol version all still good for the next call.
    REQUIRE(send(e.io, *e.transport, echo(4, "again")));
    CHECK(text_of(e.seen.messages.back()) == "Echo: again");
  }

  SECTION("progress notifications arrive in order before the response") {
    REQUIRE(send(e.io, *e.transport, long_running(5, 0.3, 3, "tok-5")));
    REQUIRE(e.seen.messages.size() == 5);
    for (int i = 1; i <= 3; ++i) {
      const json::object& p = e.seen.messages[i];
      CHECK(p.at("method").as_string() == "notifications/progress");
      CHECK(p.at("params").at("progressToken").as_string() == "tok-5");
      CHECK(p.at("params").at("progress").to_number<int>() == i);
    }
    CHECK(e.seen.messages[4].at("id").as_int64() == 5);
    CHECK(text_of(e.seen.messages[4]) == "Long running operation completed. Duration: 0.3 seconds, Steps: 3.");
  }

  SECTION("close() DELETEs the session; the transport then refuses to send") {
    close(e.io, *e.transport);
    // The server logs the DELETE before it answers it, and close() waited for the answer.
    CHECK(e.server.log().find("Received session termination request for session") != std::string::npos);
    close(e.io, *e.transport);  // twice is fine
    const Result after = send(e.io, *e.transport, echo(6, "late"));
    REQUIRE_FALSE(after);
    CHECK(after.error() == "MCP server 'everything' (http: " + e.url + "): the transport is closed");
  }
  CHECK(e.seen.closed.empty());
}

TEST_CASE("HTTP transport: cancelling a send abandons the exchange, later sends work", "[mcp][http]") {
  Everything e;
  e.start();
  asio::cancellation_signal cancel;
  // Cancelled once the first progress notification is in: the call is mid-stream.
  e.seen.on_message = [&](const json::object& m) {
    if (m.contains("method")) asio::post(e.io, [&cancel] { cancel.emit(asio::cancellation_type::terminal); });
  };
  Outcome outcome;
  asio::co_spawn(e.io, send_recording(e.transport.get(), long_running(7, 60, 600, "tok-7"), &outcome),
                 asio::bind_cancellation_slot(cancel.slot(), asio::detached));
  e.io.restart();
  e.io.run();
  REQUIRE(outcome.done);
  CHECK((outcome.threw || (outcome.result && !*outcome.result)));
  REQUIRE_FALSE(e.seen.messages.empty());
  CHECK(e.seen.messages.front().at("method").as_string() == "notifications/progress");
  for (const auto& m : e.seen.messages) CHECK_FALSE(m.contains("result"));  // never answered
  CHECK(e.seen.closed.empty());

  e.seen.on_message = nullptr;
  e.seen.messages.clear();
  REQUIRE(send(e.io, *e.transport, echo(8, "still here")));
  REQUIRE(e.seen.messages.size() == 1);
  CHECK(text_of(e.seen.messages[0]) == "Echo: still here");
}

TEST_CASE("HTTP transport: sixteen calls in flight at once, each answered on its own stream", "[mcp][http]") {
  Everything e;
  e.start();
  std::vector<Outcome> outcomes(16);
  for (int i = 0; i < 16; ++i)
    asio::co_spawn(e.io, send_recording(e.transport.get(), echo(100 + i, "n" + std::to_string(i)), &outcomes[i]),
                   asio::detached);
  e.io.restart();
  e.io.run();
  for (const auto& o : outcomes) {
    REQUIRE(o.done);
    CHECK_FALSE(o.threw);
    CHECK((o.result && *o.result));
  }
  REQUIRE(e.seen.messages.size() == 16);
  std::map<std::int64_t, std::string> answers;
  for (const auto& m : e.seen.messages) answers[m.at("id").as_int64()] = text_of(m);
  REQUIRE(answers.size() == 16);
  for (int i = 0; i < 16; ++i) CHECK(answers[100 + i] == "Echo: n" + std::to_string(i));
}

TEST_CASE("HTTP transport: a server that is gone is an error naming it, and the channel is closed", "[mcp][http]") {
  Everything e;
  e.start();
  e.server.stop();
  const Result r = send(e.io, *e.transport, echo(9, "anyone?"));
  REQUIRE_FALSE(r);
  const std::string prefix = "MCP server 'everything' (http: " + e.url + "): cannot connect to http://127.0.0.1:";
  CHECK(r.error().starts_with(prefix));
  REQUIRE(e.seen.closed.size() == 1);
  CHECK(e.seen.closed[0] == r.error());
  // Reported once while the server stays away.
  CHECK_FALSE(send(e.io, *e.transport, echo(10, "anyone?")));
  CHECK(e.seen.closed.size() == 1);
}

TEST_CASE("HTTP transport over verified TLS: server-everything behind nginx", "[mcp][http]") {
  dagent::test::NodeServer server(dagent::test::server_everything_script(), {"streamableHttp"});
  dagent::test::NginxFront nginx(server.port());
  const std::string url = "https://localhost:" + std::to_string(nginx.port()) + "/mcp";
  asio::io_context io;
  Seen seen;

  SECTION("trusted through the test CA: initialize and a call, one TLS connection") {
    auto t = make(io, url, &seen, {}, dagent::test::TestCerts::get().ca().string());
    REQUIRE(run_on(io, t->open()));
    REQUIRE(send(io, *t, initialize(1)));
    REQUIRE(send(io, *t, initialized()));
    REQUIRE(send(io, *t, echo(2, "over TLS")));
    REQUIRE(seen.messages.size() == 2);
    CHECK(text_of(seen.messages[1]) == "Echo: over TLS");
    close(io, *t);
    CHECK(server.log().find("Received session termination request for session") != std::string::npos);
  }
  SECTION("a certificate the trust store does not know is refused, and the channel closed") {
    auto t = make(io, url, &seen, {}, dagent::test::TestCerts::get().other_ca().string());
    REQUIRE(run_on(io, t->open()));
    const Result r = send(io, *t, initialize(1));
    REQUIRE_FALSE(r);
    CHECK(r.error().starts_with("MCP server 'everything' (http: " + url + "): TLS handshake with https://localhost:"));
    CHECK(r.error().find("failed") != std::string::npos);
    CHECK(seen.messages.empty());
    REQUIRE(seen.closed.size() == 1);
    CHECK(seen.closed[0] == r.error());
  }
}

TEST_CASE("HTTP transport: open() checks the URL, send() needs open()", "[mcp][http]") {
  asio::io_context io;
  Seen seen;
  SECTION("not open yet") {
    auto t = make(io, "http://127.0.0.1:9/mcp", &seen);
    const Result r = send(io, *t, request(1, "ping"));
    REQUIRE_FALSE(r);
    CHECK(r.error() == "MCP server 'everything' (http: http://127.0.0.1:9/mcp): the transport is not open");
  }
  SECTION("a URL with a query is refused") {
    auto t = make(io, "https://example.com/mcp?key=1", &seen);
    const Result r = run_on(io, t->open());
    REQUIRE_FALSE(r);
    CHECK(r.error().starts_with("MCP server 'everything' (http: https://example.com/mcp?key=1): invalid url: "));
  }
  SECTION("plain http to a host that is not loopback") {
    auto t = make(io, "http://example.com/mcp", &seen);
    const Result r = run_on(io, t->open());
    REQUIRE_FALSE(r);
    CHECK(r.error() == "MCP server 'everything' (http: http://example.com/mcp): http:// sends the messages and headers "
                       "in clear text to example.com; use https:// (plain http is allowed only for loopback hosts: "
                       "localhost, 127.0.0.0/8, ::1)");
  }
  SECTION("after close(), open() refuses too") {
    auto t = make(io, "http://localhost:9/mcp", &seen);
    REQUIRE(run_on(io, t->open()));
    close(io, *t);  // no session yet: nothing to DELETE
    CHECK_FALSE(run_on(io, t->open()));
  }
  CHECK(seen.closed.empty());
}

// ---- against a scripted loopback server: JSON answers, expiry, errors ---------------------------

namespace {

// One request as the scripted server read it.
struct Recorded {
  std::string method, target, body;
  std::map<std::string, std::string> headers;  // names in lower case
  int connection = 0;                          // 1 for the first accepted connection, ...
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  json::object message() const { return json::parse(body).as_object(); }
};

// How the body ends: complete, or never (the server then waits for the client to drop it).
enum class Ending { complete, hold };

struct Reply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool chunked = false;
  Ending ending = Ending::complete;
};

Reply json_reply(const json::value& v, std::vector<std::pair<std::string, std::string>> headers = {}) {
  headers.emplace_back("Content-Type", "application/json");
  return Reply{200, std::move(headers), json::serialize(v)};
}

Reply sse_reply(std::vector<json::object> messages, Ending ending = Ending::complete) {
  Reply r{200, {{"Content-Type", "text/event-stream"}}, "id: prime\ndata: \n\n", true, ending};
  for (const auto& m : messages) r.body += "event: message\ndata: " + json::serialize(m) + "\n\n";
  return r;
}

json::object response_to(const Recorded& r, json::object result) {
  return json::object{{"jsonrpc", "2.0"}, {"id", r.message().at("id")}, {"result", std::move(result)}};
}

std::string render(const Reply& r) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " Scripted\r\n";
  for (const auto& [name, value] : r.headers) out += name + ": " + value + "\r\n";
  if (!r.chunked) return out + "Content-Length: " + std::to_string(r.body.size()) + "\r\n\r\n" + r.body;
  out += "Transfer-Encoding: chunked\r\n\r\n";
  if (!r.body.empty()) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", r.body.size());
    out += size + r.body + "\r\n";
  }
  if (r.ending == Ending::complete) out += "0\r\n\r\n";
  return out;
}

// A loopback HTTP/1.1 server on the test's loop that answers each request with `script`, and
// records what it read. stop() ends it (and so lets the loop run out of work).
class ScriptedServer {
 public:
  ScriptedServer(asio::io_context& io, std::function<Reply(const Recorded&)> script)
      : script_(std::move(script)), acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        port_(acceptor_.local_endpoint().port()), changed_(io, asio::steady_timer::time_point::max()) {
    asio::co_spawn(io, accept_loop(this), asio::detached);
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/mcp"; }

  std::vector<Recorded> requests;
  int connections = 0;
  int dropped_by_client = 0;  // held answers whose connection the client closed

  /// Waits until `ready()` holds; every change of the server (and poke()) re-checks it.
  asio::awaitable<void> until(std::function<bool()> ready) {
    while (!ready()) {
      changed_.expires_at(asio::steady_timer::time_point::max());
      co_await changed_.async_wait(k_token);
    }
  }
  void poke() { changed_.cancel(); }
  asio::steady_timer* change_timer() { return &changed_; }

  void stop() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    for (auto& s : sockets_) s.close(ec);
    changed_.cancel();
  }

 private:
  static asio::awaitable<void> accept_loop(ScriptedServer* self) {
    for (;;) {
      auto [ec, socket] = co_await self->acceptor_.async_accept(k_token);
      if (ec) co_return;
      self->sockets_.push_back(std::move(socket));
      asio::co_spawn(self->acceptor_.get_executor(), serve(self, &self->sockets_.back(), ++self->connections),
                     asio::detached);
    }
  }

  static asio::awaitable<void> serve(ScriptedServer* self, tcp::socket* socket, int index) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      auto [ec, n] = co_await http::async_read(*socket, buffer, req, k_token);
      if (ec) co_return;
      Recorded r;
      r.method = std::string(req.method_string());
      r.target = std::string(req.target());
      r.body = req.body();
      for (const auto& f : req) {
        std::string name(f.name_string());
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        r.headers[name] = std::string(f.value());
      }
      r.connection = index;
      self->requests.push_back(r);
      const Reply reply = self->script_(r);
      self->poke();
      const std::string raw = render(reply);
      auto [wec, written] = co_await asio::async_write(*socket, asio::buffer(raw), k_token);
      if (wec) co_return;
      if (reply.ending == Ending::hold) {
        char c = 0;
        co_await socket->async_read_some(asio::buffer(&c, 1), k_token);  // EOF: the client dropped it
        ++self->dropped_by_client;
        self->poke();
        co_return;
      }
    }
  }

  std::function<Reply(const Recorded&)> script_;
  tcp::acceptor acceptor_;
  unsigned short port_;
  asio::steady_timer changed_;
  std::list<tcp::socket> sockets_;
};

// An MCP server in a few lines: session "s-1" (then "s-2", ...), protocol 2025-06-18, JSON answers
// to everything, 202 to notifications; tools/list answered 404 while `expired` is set.
struct JsonScript {
  int sessions = 0;
  bool expired = false;
  Reply operator()(const Recorded& r) {
    if (r.method == "DELETE") return Reply{200, {}, ""};
    const json::object m = r.message();
    if (!m.contains("id")) return Reply{202, {}, ""};
    if (m.at("method").as_string() == "initialize")
      return json_reply(response_to(r, {{"protocolVersion", "2025-06-18"}, {"capabilities", json::object{}}}),
                        {{"Mcp-Session-Id", "s-" + std::to_string(++sessions)}});
    if (expired) return Reply{404, {{"Content-Type", "application/json"}}, R"({"error":{"message":"Session not found"}})"};
    return json_reply(response_to(r, {{"tools", json::array{}}}));
  }
};

struct Scripted {
  asio::io_context io;
  ScriptedServer server;
  Seen seen;
  std::unique_ptr<Transport> transport;

  explicit Scripted(std::function<Reply(const Recorded&)> script,
                    std::vector<std::pair<std::string, std::string>> headers = {})
      : server(io, std::move(script)), transport(make(io, server.url(), &seen, std::move(headers))) {}
  ~Scripted() { server.stop(); }

  // Runs `op` on the loop (the server stops with it, so the loop runs out of work).
  template <class T>
  T run(asio::awaitable<T> op) {
    return run_on(io, finally_stop(&server, std::move(op)));
  }
  template <class T>
  static asio::awaitable<T> finally_stop(ScriptedServer* server, asio::awaitable<T> op) {
    T out = co_await std::move(op);
    server->stop();
    co_return out;
  }
};

asio::awaitable<std::vector<Result>> send_all(Transport* t, std::vector<json::object> messages) {
  std::vector<Result> out;
  REQUIRE(co_await t->open());
  for (auto& m : messages) out.push_back(co_await t->send(std::move(m)));
  co_return out;
}

asio::awaitable<bool> close_after(Transport* t, std::vector<json::object> messages) {
  for (const auto& r : co_await send_all(t, std::move(messages))) REQUIRE(r);
  co_await t->close();
  co_return true;
}

// initialize, tools/list (which arms expiry), tools/list (404), then a new session.
asio::awaitable<std::vector<Result>> expire_then_reinitialize(Transport* t, JsonScript* script) {
  std::vector<json::object> first;  // g++ 12 cannot keep a braced list alive across a co_await
  for (auto m : {initialize(1), initialized(), request(2, "tools/list"), request(3, "tools/list")}) first.push_back(m);
  auto out = co_await send_all(t, std::move(first));
  script->expired = false;
  out.push_back(co_await t->send(initialize(4)));
  out.push_back(co_await t->send(initialized()));
  out.push_back(co_await t->send(request(5, "ping")));
  co_return out;
}

const std::string k_secret = "sk-mcp-test-secret-0123456789";

}  // namespace

TEST_CASE("HTTP transport: JSON answers, the headers it sends, and the session ID", "[mcp][http]") {
  Scripted s{JsonScript{}, {{"Authorization", "Bearer tok-12345678"}, {"X-Extra", "yes"}, {"Accept", "text/plain"}}};
  const auto results = s.run(send_all(s.transport.get(), {initialize(1), initialized(), request(2, "tools/list")}));
  REQUIRE(results.size() == 3);
  for (const auto& r : results) CHECK(r);
  REQUIRE(s.seen.messages.size() == 2);
  CHECK(s.seen.messages[0].at("result").at("protocolVersion").as_string() == "2025-06-18");
  CHECK(s.seen.messages[1].at("id").as_int64() == 2);

  REQUIRE(s.server.requests.size() == 3);
  for (const auto& r : s.server.requests) {
    CHECK(r.method == "POST");
    CHECK(r.target == "/mcp");
    CHECK(r.header("accept") == "application/json, text/event-stream");  // the configured Accept is not sent
    CHECK(r.header("content-type") == "application/json");
    CHECK(r.header("authorization") == "Bearer tok-12345678");
    CHECK(r.header("x-extra") == "yes");
  }
  const auto& init = s.server.requests[0];
  CHECK(init.message().at("method").as_string() == "initialize");
  CHECK(init.header("mcp-session-id").empty());
  CHECK(init.header("mcp-protocol-version").empty());
  for (int i : {1, 2}) {
    CHECK(s.server.requests[i].header("mcp-session-id") == "s-1");
    CHECK(s.server.requests[i].header("mcp-protocol-version") == "2025-06-18");
  }
  // Keep-alive: every exchange on one pooled connection.
  CHECK(s.server.connections == 1);
}

TEST_CASE("HTTP transport: close() DELETEs the session with its ID", "[mcp][http]") {
  Scripted s{JsonScript{}};
  s.run(close_after(s.transport.get(), {initialize(1), initialized()}));
  REQUIRE(s.server.requests.size() == 3);
  const auto& del = s.server.requests[2];
  CHECK(del.method == "DELETE");
  CHECK(del.target == "/mcp");
  CHECK(del.header("mcp-session-id") == "s-1");
  CHECK(del.header("mcp-protocol-version") == "2025-06-18");
  CHECK(del.body.empty());
}

TEST_CASE("HTTP transport: session expiry, then a new session", "[mcp][http]") {
  auto script = std::make_shared<JsonScript>();
  Scripted s{[script](const Recorded& r) {
    Reply reply = (*script)(r);
    if (!r.body.empty() && r.message().at("method").as_string() == "tools/list" && !script->expired) script->expired = true;
    return reply;
  }};
  // tools/list #2 succeeds and arms expiry; #3 meets the 404; initialize #4 starts session s-2
  // (it must not carry s-1); after it, tools/list #5 carries s-2 — the script no longer expires it.
  const auto results = s.run(expire_then_reinitialize(s.transport.get(), script.get()));
  REQUIRE(results.size() == 7);
  CHECK(results[2]);
  REQUIRE_FALSE(results[3]);
  CHECK(results[3].error() == "MCP server 'everything' (http: " + s.server.url() +
                                  "): the session expired (HTTP 404); a new one needs an initialize");
  REQUIRE(s.seen.closed.size() == 1);
  CHECK(s.seen.closed[0] == results[3].error());
  CHECK(results[4]);
  CHECK(results[5]);
  CHECK(results[6]);
  REQUIRE(s.server.requests.size() == 7);
  CHECK(s.server.requests[3].header("mcp-session-id") == "s-1");
  CHECK(s.server.requests[4].header("mcp-session-id").empty());  // the new initialize goes without
  CHECK(s.server.requests[4].header("mcp-protocol-version").empty());
  CHECK(s.server.requests[6].header("mcp-session-id") == "s-2");
}

TEST_CASE("HTTP transport: what a server answers wrongly is an error naming the server", "[mcp][http]") {
  dagent::text::register_secret(k_secret);
  std::function<Reply(const Recorded&)> answer;
  Scripted s{[&answer](const Recorded& r) { return answer(r); }, {{"X-Api-Key", "header-token-987654"}}};
  const std::string prefix = "MCP server 'everything' (http: " + s.server.url() + "): ";

  SECTION("an error status: the body's message, cut, with secrets masked") {
    answer = [](const Recorded&) {
      return Reply{500, {{"Content-Type", "text/plain"}},
                   "boom: key " + k_secret + " and header-token-987654\n" + std::string(1000, 'x')};
    };
    const auto r = s.run(send_all(s.transport.get(), {request(1, "tools/list")}));
    REQUIRE_FALSE(r[0]);
    const std::string& e = r[0].error();
    CHECK(e.starts_with(prefix + "HTTP 500: boom: key [redacted API key] and [redacted API key] xxx"));
    CHECK(e.find(k_secret) == std::string::npos);
    CHECK(e.find("header-token") == std::string::npos);
    CHECK(e.size() < prefix.size() + 400);
    CHECK(s.seen.closed.empty());  // the server answered: the channel still works
  }
  SECTION("a JSON-RPC error body gives its message") {
    answer = [](const Recorded&) {
      return Reply{400, {{"Content-Type", "application/json"}},
                   R"({"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: nope"},"id":null})"};
    };
    const auto r = s.run(send_all(s.transport.get(), {request(1, "tools/list")}));
    REQUIRE_FALSE(r[0]);
    CHECK(r[0].error() == prefix + "HTTP 400: Bad Request: nope");
  }
  SECTION("bad JSON") {
    answer = [](const Recorded&) { return Reply{200, {{"Content-Type", "application/json"}}, "{\"jsonrpc\":"}; };
    const auto r = s.run(send_all(s.transport.get(), {request(1, "tools/list")}));
    REQUIRE_FALSE(r[0]);
    CHECK(r[0].error().starts_with(prefix + "a message is not valid JSON: "));
  }
  SECTION("a content type that is neither JSON nor an event stream") {
    answer = [](const Recorded&) { return Reply{200, {{"Content-Type", "text/html"}}, "<html></html>"}; };
    const auto r = s.run(send_all(s.transport.get(), {request(1, "tools/list")}));
    REQUIRE_FALSE(r[0]);
    CHECK(r[0].error() == prefix + "the answer's Content-Type is 'text/html', not application/json or text/event-stream");
  }
  SECTION("202 Accepted to a request") {
    answer = [](const Recorded&) { return Reply{202, {}, ""}; };
    const auto r = s.run(send_all(s.transport.get(), {request(1, "tools/list"), initialized()}));
    REQUIRE_FALSE(r[0]);
    CHECK(r[0].error() == prefix + "the server answered a request with 202 Accepted: its response would come on the "
                                   "GET stream, which dagent does not open");
    CHECK(r[1]);  // a notification answered 202 is fine
  }
  SECTION("an event stream without event IDs that ends before the response") {
    answer = [](const Recorded&) {
      return Reply{200, {{"Content-Type", "text/event-stream"}},
                   "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n", true};
    };
    const auto r = s.run(send_all(s.transport.get(), {request(1, "tools/list")}));
    REQUIRE_FALSE(r[0]);
    CHECK(r[0].error() == prefix + "the answer ended before the response to request 1");
    CHECK(s.seen.messages.size() == 1);  // the notification was still delivered
    CHECK(s.server.requests.size() == 1);  // nothing to resume from
  }
  SECTION("an event stream with IDs that ends before the response, on a server without GET streams") {
    answer = [](const Recorded& r) {
      if (r.method == "GET") return Reply{405, {}, ""};
      return sse_reply({json::object{{"jsonrpc", "2.0"}, {"method", "notifications/message"}, {"params", json::object{}}}});
    };
    const auto r = s.run(send_all(s.transport.get(), {request(1, "tools/list")}));
    REQUIRE_FALSE(r[0]);
    CHECK(r[0].error() == prefix + "the answer ended before the response to request 1, and resuming it failed: HTTP 405");
    CHECK(s.seen.messages.size() == 1);
    REQUIRE(s.server.requests.size() == 2);
    CHECK(s.server.requests[1].header("last-event-id") == "prime");
  }
}

namespace {

std::string event(std::string_view id, const json::object& message) {
  return "id: " + std::string(id) + "\nevent: message\ndata: " + json::serialize(message) + "\n\n";
}

json::object progress(int n) {
  return json::object{{"jsonrpc", "2.0"}, {"method", "notifications/progress"}, {"params", json::object{{"progress", n}}}};
}

}  // namespace

TEST_CASE("HTTP transport: a stream ended before the response is resumed with Last-Event-ID", "[mcp][http]") {
  // Protocol 2025-11-25 polling: the POST's stream ends after a priming event (retry 0) and one
  // progress event; the first GET gets nothing new and ends; the second brings the response.
  std::string first_request;
  int gets = 0;
  Scripted s{[&first_request, &gets](const Recorded& r) {
    if (r.method == "POST" && r.message().contains("id")) {
      if (r.message().at("method").as_string() == "initialize")
        return json_reply(response_to(r, {{"protocolVersion", "2025-11-25"}}), {{"Mcp-Session-Id", "s-9"}});
      first_request = r.body;
      return Reply{200, {{"Content-Type", "text/event-stream"}}, "id: e0\nretry: 0\ndata: \n\n" + event("e1", progress(1)), true};
    }
    if (r.method == "POST") return Reply{202, {}, ""};
    const json::object request_made = json::parse(first_request).as_object();
    if (++gets == 1)
      return Reply{200, {{"Content-Type", "text/event-stream"}}, ": nothing yet\n\n", true};
    return Reply{200, {{"Content-Type", "text/event-stream"}},
                 event("e2", progress(2)) +
                     event("e3", json::object{{"jsonrpc", "2.0"}, {"id", request_made.at("id")}, {"result", json::object{}}}),
                 true};
  }};
  const auto results = s.run(send_all(s.transport.get(), {initialize(1), initialized(), request(2, "tools/call")}));
  for (const auto& r : results) CHECK(r);
  REQUIRE(s.seen.messages.size() == 4);
  CHECK(s.seen.messages[1].at("params").at("progress").as_int64() == 1);
  CHECK(s.seen.messages[2].at("params").at("progress").as_int64() == 2);
  CHECK(s.seen.messages[3].at("id").as_int64() == 2);
  REQUIRE(s.server.requests.size() == 5);
  for (int i : {3, 4}) {
    const Recorded& get = s.server.requests[i];
    CHECK(get.method == "GET");
    CHECK(get.target == "/mcp");
    CHECK(get.body.empty());
    CHECK(get.header("accept").find("text/event-stream") != std::string::npos);
    CHECK(get.header("mcp-session-id") == "s-9");
    CHECK(get.header("mcp-protocol-version") == "2025-11-25");
  }
  CHECK(s.server.requests[3].header("last-event-id") == "e1");
  CHECK(s.server.requests[4].header("last-event-id") == "e1");  // the empty stream moved nothing on
}

TEST_CASE("HTTP transport: resuming gives up after streams that bring nothing", "[mcp][http]") {
  Scripted s{[](const Recorded& r) {
    if (r.method == "GET") return Reply{200, {{"Content-Type", "text/event-stream"}}, ": nothing\n\n", true};
    return Reply{200, {{"Content-Type", "text/event-stream"}}, "id: e0\ndata: \n\n", true};
  }};
  const auto results = s.run(send_all(s.transport.get(), {request(1, "tools/call")}));
  REQUIRE_FALSE(results[0]);
  CHECK(results[0].error() == "MCP server 'everything' (http: " + s.server.url() +
                                  "): the answer ended before the response to request 1 (after 3 resumed streams)");
  CHECK(s.server.requests.size() == 4);  // the POST and three GETs
}

TEST_CASE("HTTP transport: event-stream answers end the exchange and keep the connection", "[mcp][http]") {
  Scripted s{[](const Recorded& r) {
    if (!r.message().contains("id")) return Reply{202, {}, ""};
    return sse_reply({json::object{{"jsonrpc", "2.0"}, {"method", "notifications/progress"}, {"params", json::object{}}},
                      response_to(r, {{"n", r.message().at("id")}})});
  }};
  const auto results = s.run(send_all(s.transport.get(), {request(1, "a"), request(2, "b"), initialized(), request(3, "c")}));
  for (const auto& r : results) CHECK(r);
  REQUIRE(s.seen.messages.size() == 6);
  CHECK(s.seen.messages[1].at("id").as_int64() == 1);
  CHECK(s.seen.messages[5].at("result").at("n").as_int64() == 3);
  CHECK(s.server.connections == 1);  // each stream was read to its end, then pooled
}

TEST_CASE("HTTP transport: a stream kept open after the response is dropped, not pooled", "[mcp][http]") {
  Scripted s{[](const Recorded& r) { return sse_reply({response_to(r, {})}, Ending::hold); }};
  const auto results = s.run(send_all(s.transport.get(), {request(1, "a"), request(2, "b")}));
  CHECK(results[0]);
  CHECK(results[1]);
  CHECK(s.seen.messages.size() == 2);
  CHECK(s.server.connections == 2);
}

namespace {

// Starts a send that the server holds mid-stream, cancels it once the server has answered the
// head and one event, and waits until the server sees the connection dropped; then sends again.
asio::awaitable<std::optional<Result>> cancel_mid_stream(Transport* t, ScriptedServer* server, Outcome* outcome) {
  REQUIRE(co_await t->open());
  asio::cancellation_signal cancel;
  outcome->wake = server->change_timer();
  asio::co_spawn(co_await asio::this_coro::executor, send_recording(t, request(1, "slow"), outcome),
                 asio::bind_cancellation_slot(cancel.slot(), asio::detached));
  co_await server->until([server] { return !server->requests.empty(); });
  // The head and the first event are on their way; the cancellation may meet the send anywhere after.
  cancel.emit(asio::cancellation_type::terminal);
  co_await server->until([server, outcome] { return server->dropped_by_client == 1 && outcome->done; });
  co_return co_await t->send(request(2, "fast"));
}

}  // namespace

TEST_CASE("HTTP transport: cancelling a send drops its connection mid-body", "[mcp][http]") {
  Scripted s{[](const Recorded& r) {
    if (r.message().at("method").as_string() == "slow")
      return sse_reply({json::object{{"jsonrpc", "2.0"}, {"method", "notifications/progress"}, {"params", json::object{}}}},
                       Ending::hold);
    return json_reply(response_to(r, {}));
  }};
  Outcome outcome;
  const auto later = s.run(cancel_mid_stream(s.transport.get(), &s.server, &outcome));
  CHECK(outcome.done);
  CHECK((outcome.threw || (outcome.result && !*outcome.result)));
  CHECK(s.server.dropped_by_client == 1);
  REQUIRE(later);
  CHECK(*later);
  REQUIRE(s.server.requests.size() == 2);
  CHECK(s.server.requests[1].connection == 2);  // the abandoned connection was not pooled
  CHECK(s.seen.closed.empty());
}
