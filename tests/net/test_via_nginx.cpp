// The client through nginx as a real TLS front (nginx terminates TLS and proxies to the
// scripted server over keep-alive HTTP).

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "net/net_error.hpp"
#include "net/openai_client.hpp"
#include "net/tls_context.hpp"
#include "support/nginx_process.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent::net;

using dagent::test::run_on;

ChatRequest hello(std::string text) {
  ChatRequest r;
  r.model = "gpt-test";
  r.messages.push_back({"user", std::move(text)});
  return r;
}

}  // namespace

TEST_CASE("through nginx: keep-alive TLS, streamed replies, retry-after honoured", "[net][nginx]") {
  dagent::test::TestServer upstream;
  dagent::test::NginxFront nginx(upstream.port());
  auto tls = TlsContext::create(dagent::test::TestCerts::get().ca().string());
  REQUIRE(tls.has_value());
  OpenAiOptions o;
  o.base_url = *parse_base_url(nginx.base_url());
  o.api_key = "sk-test";
  o.random01 = [] { return 0.0; };
  asio::io_context io;
  OpenAiClient client(io.get_executor(), *tls, o);

  SECTION("ten calls on one TLS connection") {
    for (int i = 0; i < 10; ++i) {
      auto r = run_on(io, client.chat(hello("n" + std::to_string(i))));
      REQUIRE(r.has_value());
      CHECK(r->content == "echo: n" + std::to_string(i));
    }
    CHECK(client.metrics().connections_opened == 1);
  }
  SECTION("a streamed reply passes through, event by event") {
    upstream.set_script(json::parse(R"({"rules": [{"path": "/v1/chat/completions",
        "stream_chunks": ["one ", "two ", "three"], "stream_interval_ms": 20}]})"));
    std::vector<std::string> deltas;
    auto r = run_on(io, client.chat_stream(hello("count"), [&](std::string_view d) { deltas.emplace_back(d); }));
    REQUIRE(r.has_value());
    CHECK(r->content == "one two three");
    CHECK(deltas.size() == 3);
  }
  SECTION("a 429 with retry-after-ms from behind the proxy") {
    upstream.set_script(json::parse(R"({"rules": [{"path": "/v1/chat/completions", "times": 1, "status": 429,
        "headers": {"retry-after-ms": "150"}}]})"));
    auto r = run_on(io, client.chat(hello("again")));
    REQUIRE(r.has_value());
    CHECK(client.metrics().retries == 1);
    CHECK(upstream.stats().at("status").at("429") == 1);
  }
}
