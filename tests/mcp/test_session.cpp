#include "mcp/session.hpp"

#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "support/run_on.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using dagent::ToolErrc;
using dagent::mcp::Progress;
using dagent::mcp::Session;
using dagent::mcp::Transport;
using dagent::mcp::TransportHandler;

// A server in memory: each message sent is kept, and answered (later, on the loop) by method:
//   "hang" never; "crash" closes the channel; "progress" sends two progress notifications
//   first; "ask" makes the server send requests (ping, roots/list) of its own; others echo
//   the method as the result.
class FakeTransport final : public Transport {
 public:
  explicit FakeTransport(asio::any_io_executor ex) : ex_(ex) {}
  void set_handler(TransportHandler handler) override { handler_ = std::move(handler); }
  asio::awaitable<boost::system::result<void, std::string>> open() override {
    co_return boost::system::result<void, std::string>{};
  }
  asio::awaitable<boost::system::result<void, std::string>> send(json::object message) override {
    sent.push_back(message);
    asio::post(ex_, Answer{this, std::move(message)});
    co_return boost::system::result<void, std::string>{};
  }
  asio::awaitable<void> close() override {
    closed = true;
    co_return;
  }
  std::string describe() const override { return "fake"; }

  std::vector<json::object> sent;
  bool closed = false;

 private:
  struct Answer {
    FakeTransport* t;
    json::object message;
    void operator()() const { t->answer(message); }
  };
  void deliver(json::object m) {
    if (handler_.message) handler_.message(std::move(m));
  }
  void answer(const json::object& m) {
    const auto* method = m.if_contains("method");
    if (!method || !m.contains("id")) return;  // a notification or our answer to a server request
    const auto id = m.at("id");
    if (*method == "hang") return;
    if (*method == "crash") {
      if (handler_.closed) handler_.closed("MCP server 'fake' exited with status 1");
      return;
    }
    if (*method == "progress") {
      const auto token = m.at("params").at("_meta").at("progressToken");
      deliver({{"jsonrpc", "2.0"}, {"method", "notifications/progress"},
               {"params", {{"progressToken", token}, {"progress", 1}, {"total", 2}, {"message", "half"}}}});
      deliver({{"jsonrpc", "2.0"}, {"method", "notifications/progress"},
               {"params", {{"progressToken", 999}, {"progress", 1}}}});  // another request's: dropped
      deliver({{"jsonrpc", "2.0"}, {"method", "notifications/progress"},
               {"params", {{"progressToken", token}, {"progress", 2}, {"total", 2}}}});
    }
    if (*method == "ask") {
      deliver({{"jsonrpc", "2.0"}, {"id", "s1"}, {"method", "ping"}});
      deliver({{"jsonrpc", "2.0"}, {"id", 7}, {"method", "roots/list"}});
    }
    if (*method == "fail") {
      deliver({{"jsonrpc", "2.0"}, {"id", id}, {"error", {{"code", -32602}, {"message", "Invalid params"}}}});
      return;
    }
    deliver({{"jsonrpc", "2.0"}, {"id", id}, {"result", {{"method", *method}}}});
  }

  asio::any_io_executor ex_;
  TransportHandler handler_;
};

struct Fixture {
  asio::io_context io;
  std::shared_ptr<FakeTransport> fake = std::make_shared<FakeTransport>(io.get_executor());
  Session session{io.get_executor(), fake, "fake", std::chrono::milliseconds(60000)};

  std::vector<json::object> sent_with_method(std::string_view method) const {
    std::vector<json::object> out;
    for (const auto& m : fake->sent)
      if (const auto* v = m.if_contains("method"); v && v->is_string() && v->get_string() == method) out.push_back(m);
    return out;
  }
};

using Outcome = boost::system::result<json::value, dagent::mcp::RequestError>;

asio::awaitable<Outcome> open_and_request(Session* s, std::string method, std::vector<Progress>* progress) {
  (void)co_await s->open();
  std::function<void(const Progress&)> on_progress;
  if (progress) on_progress = [progress](const Progress& p) { progress->push_back(p); };
  auto r = co_await s->request(std::move(method), {}, std::move(on_progress));
  co_await s->close();
  co_return r;
}

// The request raced against a timer that fires first (the request never completes): as a step
// timeout cancels a tool call.
asio::awaitable<Outcome> request_given_up(Session* s) {
  using namespace asio::experimental::awaitable_operators;
  (void)co_await s->open();
  asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(1));
  auto winner = co_await (s->request("hang", {}) || timer.async_wait(asio::as_tuple(asio::use_awaitable)));
  REQUIRE(winner.index() == 1);
  co_await s->close();
  co_return Outcome{dagent::mcp::RequestError{ToolErrc::cancelled, "given up"}};
}

}  // namespace

TEST_CASE("Session: a request gets its response, its id is sent and matched", "[mcp][session]") {
  Fixture f;
  auto r = dagent::test::run_on(f.io, open_and_request(&f.session, "tools/list", nullptr));
  REQUIRE(r.has_value());
  CHECK(*r == json::parse(R"({"method": "tools/list"})"));
  const auto sent = f.sent_with_method("tools/list");
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].at("jsonrpc") == "2.0");
  CHECK(sent[0].at("id").is_int64());
  CHECK_FALSE(sent[0].contains("params"));  // no _meta without a progress callback
  CHECK(f.fake->closed);
}

TEST_CASE("Session: an error response fails the request with the server's message", "[mcp][session]") {
  Fixture f;
  auto r = dagent::test::run_on(f.io, open_and_request(&f.session, "fail", nullptr));
  REQUIRE(r.has_error());
  CHECK(r.error().code == ToolErrc::failed);
  CHECK(r.error().message == "MCP server 'fake': Invalid params");
}

TEST_CASE("Session: progress is routed by token to its request, others' are dropped", "[mcp][session]") {
  Fixture f;
  std::vector<Progress> progress;
  auto r = dagent::test::run_on(f.io, open_and_request(&f.session, "progress", &progress));
  REQUIRE(r.has_value());
  REQUIRE(progress.size() == 2);
  CHECK(progress[0].progress == 1);
  CHECK(progress[0].total == 2);
  CHECK(progress[0].message == "half");
  CHECK(progress[1].progress == 2);
  const auto sent = f.sent_with_method("progress");
  CHECK(sent[0].at("params").at("_meta").at("progressToken") == sent[0].at("id"));
}

TEST_CASE("Session: the server's ping is answered, roots/list refused with -32601", "[mcp][session]") {
  Fixture f;
  auto r = dagent::test::run_on(f.io, open_and_request(&f.session, "ask", nullptr));
  REQUIRE(r.has_value());
  std::vector<json::object> answers;
  for (const auto& m : f.fake->sent)
    if (!m.contains("method")) answers.push_back(m);
  REQUIRE(answers.size() == 2);
  CHECK(answers[0] == json::parse(R"({"jsonrpc": "2.0", "id": "s1", "result": {}})").as_object());
  CHECK(answers[1].at("id") == 7);
  CHECK(answers[1].at("error").at("code") == -32601);
}

TEST_CASE("Session: a request given up sends notifications/cancelled with its id", "[mcp][session]") {
  Fixture f;
  (void)dagent::test::run_on(f.io, request_given_up(&f.session));
  const auto calls = f.sent_with_method("hang");
  const auto cancels = f.sent_with_method("notifications/cancelled");
  REQUIRE(calls.size() == 1);
  REQUIRE(cancels.size() == 1);
  CHECK(cancels[0].at("params").at("requestId") == calls[0].at("id"));
  CHECK(f.session.pending() == 0);
}

TEST_CASE("Session: no answer within the timeout is timed_out, and cancelled on the server", "[mcp][session]") {
  asio::io_context io;
  auto fake = std::make_shared<FakeTransport>(io.get_executor());
  Session session(io.get_executor(), fake, "fake", std::chrono::milliseconds(1));
  auto r = dagent::test::run_on(io, open_and_request(&session, "hang", nullptr));
  REQUIRE(r.has_error());
  CHECK(r.error().code == ToolErrc::timed_out);
  CHECK(r.error().message == "MCP server 'fake': hang: no answer within 1 ms (mcp.servers.fake.timeout_ms)");
  bool cancelled = false;
  for (const auto& m : fake->sent) cancelled = cancelled || m.at("method") == "notifications/cancelled";
  CHECK(cancelled);
}

TEST_CASE("Session: the channel closing fails the pending request with the reason, later ones at once", "[mcp][session]") {
  Fixture f;
  auto r = dagent::test::run_on(f.io, open_and_request(&f.session, "crash", nullptr));
  REQUIRE(r.has_error());
  CHECK(r.error().code == ToolErrc::unavailable);
  CHECK(r.error().message == "MCP server 'fake' exited with status 1");
  CHECK_FALSE(f.session.alive());
}
