#include "redis/redis_client.hpp"

#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include "net/tls_context.hpp"
#include "support/redis_process.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"

namespace asio = boost::asio;
using dagent::redis::Command;
using dagent::redis::RedisClient;
using dagent::redis::RedisErrc;
using dagent::redis::RedisOptions;
using dagent::redis::Reply;
using dagent::test::RedisServer;
using dagent::test::run_on;
using Result = boost::system::result<Reply, dagent::redis::RedisError>;

namespace {

RedisOptions options_for(const RedisServer& server, std::string password_env = "") {
  dagent::config::RedisConfig cfg;
  cfg.url = server.url();
  cfg.password_env = std::move(password_env);
  cfg.timeout_ms = 300;
  cfg.connect_timeout_ms = 1000;
  auto options = RedisOptions::from(cfg, ".");
  REQUIRE(options.has_value());
  return std::move(*options);
}

asio::awaitable<Result> send(RedisClient client, Command args) { co_return co_await client.command(std::move(args)); }

asio::awaitable<boost::system::result<std::vector<Reply>, dagent::redis::RedisError>> send_all(RedisClient client,
                                                                                                std::vector<Command> commands) {
  co_return co_await client.pipeline(std::move(commands));
}

// PING until it succeeds, at most `attempts` times, `gap` apart (the reconnect backoff runs meanwhile).
asio::awaitable<int> ping_until_up(RedisClient client, int attempts, std::chrono::milliseconds gap) {
  const Command ping{"PING"};  // g++ 12: no braced initializer inside a co_await
  for (int i = 1; i <= attempts; ++i) {
    auto r = co_await client.command(ping);
    if (r) co_return i;
    asio::steady_timer timer(co_await asio::this_coro::executor, gap);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_return 0;
}

struct Collect {
  std::vector<Result>* out;
  void operator()(std::exception_ptr e, Result r) const {
    if (e) std::rethrow_exception(e);
    out->push_back(std::move(r));
  }
};

}  // namespace

TEST_CASE("RedisClient sends commands and pipelines to redis-server") {
  RedisServer server;
  asio::io_context io;
  RedisClient client(io.get_executor(), options_for(server));

  SECTION("replies of every type, binary-safe values") {
    const std::string value("a\r\n\0b", 5);
    CHECK(run_on(io, send(client, {"SET", "k", value}))->str == "OK");
    CHECK(run_on(io, send(client, {"GET", "k"}))->str == value);
    CHECK(run_on(io, send(client, {"GET", "missing"}))->type == Reply::Type::nil);
    auto wrong = run_on(io, send(client, {"INCR", "k"}));
    REQUIRE(wrong.has_value());  // an error reply is a reply, and the connection stays usable
    CHECK(wrong->is_error());
    CHECK(run_on(io, send(client, {"PING"}))->str == "PONG");
    CHECK(client.open_connections() == 1);
  }
  SECTION("a pipeline's replies come back in order on one connection") {
    std::vector<Command> incrs(100, Command{"INCR", "n"});
    auto replies = run_on(io, send_all(client, incrs));
    REQUIRE(replies.has_value());
    REQUIRE(replies->size() == 100);
    for (int i = 0; i < 100; ++i) CHECK((*replies)[i].integer == i + 1);
    CHECK(client.stats().commands == 100);
    CHECK(client.stats().connects == 1);
  }
  SECTION("concurrent commands share at most pool_size connections") {
    auto options = options_for(server);
    options.pool_size = 2;
    RedisClient small(io.get_executor(), std::move(options));
    std::vector<Result> results;
    for (int i = 0; i < 20; ++i) asio::co_spawn(io, send(small, {"INCR", "c"}), Collect{&results});
    io.restart();
    io.run();
    REQUIRE(results.size() == 20);
    for (const auto& r : results) CHECK(r.has_value());
    CHECK(small.stats().connects >= 1);
    CHECK(small.stats().connects <= 2);
    CHECK(small.stats().commands == 20);
    // Issued in one turn of the loop, they share writes instead of taking turns on two connections.
    CHECK(small.stats().writes < 20);
    CHECK(run_on(io, send(small, {"GET", "c"}))->str == "20");
  }
}

asio::awaitable<Result> send_within(RedisClient client, Command args, std::chrono::milliseconds timeout) {
  co_return co_await client.command(std::move(args), timeout);
}

struct Keep {
  std::optional<Result>* out;
  void operator()(std::exception_ptr e, Result r) const {
    if (e) std::rethrow_exception(e);
    *out = std::move(r);
  }
};

// The error of a caller that left (its command failed).
boost::system::error_code left_with(const std::optional<Result>& r) {
  REQUIRE(r.has_value());
  REQUIRE_FALSE(r->has_value());
  return r->error().code;
}

std::int64_t integer_reply(const std::optional<Result>& r) {
  REQUIRE(r.has_value());
  REQUIRE(r->has_value());
  return (*r)->integer;
}

asio::awaitable<void> cancel_after(asio::cancellation_signal& signal, std::chrono::milliseconds delay) {
  asio::steady_timer timer(co_await asio::this_coro::executor, delay);
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  signal.emit(asio::cancellation_type::terminal);
}

TEST_CASE("RedisClient: a caller that leaves does not take the others' commands or the connection with it") {
  RedisServer server;
  asio::io_context io;
  auto options = options_for(server);
  options.pool_size = 1;
  RedisClient client(io.get_executor(), std::move(options));
  REQUIRE(run_on(io, send(client, {"PING"})).has_value());
  std::optional<Result> slow, leaving, queued;

  SECTION("one whose deadline passes while it waits for the connection is never sent") {
    asio::co_spawn(io, send_within(client, {"DEBUG", "SLEEP", "1"}, std::chrono::milliseconds(5000)), Keep{&slow});
    io.restart();
    io.poll();  // the sleep is written before the others queue
    asio::co_spawn(io, send_within(client, {"INCR", "left"}, std::chrono::milliseconds(100)), Keep{&leaving});
    asio::co_spawn(io, send_within(client, {"INCR", "stayed"}, std::chrono::milliseconds(5000)), Keep{&queued});
    io.restart();
    io.run();
    REQUIRE(slow.has_value());
    CHECK(slow->has_value());
    CHECK(left_with(leaving) == RedisErrc::timeout);
    CHECK(integer_reply(queued) == 1);
    CHECK(run_on(io, send(client, {"EXISTS", "left"}))->integer == 0);
  }
  SECTION("one cancelled while its command is on the connection leaves it to finish") {
    asio::cancellation_signal cancel;
    asio::co_spawn(io, send_within(client, {"DEBUG", "SLEEP", "0.3"}, std::chrono::milliseconds(5000)),
                   asio::bind_cancellation_slot(cancel.slot(), Keep{&leaving}));
    asio::co_spawn(io, send_within(client, {"INCR", "after"}, std::chrono::milliseconds(5000)), Keep{&queued});
    asio::co_spawn(io, cancel_after(cancel, std::chrono::milliseconds(50)), asio::detached);
    io.restart();
    io.run();
    CHECK(left_with(leaving) == RedisErrc::cancelled);
    CHECK(integer_reply(queued) == 1);
    CHECK(client.stats().connects == 1);  // the cancelled caller did not cost the connection
  }
  SECTION("when every caller of a write has left, its connection is closed, not waited on") {
    asio::cancellation_signal cancel;
    // BLOCK 0 waits forever: io.run() returns only because the connection is closed.
    asio::co_spawn(io, send_within(client, {"XREAD", "BLOCK", "0", "STREAMS", "s", "$"}, std::chrono::milliseconds(600000)),
                   asio::bind_cancellation_slot(cancel.slot(), Keep{&leaving}));
    asio::co_spawn(io, cancel_after(cancel, std::chrono::milliseconds(50)), asio::detached);
    io.restart();
    io.run();
    CHECK(left_with(leaving) == RedisErrc::cancelled);
    CHECK(client.open_connections() == 0);
    CHECK(run_on(io, send(client, {"PING"}))->str == "PONG");  // on a new connection
    CHECK(client.stats().connects == 2);
  }
}

TEST_CASE("RedisClient authenticates with the password named by redis.password_env") {
  RedisServer server({.password = "s3cret-pw"});
  asio::io_context io;
  ::setenv("DAGENT_TEST_REDIS_PASSWORD", "s3cret-pw", 1);
  ::setenv("DAGENT_TEST_REDIS_WRONG", "not-the-pw", 1);

  SECTION("the right password") {
    RedisClient client(io.get_executor(), options_for(server, "DAGENT_TEST_REDIS_PASSWORD"));
    CHECK(run_on(io, send(client, {"PING"}))->str == "PONG");
  }
  SECTION("a wrong password fails the connect, and the message does not show it") {
    RedisClient client(io.get_executor(), options_for(server, "DAGENT_TEST_REDIS_WRONG"));
    auto r = run_on(io, send(client, {"PING"}));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == RedisErrc::auth_failed);
    CHECK(r.error().message.find("not-the-pw") == std::string::npos);
    CHECK(r.error().message.find("redis.password_env") != std::string::npos);
  }
  SECTION("no password: the server's NOAUTH is an error reply") {
    RedisClient client(io.get_executor(), options_for(server));
    auto r = run_on(io, send(client, {"PING"}));
    REQUIRE(r.has_value());
    CHECK(r->is_error());
  }
  SECTION("an unset variable is refused up front") {
    dagent::config::RedisConfig cfg;
    cfg.url = server.url();
    cfg.password_env = "DAGENT_TEST_REDIS_UNSET_VARIABLE";
    auto options = RedisOptions::from(cfg, ".");
    REQUIRE_FALSE(options.has_value());
    CHECK(options.error().code == RedisErrc::no_password);
  }
}

TEST_CASE("RedisClient gives up on a command at its deadline and reconnects after") {
  RedisServer server;
  asio::io_context io;
  RedisClient client(io.get_executor(), options_for(server));
  RedisClient admin(io.get_executor(), options_for(server));
  REQUIRE(run_on(io, send(client, {"PING"})).has_value());

  SECTION("DEBUG SLEEP longer than the timeout") {
    auto r = run_on(io, send(client, {"DEBUG", "SLEEP", "1"}));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == RedisErrc::timeout);
    CHECK(client.stats().timeouts == 1);
    // The server sleeps on: commands time out until it wakes, on new connections.
    CHECK(run_on(io, ping_until_up(client, 100, std::chrono::milliseconds(50))) > 0);
    CHECK(client.stats().connects >= 2);  // the timed-out connection was not reused
  }
  SECTION("CLIENT PAUSE") {
    REQUIRE(run_on(io, send(admin, {"CLIENT", "PAUSE", "1000", "ALL"}))->str == "OK");
    auto r = run_on(io, send(client, {"PING"}));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == RedisErrc::timeout);
    // The pause ends by itself; until then commands time out (and the client reconnects after).
    CHECK(run_on(io, ping_until_up(client, 100, std::chrono::milliseconds(50))) > 0);
  }
  SECTION("a server that stops answering (SIGSTOP)") {
    server.pause();
    auto r = run_on(io, send(client, {"PING"}));
    server.resume();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == RedisErrc::timeout);
    CHECK(run_on(io, send(client, {"PING"}))->str == "PONG");
  }
}

TEST_CASE("RedisClient runs a blocking command with a deadline of its own") {
  RedisServer server;
  asio::io_context io;
  RedisClient client(io.get_executor(), options_for(server));  // timeout_ms 300
  SECTION("XREAD BLOCK longer than redis.timeout_ms returns nil at its own end") {
    auto r = run_on(io, send_within(client, {"XREAD", "BLOCK", "500", "STREAMS", "s", "$"}, std::chrono::milliseconds(2000)));
    REQUIRE(r.has_value());
    CHECK(r->type == Reply::Type::nil);
    CHECK(client.stats().timeouts == 0);
  }
  SECTION("a deadline shorter than the block is a timeout") {
    auto r = run_on(io, send_within(client, {"XREAD", "BLOCK", "0", "STREAMS", "s", "$"}, std::chrono::milliseconds(200)));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == RedisErrc::timeout);
  }
}

TEST_CASE("RedisClient reconnects with backoff after the server is killed and restarted") {
  RedisServer server;
  asio::io_context io;
  RedisClient client(io.get_executor(), options_for(server));
  REQUIRE(run_on(io, send(client, {"SET", "k", "v"})).has_value());
  server.kill();
  auto lost = run_on(io, send(client, {"PING"}));
  REQUIRE_FALSE(lost.has_value());
  CHECK(lost.error().code == RedisErrc::connection_closed);
  auto refused = run_on(io, send(client, {"PING"}));
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == RedisErrc::connect_failed);
  // Within the backoff nothing is tried: the caller learns at once.
  auto backoff = run_on(io, send(client, {"PING"}));
  REQUIRE_FALSE(backoff.has_value());
  CHECK(backoff.error().code == RedisErrc::unavailable);
  CHECK(client.stats().connect_failures == 1);
  server.start();
  CHECK(run_on(io, ping_until_up(client, 100, std::chrono::milliseconds(50))) > 0);
  CHECK(client.stats().connects == 2);
  CHECK(run_on(io, send(client, {"GET", "k"}))->type == Reply::Type::nil);  // no persistence
}

TEST_CASE("RedisClient speaks TLS to rediss and verifies the certificate") {
  RedisServer server({.tls = true});
  asio::io_context io;
  SECTION("trusting the test CA") {
    RedisOptions options = options_for(server);
    auto tls = dagent::net::TlsContext::create(dagent::test::TestCerts::get().ca().string(), "redis.ca_file");
    REQUIRE(tls.has_value());
    options.tls = *tls;
    RedisClient client(io.get_executor(), std::move(options));
    CHECK(run_on(io, send(client, {"PING"}))->str == "PONG");
  }
  SECTION("without it the handshake fails") {
    RedisOptions options = options_for(server);
    auto tls = dagent::net::TlsContext::create(dagent::test::TestCerts::get().other_ca().string(), "redis.ca_file");
    REQUIRE(tls.has_value());
    options.tls = *tls;
    RedisClient client(io.get_executor(), std::move(options));
    auto r = run_on(io, send(client, {"PING"}));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == RedisErrc::connect_failed);
    CHECK(r.error().message.find("TLS handshake") != std::string::npos);
  }
}
