#include "net/openai_client.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "net/net_error.hpp"
#include "net/tls_context.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"
#include "text/bad_utf8_samples.hpp"
#include "text/json_utf8.hpp"
#include "text/utf8.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent::net;
using dagent::test::HandshakeFault;
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
  SECTION("429 with retry-after-ms is honoured") {
    TestServer server(TestServerOptions{.script = json::parse(R"({"rules": [{"path": "/v1/chat/completions", "times": 1,
        "status": 429, "headers": {"retry-after-ms": "1200", "x-ratelimit-remaining-requests": "0"},
        "body": {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}}]})")});
    Client c(server, options_for(server));
    auto r = c.chat();
    REQUIRE(r.has_value());
    auto log = recent(server);
    REQUIRE(log.size() == 2);
    // From the first request's arrival, which comes before the client can have read the 429 (the
    // server logs its completion only after writing it, so that time may fall after the client's
    // timer started). The SDK's own first backoff is at most 500 ms: a gap of 1200 ms shows the
    // header was obeyed. No upper bound: on a loaded machine a wait can only grow, never shrink.
    const double gap = log[1].at("arrival_ms").to_number<double>() - log[0].at("arrival_ms").to_number<double>();
    CHECK(gap >= 1200.0);
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
  SECTION("400 is not retried, is the provider's refusal, and keeps the API's error fields") {
    TestServer server(TestServerOptions{.script = json::parse(R"({"rules": [{"path": "/v1/chat/completions",
        "status": 400, "body": {"error": {"message": "bad model", "type": "invalid_request_error", "param": "model",
        "code": "model_not_found"}}}]})")});
    Client c(server, options_for(server));
    auto r = c.chat();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == NetErrc::provider_refused);
    CHECK(r.error().message == "provider refused the request (400): bad model");
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

TEST_CASE("TLS is verified: test CA accepted, untrusted CA, wrong host and expired refused", "[net][client][tls]") {
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

namespace {

TestServer scripted(const char* script) { return TestServer(TestServerOptions{.script = json::parse(script)}); }

std::string request_body(const TestServer& server, std::size_t index) {
  return std::string(recent(server).at(index).at("body").as_string());
}

// `\n` written as two characters (readable in raw strings) made real line ends.
std::string with_line_ends(std::string text) {
  for (auto at = text.find("\\n"); at != std::string::npos; at = text.find("\\n", at)) text.replace(at, 2, "\n");
  return text;
}

struct Collect {
  std::vector<LlmResult<ChatResponse>>* out;
  void operator()(std::exception_ptr e, LlmResult<ChatResponse> r) const {
    if (e) std::rethrow_exception(e);
    out->push_back(std::move(r));
  }
};

asio::awaitable<LlmResult<ChatResponse>> chat_on(OpenAiClient* client, ChatRequest request) {
  co_return co_await client->chat(std::move(request));
}

boost::json::object ok_schema() {
  return json::parse(R"({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                         "additionalProperties": false})").as_object();
}

ChatRequest planning_request() {
  ChatRequest r = hello("make a plan");
  r.messages.insert(r.messages.begin(), ChatMessage{"system", "You are a planner."});
  r.json_schema = ok_schema();
  return r;
}

}  // namespace

TEST_CASE("a TLS handshake that times out or is reset is retried, only a certificate that fails verification is final",
          "[net][client][tls]") {
  const auto& certs = TestCerts::get();
  for (auto fault : {HandshakeFault::reset, HandshakeFault::stall}) {
    DYNAMIC_SECTION((fault == HandshakeFault::reset ? "reset during the handshake" : "handshake stalls")) {
      TestServer server(TestServerOptions{.cert = ServerCert::valid, .handshake_fault = fault, .handshake_faults = 1});
      auto o = options_for(server);
      o.http.connect_timeout = std::chrono::milliseconds(300);  // the stalled handshake's bound
      Client c(server, o, test_ca_context(certs.ca().string()));
      auto r = c.chat();
      REQUIRE(r.has_value());
      CHECK(r->content == "echo: hello");
      CHECK(c.client.metrics().retries == 1);
      CHECK(c.client.metrics().connections_opened == 2);
      CHECK(requests(server) == 1);
    }
  }
  SECTION("with no retries left the error is a connection error, not a certificate one") {
    TestServer server(TestServerOptions{.cert = ServerCert::valid, .handshake_fault = HandshakeFault::reset});
    auto o = options_for(server);
    o.max_retries = 0;
    Client c(server, o, test_ca_context(certs.ca().string()));
    auto r = c.chat();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == NetErrc::connect_failed);
    CHECK_THAT(r.error().message, Catch::Contains("TLS handshake with"));
    CHECK(is_unreachable(r.error()));
  }
}

TEST_CASE("a stream kept alive by ': ping' comments never ends: stream_timeout_ms bounds the whole stream",
          "[net][client][stream]") {
  auto server = scripted(R"({"rules": [{"path": "/v1/chat/completions", "stream_chunks": ["a", "b"],
      "fault": "ping", "stream_interval_ms": 10}]})");
  auto o = options_for(server);
  o.stream_timeout = std::chrono::milliseconds(300);  // the idle timeout (5 s) never fires: pings arrive
  asio::io_context io;
  OpenAiClient client(io.get_executor(), nullptr, o);
  std::string seen;
  auto r = run_on(io, client.chat_stream(hello(), [&](std::string_view d) { seen += d; }));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == NetErrc::request_timeout);
  CHECK_THAT(r.error().message, Catch::Contains("300 ms in all"));
  CHECK(requests(server) == 1);  // a started stream is never retried
}

TEST_CASE("streams have no size cap: stream_max_bytes ends a stream that grows past it", "[net][client][stream]") {
  json::array chunks;
  for (int i = 0; i < 50; ++i) chunks.emplace_back(std::string(100, 'x'));
  auto server = TestServer(TestServerOptions{
      .script = json::object{{"rules", json::array{json::object{{"path", "/v1/chat/completions"}, {"stream_chunks", chunks}}}}}});
  auto o = options_for(server);
  o.stream_max_bytes = 2000;
  asio::io_context io;
  OpenAiClient client(io.get_executor(), nullptr, o);
  auto r = run_on(io, client.chat_stream(hello(), nullptr));
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == NetErrc::too_large);
  CHECK_THAT(r.error().message, Catch::Contains("2000 bytes"));
}

TEST_CASE("the provider's message in a stream error event is dropped, a stream cut before [DONE] is an error",
          "[net][client][stream]") {
  const std::string first = R"(data: {"id": "c1", "choices": [{"index": 0, "delta": {"content": "par"}}]}\n\n)";
  struct Case {
    std::string name;
    std::string last_event;
    NetErrc code;
    std::string message;
  };
  for (const auto& c : {Case{"an error object in a data chunk",
                             R"(data: {"error": {"message": "model overloaded", "type": "server_error"}}\n\n)",
                             NetErrc::api_error, "the provider reported an error inside the stream: model overloaded"},
                        Case{"an error event", R"(event: error\ndata: {"message": "quota gone"}\n\n)", NetErrc::api_error,
                             "the provider reported an error inside the stream: quota gone"},
                        Case{"an error event in plain text, echoing the key", R"(event: error\ndata: upstream died for sk-test-key\n\n)",
                             NetErrc::api_error, "the provider reported an error inside the stream: upstream died for [redacted API key]"},
                        Case{"a clean end without [DONE]", R"(data: {"choices": [{"index": 0, "delta": {"content": "tial"}}]}\n\n)",
                             NetErrc::truncated, "the stream ended before [DONE]"}}) {
    DYNAMIC_SECTION(c.name) {
      json::object rule{{"path", "/v1/chat/completions"},
                        {"stream_events", json::array{json::value(with_line_ends(first)), json::value(with_line_ends(c.last_event))}}};
      TestServer server(TestServerOptions{.script = json::object{{"rules", json::array{rule}}}});
      asio::io_context io;
      OpenAiClient client(io.get_executor(), nullptr, options_for(server));
      std::string seen;
      auto r = run_on(io, client.chat_stream(hello(), [&](std::string_view d) { seen += d; }));
      REQUIRE_FALSE(r.has_value());
      CHECK(r.error().code == c.code);
      CHECK(r.error().message == c.message);
      CHECK(seen.starts_with("par"));  // what arrived was shown, but the call failed
      CHECK(requests(server) == 1);
    }
  }
}

TEST_CASE("a provider reporting usage.completion_tokens of 9.2e18 puts the token bucket into debt for ages",
          "[net][client]") {
  auto server = scripted(R"({"rules": [{"path": "/v1/chat/completions", "nth": 1, "body": {"id": "x",
      "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
      "usage": {"prompt_tokens": -7, "completion_tokens": 9200000000000000000}}},
      {"path": "/v1/chat/completions", "nth": 2, "body": {"id": "y",
      "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 9200000000000000000, "completion_tokens": 9200000000000000000}}}]})");
  auto o = options_for(server);
  o.tpm_limit = 1000000;  // a debt of 9.2e18 tokens would hold the next call for ages
  Client c(server, o);
  auto r = c.chat();  // max_tokens 50
  REQUIRE(r.has_value());
  REQUIRE(r->usage.completion_tokens == 50);
  CHECK(r->usage.prompt_tokens == 0);
  auto unbounded = hello();
  unbounded.max_tokens.reset();
  auto second = c.chat(unbounded);
  REQUIRE(second.has_value());
  CHECK(second->usage.completion_tokens == 131072);  // no max_tokens: the largest output a model gives
  CHECK(second->usage.prompt_tokens <= 2000);         // at most a token per request byte, plus overhead
  auto third = c.chat();  // the limiter was not sent into debt: this goes straight through
  REQUIRE(third.has_value());
  const auto m = c.client.metrics();
  CHECK(m.completion_tokens == 50 + 131072 + third->usage.completion_tokens);
  CHECK(m.rate_limit_wait_ms == 0);
}

TEST_CASE("response_format json_schema answered with a 400 is asked again with the schema in the prompt, and remembered",
          "[net][client][structured]") {
  auto server = scripted(R"({"rules": [
      {"path": "/v1/chat/completions", "contains": "response_format", "status": 400,
       "body": {"error": {"message": "failed to parse grammar", "type": "invalid_request_error"}}},
      {"path": "/v1/chat/completions", "reply": "{\"ok\": true}"}]})");
  SECTION("chat") {
    Client c(server, options_for(server));
    auto r = c.chat(planning_request());
    REQUIRE(r.has_value());
    CHECK(r->content == R"({"ok": true})");
    REQUIRE(requests(server) == 2);
    CHECK(request_body(server, 0).find("response_format") != std::string::npos);
    const auto fallback = json::parse(request_body(server, 1)).as_object();
    CHECK_FALSE(fallback.contains("response_format"));
    const auto& system = fallback.at("messages").at(0).at("content").as_string();
    CHECK(system.starts_with("You are a planner."));
    CHECK(system.find("valid against this JSON Schema") != std::string::npos);
    CHECK(system.find(R"("required":["ok"])") != std::string::npos);
    CHECK(fallback.at("messages").at(1).at("content") == "make a plan");

    auto again = c.chat(planning_request());  // remembered: straight to the prompt form
    REQUIRE(again.has_value());
    CHECK(requests(server) == 3);
    CHECK(request_body(server, 2).find("response_format") == std::string::npos);
  }
  SECTION("streamed") {
    asio::io_context io;
    OpenAiClient client(io.get_executor(), nullptr, options_for(server));
    std::string seen;
    auto r = run_on(io, client.chat_stream(planning_request(), [&](std::string_view d) { seen += d; }));
    REQUIRE(r.has_value());
    CHECK(r->content == R"({"ok": true})");
    CHECK(seen == r->content);  // the refusal delivered nothing, so nothing is repeated
    CHECK(requests(server) == 2);
  }
}

TEST_CASE("a request refused with and without response_format reports the first refusal and is not remembered",
          "[net][client][structured]") {
  auto server = scripted(R"({"rules": [{"path": "/v1/chat/completions", "status": 400,
      "body": {"error": {"message": "context too long", "type": "invalid_request_error"}}}]})");
  Client c(server, options_for(server));
  auto r = c.chat(planning_request());
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == NetErrc::provider_refused);
  CHECK(r.error().message == "provider refused the request (400): context too long");
  CHECK(requests(server) == 2);
  REQUIRE_FALSE(c.chat(planning_request()).has_value());
  CHECK(request_body(server, 2).find("response_format") != std::string::npos);
}

TEST_CASE("a provider's 4xx is reported as the provider's refusal, 302/204 replies were reported as 'not a JSON object'",
          "[net][client]") {
  SECTION("401 with the key echoed: refused, unreachable, the key masked") {
    auto server = scripted(R"({"rules": [{"path": "/v1/chat/completions", "status": 401,
        "body": {"error": {"message": "Incorrect API key provided: sk-test-key.", "type": "invalid_request_error",
        "code": "invalid_api_key"}}}]})");
    Client c(server, options_for(server));
    auto r = c.chat();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == NetErrc::provider_refused);
    CHECK(r.error().message == "provider refused the request (401): Incorrect API key provided: [redacted API key].");
    CHECK(r.error().api_code == "invalid_api_key");
    CHECK(is_unreachable(r.error()));
  }
  SECTION("a body that is not OpenAI's error shape: its text, control characters removed") {
    auto server = scripted(R"({"rules": [{"path": "/v1/chat/completions", "status": 404, "body": "no such\u001b[2J route"}]})");
    Client c(server, options_for(server));
    auto r = c.chat();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == "provider refused the request (404): no such [2J route");
  }
  SECTION("503 stays an API error") {
    auto server = scripted(R"({"rules": [{"path": "/v1/chat/completions", "status": 503, "headers": {"x-should-retry": "false"}}]})");
    Client c(server, options_for(server));
    auto r = c.chat();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == NetErrc::api_error);
    CHECK(r.error().message == "API error 503 (server_error): scripted status 503");
  }
  SECTION("302") {
    auto server = scripted(R"({"rules": [{"path": "/v1/chat/completions", "status": 302, "body": "",
        "headers": {"location": "https://elsewhere.example/v1/chat/completions"}}]})");
    Client c(server, options_for(server));
    auto r = c.chat();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == NetErrc::protocol_error);
    CHECK(r.error().message == "the server answered HTTP 302 redirecting to https://elsewhere.example:443; redirects are not "
                               "followed (the API key is sent only to " + parse_base_url(server.base_url())->origin.key() + ")");
    CHECK(requests(server) == 1);
  }
  SECTION("204 and an empty 200") {
    auto server = scripted(R"({"rules": [{"path": "/v1/chat/completions", "nth": 1, "status": 204, "body": ""},
        {"path": "/v1/chat/completions", "nth": 2, "status": 200, "body": ""}]})");
    Client c(server, options_for(server));
    auto r = c.chat();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == "empty reply (204)");
    auto empty = c.chat();
    REQUIRE_FALSE(empty.has_value());
    CHECK(empty.error().message == "empty reply (200)");
  }
}

TEST_CASE("a breaker refusal charges the limiter", "[net][client][breaker]") {
  auto server = scripted(R"({"rules": [{"path": "/v1/chat/completions", "fault": "reset"}]})");
  auto o = options_for(server);
  o.max_retries = 0;
  o.failure_threshold = 1;
  o.open_for = std::chrono::milliseconds(600000);
  o.rpm_limit = 2;  // two requests a minute: refusals that took one each would soon wait 30 s
  o.safety_margin = 1.0;
  Client c(server, o);
  CHECK(c.chat().error().code == NetErrc::connection_closed);
  for (int i = 0; i < 4; ++i) {
    auto r = c.chat();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == NetErrc::circuit_open);
    CHECK(r.error().attempts == 0);
  }
  CHECK(c.client.metrics().rate_limit_wait_ms == 0);
  CHECK(requests(server) == 1);
}

TEST_CASE("the breaker's blocked try is counted as a retry", "[net][client][breaker]") {
  auto server = scripted(R"({"rules": [{"path": "/v1/chat/completions", "fault": "reset"}]})");
  auto o = options_for(server);
  o.max_retries = 2;
  o.failure_threshold = 1;
  o.open_for = std::chrono::milliseconds(600000);
  Client c(server, o);
  auto r = c.chat();
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == NetErrc::circuit_open);
  CHECK(r.error().attempts == 1);
  CHECK(c.client.metrics().retries == 0);
  CHECK(requests(server) == 1);
}

TEST_CASE("a step's own 429 wait is missing from rate_limit_wait_ms", "[net][client]") {
  auto server = scripted(R"({"rules": [{"path": "/v1/chat/completions", "times": 1, "status": 429,
      "headers": {"retry-after-ms": "300"}}]})");
  Client c(server, options_for(server));
  REQUIRE(c.chat().has_value());
  CHECK(c.client.metrics().retries == 1);
  CHECK(c.client.metrics().rate_limit_wait_ms >= 300);
}

TEST_CASE("retries across a run are capped by the retry budget, and refusals are counted", "[net][client][retry]") {
  auto server = scripted(R"({"rules": [{"path": "/v1/chat/completions", "status": 500, "headers": {"retry-after-ms": "1"}}]})");
  auto o = options_for(server);
  o.max_retries = 2;
  o.circuit_breaker = false;  // the budget alone must bound the load
  o.retry_budget = 0.2;
  o.retry_budget_min = 2;
  asio::io_context io;
  OpenAiClient client(io.get_executor(), nullptr, o);
  constexpr int k_calls = 20;
  std::vector<LlmResult<ChatResponse>> results;
  for (int i = 0; i < k_calls; ++i) asio::co_spawn(io, chat_on(&client, hello()), Collect{&results});
  io.run();
  REQUIRE(results.size() == k_calls);
  const auto m = client.metrics();
  const std::int64_t budget = 2 + k_calls / 5;
  CHECK(requests(server) == k_calls + m.retries);
  CHECK(m.retries <= budget);
  CHECK(m.retries_refused >= k_calls - budget);
  int noted = 0;
  for (const auto& r : results) {
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == NetErrc::api_error);
    if (r.error().message.ends_with("(not retried: retry budget exhausted)")) ++noted;
  }
  CHECK(noted == m.retries_refused);

  SECTION("a reset gives a new run its own budget") {
    client.reset_retry_budget();
    auto before = requests(server);
    auto r = run_on(io, client.chat(hello()));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().attempts == 3);
    CHECK(requests(server) == before + 3);
  }
}


TEST_CASE("model text that is not UTF-8 was refused as 'not a JSON object' (whole) or failed the stream, "
          "it is repaired where it enters",
          "[net][client][utf8]") {
  using dagent::test::k_bad_text;
  using dagent::test::k_bad_text_repaired;
  using dagent::test::k_fffd;
  SECTION("a whole reply") {
    TestServer server(TestServerOptions{.script = json::object{{"rules", json::array{json::object{
        {"path", "/v1/chat/completions"}, {"reply", dagent::test::script_bytes(k_bad_text)}, {"bytes", true}}}}}});
    Client c(server, options_for(server));
    auto r = c.chat();
    REQUIRE(r.has_value());
    CHECK(r->content == k_bad_text_repaired);
  }
  SECTION("a streamed reply: each delta is repaired, and the content is their concatenation") {
    TestServer server(TestServerOptions{.script = json::object{{"rules", json::array{json::object{
        {"path", "/v1/chat/completions"},
        {"stream_chunks", json::array{dagent::test::script_bytes("caf\xE9 "), dagent::test::script_bytes("\xED\xA0\x80 and \xC0\xAF"),
                                      dagent::test::script_bytes(" \xE0\x80\xAF \xE2\x82")}},
        {"bytes", true}}}}}});
    asio::io_context io;
    OpenAiClient client(io.get_executor(), nullptr, options_for(server));
    std::vector<std::string> deltas;
    auto r = run_on(io, client.chat_stream(hello(), [&](std::string_view d) { deltas.emplace_back(d); }));
    REQUIRE(r.has_value());
    const std::vector<std::string> expected{"caf" + k_fffd + " ", k_fffd + k_fffd + k_fffd + " and " + k_fffd + k_fffd,
                                            " " + k_fffd + k_fffd + k_fffd + " " + k_fffd};
    CHECK(deltas == expected);
    CHECK(r->content == expected[0] + expected[1] + expected[2]);
  }
  SECTION("a provider's error message") {
    TestServer server(TestServerOptions{.script = json::object{{"rules", json::array{json::object{
        {"path", "/v1/chat/completions"}, {"status", 400},
        {"body", dagent::test::script_bytes(R"({"error": {"message": "bad caf)" "\xE9" R"(", "type": "invalid_request_error"}})")},
        {"bytes", true}}}}}});
    Client c(server, options_for(server));
    auto r = c.chat();
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == "provider refused the request (400): bad caf" + k_fffd);
  }
  SECTION("a prompt that is not UTF-8 reaches the provider repaired") {
    TestServer server;
    Client c(server, options_for(server));
    auto r = c.chat(hello(k_bad_text));
    REQUIRE(r.has_value());
    CHECK(r->content == "echo: " + k_bad_text_repaired);
    for (const auto& request : recent(server))
      CHECK(dagent::text::is_valid_utf8(request.at("body").as_string()));
  }
}

TEST_CASE("chat_body writes the same bytes as serialize_valid(to_json())", "[net][openai]") {
  ChatRequest r;
  r.model = "gpt-4o-mini";
  SECTION("the benchmark's request") {
    r.messages.push_back({"user", "Say hello"});
    r.max_tokens = 16;
  }
  SECTION("every escape, every control character, DEL, non-ASCII and bytes that are not UTF-8") {
    std::string all;
    for (int c = 0; c < 0x80; ++c) all.push_back(static_cast<char>(c));
    r.messages.push_back({"system", all + "\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"});
    r.messages.push_back({"user", dagent::test::k_bad_text});
    r.messages.push_back({"assistant", ""});
    r.model = "m\"\\\n" + dagent::test::k_bad_text;
  }
  SECTION("temperature, max_tokens, a schema and no messages") {
    r.temperature = 0.7;
    r.max_tokens = -3;
    r.json_schema = json::parse(R"({"type":"object","properties":{"a\n":{"type":"string"}}})").as_object();
    r.schema_name = "answer";
    r.strict = false;
  }
  SECTION("integral and tiny temperatures") {
    r.temperature = 1.0;
    r.messages.push_back({"user", "x"});
    ChatRequest tiny = r;
    tiny.temperature = 1e-300;
    CHECK(chat_body(tiny, false) == dagent::text::serialize_valid(to_json(tiny, false)));
  }
  for (const bool stream : {false, true}) {
    const std::string body = chat_body(r, stream);
    CHECK(body == dagent::text::serialize_valid(to_json(r, stream)));
    CHECK(dagent::text::is_valid_utf8(body));
    CHECK(json::parse(body).is_object());
  }
}

TEST_CASE("issue 15: the client takes its limits from a bucket server's headers and meets no 429",
          "[net][client][limiter]") {
  // 20 requests per 400 ms, refilled continuously; the client is told 100 times too much.
  TestServer server(TestServerOptions{.rpm = 20, .bucket = true, .period_ms = 400});
  OpenAiOptions o = options_for(server);
  o.rpm_limit = 2000;
  o.safety_margin = 1.0;
  o.rate_period = std::chrono::milliseconds(400);
  o.max_retries = 0;
  Client c(server, o);
  for (int i = 0; i < 30; ++i) {
    auto reply = c.chat();
    INFO("call " << i);
    REQUIRE(reply.has_value());  // a 429 would fail the call (no retries)
  }
  CHECK(server.stats().at("rate_limited").to_number<std::int64_t>() == 0);
  CHECK(requests(server) == 30);
}
