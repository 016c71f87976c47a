#include "runtime/budget.hpp"

#include <catch2/catch.hpp>

#include <exception>
#include <memory>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "net/call_meter.hpp"
#include "net/openai_client.hpp"
#include "net/response_cache.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using dagent::runtime::Budget;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;
using namespace dagent::net;

ChatRequest ask(std::string text) {
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
  o.random01 = [] { return 0.0; };
  return o;
}

struct Rethrow {
  void operator()(std::exception_ptr e) const {
    if (e) std::rethrow_exception(e);
  }
};

// A run that asks `text` twice (its second call a cache hit).
asio::awaitable<void> ask_twice(Budget* run, std::string text, bool* ok) {
  auto first = co_await run->chat(ask(text));
  auto again = co_await run->chat(ask(text));
  *ok = first && again;
}

// A run that asks `text` once, its request held at the server until the other run's arrives.
asio::awaitable<void> ask_once(Budget* run, std::string text, bool* ok) {
  auto reply = co_await run->chat(ask(std::move(text)));
  *ok = reply.has_value();
}

}  // namespace

TEST_CASE("each run's budget names its own meter on the calls and warm-ups it forwards", "[runtime][meter]") {
  TestServer server(TestServerOptions{.script = json::parse(R"({"rules": [
      {"path": "/v1/chat/completions", "contains": "second run", "hold_until": {"contains": "first run"}}]})")});
  asio::io_context io;
  OpenAiClient client(io.get_executor(), nullptr, options_for(server));
  CachingProvider live(io.get_executor(), client, CacheOptions{});
  dagent::config::LimitsConfig limits;
  Budget one(live, limits);
  Budget two(live, limits);
  // The first run warms a connection; the second run's call, started first, takes it.
  CHECK(dagent::test::run_on(io, one.warm(1, nullptr)) == 1);
  bool one_ok = false, two_ok = false;
  asio::co_spawn(io, ask_once(&two, "second run", &two_ok), Rethrow{});
  asio::co_spawn(io, ask_twice(&one, "first run", &one_ok), Rethrow{});
  io.restart();
  io.run();
  REQUIRE(one_ok);
  REQUIRE(two_ok);

  const auto& first = *one.meter();
  const auto& second = *two.meter();
  CHECK(first.llm_calls == 1);
  CHECK(first.cache_hits == 1);
  CHECK(first.connections_opened == 2);  // its warm-up's and its call's
  CHECK(second.llm_calls == 1);
  CHECK(second.cache_hits == 0);
  CHECK(second.connections_opened == 0);  // it used the first run's warmed connection
  CHECK(server.stats().at("max_concurrent_requests").to_number<int>() >= 2);
  const auto total = live.metrics();
  CHECK(first.llm_calls + second.llm_calls == total.llm_calls);
  CHECK(first.prompt_tokens + second.prompt_tokens == total.prompt_tokens);
  CHECK(first.completion_tokens + second.completion_tokens == total.completion_tokens);
  CHECK(first.connections_opened + second.connections_opened == total.connections_opened);
  CHECK(first.cache_hits + second.cache_hits == total.cache_hits);
}
