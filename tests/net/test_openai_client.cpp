#include "net/openai_client.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "net/net_error.hpp"
#include "net/tls_context.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent::net;
using dagent::test::ServerCert;
using dagent::test::TestCerts;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

using dagent::test::run_on;

ChatRequest hello(std::string text = "hello") {
  ChatRequest r;
  r.model = "gpt-test";
  r.messages.push_back({"user", std::move(text)});
  r.max_tokens = 50;
  return r;
}

OpenAiOptions options_for(const TestServer& server) {
  OpenAiOptions o;
  o.base_url = *parse_base_url(server.base_url());
  o.api_key = "sk-test-key";
  o.http.connect_timeout = std::chrono::milliseconds(2000);
  o.http.request_timeout = std::chrono::milliseconds(5000);
  o.random01 = [] { return 0.0; };  // no jitter: delays are exact
  return o;
}

std::shared_ptr<TlsContext> test_ca_context(const std::string& ca) {
  auto tls = TlsContext::create(ca);
  REQUIRE(tls.has_value());
  return *tls;
}

// Chat with a fresh client; several calls in sequence on one client when `calls` > 1.
struct Client {
  asio::io_context io;
  OpenAiClient client;
  Client(const TestServer& server, OpenAiOptions o, std::shared_ptr<TlsContext> tls = nullptr)
      : client(io.get_executor(), std::move(tls), std::move(o)) {}
  LlmResult<ChatResponse> chat(ChatRequest r = hello()) { return run_on(io, client.chat(std::move(r))); }
};

json::array recent(const TestServer& server) { return server.stats().at("recent").as_array(); }
std::int64_t requests(const TestServer& server) { return server.stats().at("requests").at("total").to_number<std::int64_t>(); }

}  // namespace

TEST_CASE("chat over keep-alive HTTP reuses one connection", "[net][client]") {
  TestServer server;
  Client c(server, options_for(server));
  for (int i = 0; i < 20; ++i) {
    auto r = c.chat(hello("hello " + std::to_string(i)));
    REQUIRE(r.has_value());
    CHECK(r->content == "echo: hello " + std::to_string(i));
    CHECK(r->usage.prompt_tokens > 0);
    CHECK(r->usage.completion_tokens > 0);
  }
  auto m = c.client.metrics();
  CHECK(m.llm_calls == 20);
  CHECK(m.connections_opened == 1);
  CHECK(server.stats().at("connections_accepted") == 1);
  // The key went out as a bearer token; the server's log redacts it.
  CHECK(recent(server).back().at("headers").at("authorization") == "present");
}

TEST_CASE("with pooling off every request opens a connection", "[net][client]") {
  TestServer server;
  auto o = options_for(server);
  o.http.pooling = false;
  Client c(server, o);
  for (int i = 0; i < 5; ++i) REQUIRE(c.chat().has_value());
  CHECK(c.client.metrics().connections_opened == 5);
  CHECK(server.stats().at("connections_accepted") == 5);
}

TEST_CASE("a stale pooled connection is replaced transparently", "[net][client]") {
  TestServer server(TestServerOptions{.script = json::parse(
                                          R"({"rules": [{"path": "/v1/chat/completions", "nth": 1, "fault": "close_after_response"}]})")});
  Client c(server, options_for(server));
  REQUIRE(c.chat().has_value());
  auto second = c.chat();
  REQUIRE(second.has_value());
  CHECK(second->content == "echo: hello");
  auto m = c.client.metrics();
  CHECK(m.connections_opened == 2);
  CHECK(m.retries == 0);  // the replacement does not spend a retry
  CHECK(requests(server) == 2);
}

TEST_CASE("retries follow the SDK rules", "[net][client]") {
  SECTION("429 with retry-after-ms is honoured exactly") {
    TestServer server(TestServerOptions{.script = json::parse(R"({"rules": [{"path": "/v1/chat/completions", "times": 1,
        "status": 429, "headers": {"retry-after-ms": "300", "x-ratelimit-remaining-requests": "0"},
        "body": {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}}]})")});
    Client c(server, options_for(server));
    auto r = c.chat();
    REQUIRE(r.has_value());
    auto log = recent(server);
    REQUIRE(log.size() == 2);
    const double gap = log[1].at("arrival_ms").to_number<double>() - log[0].at("completion_ms").to_number<double>();
    CHECK(gap >= 300.0);
    CHECK(gap < 1000.0);
    CHECK(c.client.metrics().retries == 1);
  }
  SECTION("503, 503, then 200 succeeds") {
    TestServer server(TestServerOptions{.script = json::parse(
                                            R"({"rules": [{"path": "/v1/chat/completions", "times": 2, "status": 503, "headers": {"retry-after-ms": "10"}}]})")});
    Client c(server, options_for(server));
    auto r = c.chat();
    REQUIRE(r.has_value());
    CHECK(requests(server) == 3);
    CHECK(c.client.metrics().retries == 2);
  }
  SECTION("400 is not retried and keeps the API's error fields") {
    TestServer server(TestServerOptions{.script = json::parse(R"({"rules": [{"path": "/v1/chat/completions",
        "status": 400, "body": {"error": {"message": "bad model", "type": "invalid_request_error", "param": "model",
        "code": "model_not_found"}}}]})")});
    Client c(server, options_for(server));
    auto r = c.chat();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == NetErrc::api_error);
    CHECK(r.error().status == 400);
    CHECK(r.error().type == "invalid_request_error");
    CHECK(r.error().api_code == "model_not_found");
    CHECK_THAT(r.error().message, Catch::Contains("bad model"));
    CHECK(requests(server) == 1);
  }
  SECTION("x-should-retry: false stops a retry of a 503") {
    TestServer server(TestServerOptions{.script = json::parse(
                                            R"({"rules": [{"path": "/v1/chat/completions", "status": 503, "headers": {"x-should-retry": "false"}}]})")});
    Client c(server, options_for(server));
    REQUIRE_FALSE(c.chat().has_value());
    CHECK(requests(server) == 1);
  }
  SECTION("x-should-retry: true retries a 400") {
    TestServer server(TestServerOptions{.script = json::parse(R"({"rules": [{"path": "/v1/chat/completions", "times": 1,
        "status": 400, "headers": {"x-should-retry": "true", "retry-after-ms": "5"}}]})")});
    Client c(server, options_for(server));
    REQUIRE(c.chat().has_value());
    CHECK(requests(server) == 2);
  }
}

TEST_CASE("connection failures end with a clear error", "[net][client]") {
  SECTION("connection refused, after the retries") {
    std::string url;
    {
      TestServer gone;
      url = gone.base_url();
    }  // the port is closed now
    asio::io_context io;
    OpenAiOptions o;
    o.base_url = *parse_base_url(url);
    o.max_retries = 1;
    o.random01 = [] { return 1.0; };  // the shortest backoff: 375 ms
    OpenAiClient client(io.get_executor(), nullptr, o);
    auto r = run_on(io, client.chat(hello()));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == NetErrc::connect_failed);
    CHECK(r.error().attempts == 2);
  }
  SECTION("a reset before any response byte is a connection error") {
    TestServer server(TestServerOptions{.script = json::parse(R"({"rules": [{"path": "/v1/chat/completions", "fault": "reset"}]})")});
    auto o = options_for(server);
    o.max_retries = 0;
    Client c(server, o);
    auto r = c.chat();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == NetErrc::connection_closed);
  }
  SECTION("a truncated body is an error") {
    TestServer server(TestServerOptions{.script = json::parse(R"({"rules": [{"path": "/v1/chat/completions", "fault": "truncate"}]})")});
    auto o = options_for(server);
    o.max_retries = 0;
    Client c(server, o);
    auto r = c.chat();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == NetErrc::truncated);
  }
}

TEST_CASE("TLS is verified: test CA accepted; untrusted CA, wrong host and expired refused", "[net][client][tls]") {
  const auto& certs = TestCerts::get();
  SECTION("the test CA given as an extra CA file") {
    TestServer server(TestServerOptions{.cert = ServerCert::valid});
    Client c(server, options_for(server), test_ca_context(certs.ca().string()));
    auto r = c.chat();
    REQUIRE(r.has_value());
    CHECK(r->content == "echo: hello");
    CHECK(c.chat().has_value());
    CHECK(server.stats().at("tls_handshakes") == 1);
  }
  struct Case {
    ServerCert cert;
    std::string ca;
    std::string why;
  };
  for (const auto& bad : {Case{ServerCert::valid, certs.other_ca().string(), "unable to get local issuer certificate"},
                          Case{ServerCert::wrong_host, certs.ca().string(), "hostname mismatch"},
                          Case{ServerCert::expired, certs.ca().string(), "certificate has expired"}}) {
    DYNAMIC_SECTION("refused: " << bad.why) {
      TestServer server(TestServerOptions{.cert = bad.cert});
      Client c(server, options_for(server), test_ca_context(bad.ca));
      auto r = c.chat();
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().code == NetErrc::tls_handshake_failed);
      CHECK_THAT(r.error().message, Catch::Contains(bad.why));
      CHECK(r.error().attempts == 1);  // a certificate that does not verify is not retried
      CHECK(requests(server) == 0);
    }
  }
}

TEST_CASE("streamed chat delivers deltas, usage, and refuses a partial stream", "[net][client][stream]") {
  SECTION("deltas in order, usage at the end") {
    TestServer server(TestServerOptions{.script = json::parse(R"({"rules": [{"path": "/v1/chat/completions",
        "stream_chunks": ["Hel", "lo, ", "world"], "stream_interval_ms": 5}]})")});
    asio::io_context io;
    OpenAiClient client(io.get_executor(), nullptr, options_for(server));
    std::vector<std::string> deltas;
    auto r = run_on(io, client.chat_stream(hello(), [&](std::string_view d) { deltas.emplace_back(d); }));
    REQUIRE(r.has_value());
    CHECK(r->content == "Hello, world");
    CHECK(deltas == std::vector<std::string>{"Hel", "lo, ", "world"});
    CHECK(r->usage.completion_tokens > 0);
  }
  SECTION("a stalled stream hits the idle timeout") {
    TestServer server(TestServerOptions{.script = json::parse(
                                            R"({"rules": [{"path": "/v1/chat/completions", "stream_chunks": ["a", "b"], "fault": "stall"}]})")});
    auto o = options_for(server);
    o.http.request_timeout = std::chrono::milliseconds(300);
    asio::io_context io;
    OpenAiClient client(io.get_executor(), nullptr, o);
    std::string seen;
    auto r = run_on(io, client.chat_stream(hello(), [&](std::string_view d) { seen += d; }));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == NetErrc::idle_timeout);
    CHECK(requests(server) == 1);  // a started stream is never retried
  }
  SECTION("a truncated stream is an error, never a partial success") {
    TestServer server(TestServerOptions{.script = json::parse(
                                            R"({"rules": [{"path": "/v1/chat/completions", "stream_chunks": ["a", "b", "c"], "fault": "truncate"}]})")});
    asio::io_context io;
    OpenAiClient client(io.get_executor(), nullptr, options_for(server));
    auto r = run_on(io, client.chat_stream(hello(), nullptr));
    REQUIRE_FALSE(r.has_value());
    CHECK((r.error().code == NetErrc::truncated));
    CHECK(requests(server) == 1);
  }
}

TEST_CASE("embeddings come back as one float row per input", "[net][client]") {
  TestServer server;
  asio::io_context io;
  OpenAiClient client(io.get_executor(), nullptr, options_for(server));
  EmbedRequest req;
  req.model = "text-embedding-test";
  req.inputs = {"alpha beta", "beta gamma", "delta"};
  req.dimensions = 32;
  auto r = run_on(io, client.embed(req));
  REQUIRE(r.has_value());
  CHECK(r->dimension == 32);
  CHECK(r->size() == 3);
  auto again = run_on(io, client.embed(req));
  REQUIRE(again.has_value());
  CHECK(again->vectors == r->vectors);  // deterministic
  CHECK(client.metrics().embedding_calls == 2);
}

TEST_CASE("the circuit breaker fails fast without a socket while open", "[net][client]") {
  TestServer server(TestServerOptions{.script = json::parse(R"({"rules": [{"path": "/v1/chat/completions", "fault": "reset"}]})")});
  auto o = options_for(server);
  o.max_retries = 0;
  o.failure_threshold = 2;
  o.open_for = std::chrono::milliseconds(60000);
  Client c(server, o);
  CHECK(c.chat().error().code == NetErrc::connection_closed);
  CHECK(c.chat().error().code == NetErrc::connection_closed);
  const auto accepted = server.stats().at("connections_accepted").to_number<std::int64_t>();
  auto r = c.chat();
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == NetErrc::circuit_open);
  CHECK(server.stats().at("connections_accepted").to_number<std::int64_t>() == accepted);
}

TEST_CASE("with the circuit breaker off every call reaches the server", "[net][client]") {
  TestServer server(TestServerOptions{.script = json::parse(R"({"rules": [{"path": "/v1/chat/completions", "fault": "reset"}]})")});
  auto o = options_for(server);
  o.max_retries = 0;
  o.failure_threshold = 1;
  o.circuit_breaker = false;
  Client c(server, o);
  for (int i = 0; i < 3; ++i) CHECK(c.chat().error().code == NetErrc::connection_closed);
  CHECK(server.stats().at("connections_accepted") == 3);
}
