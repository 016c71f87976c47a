#include "net/response_cache.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include "net/openai_client.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace asio = boost::asio;
using namespace dagent::net;

using dagent::test::run_on;

ChatRequest ask(std::string text) {
  ChatRequest r;
  r.model = "gpt-test";
  r.messages.push_back({"user", std::move(text)});
  return r;
}

}  // namespace

TEST_CASE("the response cache answers repeats without a request, expires and evicts", "[net][cache]") {
  dagent::test::TestServer server;
  OpenAiOptions o;
  o.base_url = *parse_base_url(server.base_url());
  asio::io_context io;
  OpenAiClient live(io.get_executor(), nullptr, o);
  auto now = std::chrono::steady_clock::time_point{};
  CachingProvider cache(live, std::chrono::seconds(10), 2, [&] { return now; });
  auto server_requests = [&] { return server.stats().at("requests").at("total").to_number<int>(); };

  auto first = run_on(io, cache.chat(ask("a")));
  REQUIRE(first.has_value());
  auto again = run_on(io, cache.chat(ask("a")));
  REQUIRE(again.has_value());
  CHECK(again->content == first->content);
  CHECK(server_requests() == 1);
  CHECK(cache.metrics().cache_hits == 1);

  SECTION("a different request is a miss") {
    auto other = run_on(io, cache.chat(ask("b")));
    REQUIRE(other.has_value());
    CHECK(server_requests() == 2);
  }
  SECTION("entries expire after the TTL") {
    now += std::chrono::seconds(11);
    REQUIRE(run_on(io, cache.chat(ask("a"))).has_value());
    CHECK(server_requests() == 2);
  }
  SECTION("the least recently used entry is evicted past max_entries") {
    REQUIRE(run_on(io, cache.chat(ask("b"))).has_value());  // cache: b, a
    REQUIRE(run_on(io, cache.chat(ask("a"))).has_value());  // hit; cache: a, b
    REQUIRE(run_on(io, cache.chat(ask("c"))).has_value());  // evicts b
    CHECK(cache.size() == 2);
    CHECK(server_requests() == 3);
    REQUIRE(run_on(io, cache.chat(ask("b"))).has_value());
    CHECK(server_requests() == 4);
  }
  SECTION("a streamed hit delivers the cached reply as one delta") {
    std::string seen;
    auto r = run_on(io, cache.chat_stream(ask("a"), [&](std::string_view d) { seen += d; }));
    REQUIRE(r.has_value());
    CHECK(seen == first->content);
    CHECK(server_requests() == 1);
  }
  SECTION("failures are not cached") {
    server.set_script(boost::json::parse(R"({"rules": [{"path": "/v1/chat/completions", "times": 1, "status": 400}]})"));
    CHECK_FALSE(run_on(io, cache.chat(ask("z"))).has_value());
    CHECK(run_on(io, cache.chat(ask("z"))).has_value());
  }
}
