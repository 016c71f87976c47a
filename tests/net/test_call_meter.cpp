#include "net/call_meter.hpp"

#include <catch2/catch.hpp>

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "net/openai_client.hpp"
#include "net/response_cache.hpp"
#include "net/shared_budget.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent::net;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

using Replies = std::vector<LlmResult<ChatResponse>>;

ChatRequest metered(std::string text, std::shared_ptr<CallMeter> meter) {
  ChatRequest r;
  r.model = "gpt-test";
  r.messages.push_back({"user", std::move(text)});
  r.max_tokens = 50;
  r.meter = std::move(meter);
  return r;
}

OpenAiOptions options_for(const TestServer& server) {
  OpenAiOptions o;
  o.base_url = *parse_base_url(server.base_url());
  o.api_key = "sk-test-key";
  o.http.connect_timeout = std::chrono::milliseconds(2000);
  o.http.request_timeout = std::chrono::milliseconds(10000);
  o.random01 = [] { return 0.0; };
  return o;
}

// The live chain of the runtime on one loop: the response cache in front of the client.
struct Live {
  asio::io_context io;
  OpenAiClient client;
  CachingProvider cache;
  explicit Live(const TestServer& server) : Live(options_for(server)) {}
  explicit Live(OpenAiOptions options)
      : client(io.get_executor(), nullptr, std::move(options)), cache(io.get_executor(), client, CacheOptions{}) {}
};

// A shared rate budget that never answers: every call is admitted from this process's share.
class UnreachableBudget final : public SharedBudget {
 public:
  asio::awaitable<boost::system::result<SharedAnswer, std::string>> ask(SharedAsk) override {
    co_return std::string("unreachable (test)");
  }
};

// A coroutine root's end: an exception is a bug and fails the test.
struct Rethrow {
  void operator()(std::exception_ptr e) const {
    if (e) std::rethrow_exception(e);
  }
};

// One caller: "a-one" twice; its second call is the first one's again, answered by the cache.
asio::awaitable<void> asks_twice(LlmProvider* llm, std::shared_ptr<CallMeter> meter, Replies* out) {
  for (int i = 0; i < 2; ++i) out->push_back(co_await llm->chat(metered("a-one", meter)));
}

// The other: "b-retry" (a 500, then a success) and "b-429" streamed (a 429, then a success).
asio::awaitable<void> retries_twice(LlmProvider* llm, std::shared_ptr<CallMeter> meter, Replies* out) {
  out->push_back(co_await llm->chat(metered("b-retry", meter)));
  out->push_back(co_await llm->chat_stream(metered("b-429", meter), nullptr));
}

// `n` calls with distinct questions, one after the other.
asio::awaitable<void> asks(LlmProvider* llm, std::shared_ptr<CallMeter> meter, std::string who, int n, Replies* out) {
  for (int i = 0; i < n; ++i) out->push_back(co_await llm->chat(metered(who + " " + std::to_string(i), meter)));
}

std::int64_t stat(const TestServer& server, const char* key) { return server.stats().at(key).to_number<std::int64_t>(); }

// Every counter of `a` equals `b`'s.
void check_equal(const ProviderMetrics& a, const ProviderMetrics& b) {
  CHECK(a.llm_calls == b.llm_calls);
  CHECK(a.prompt_tokens == b.prompt_tokens);
  CHECK(a.completion_tokens == b.completion_tokens);
  CHECK(a.embedding_calls == b.embedding_calls);
  CHECK(a.retries == b.retries);
  CHECK(a.retries_refused == b.retries_refused);
  CHECK(a.rate_limit_wait_ms == b.rate_limit_wait_ms);
  CHECK(a.cache_hits == b.cache_hits);
  CHECK(a.cache_l2_hits == b.cache_l2_hits);
  CHECK(a.cache_l2_errors == b.cache_l2_errors);
  CHECK(a.connections_opened == b.connections_opened);
  CHECK(a.rate_limit_fallback_calls == b.rate_limit_fallback_calls);
}

}  // namespace

TEST_CASE("two callers on one loop sharing a provider each count exactly their own calls", "[net][meter]") {
  // Each first request is held until the other's has arrived: both are at the server at once,
  // each on a connection of its own.
  TestServer server(TestServerOptions{.script = json::parse(R"({"rules": [
      {"path": "/v1/chat/completions", "contains": "a-one", "hold_until": {"contains": "b-retry"}},
      {"path": "/v1/chat/completions", "contains": "b-retry", "nth": 1, "status": 500,
       "headers": {"retry-after-ms": "1"}, "hold_until": {"contains": "a-one"}},
      {"path": "/v1/chat/completions", "contains": "b-429", "nth": 1, "status": 429,
       "headers": {"retry-after-ms": "50"}}]})")});
  Live live(server);
  auto a = std::make_shared<CallMeter>();
  auto b = std::make_shared<CallMeter>();
  Replies a_replies, b_replies;
  asio::co_spawn(live.io, asks_twice(&live.cache, a, &a_replies), Rethrow{});
  asio::co_spawn(live.io, retries_twice(&live.cache, b, &b_replies), Rethrow{});
  live.io.run();

  REQUIRE(a_replies.size() == 2);
  REQUIRE(b_replies.size() == 2);
  for (const auto& r : a_replies) REQUIRE(r.has_value());
  for (const auto& r : b_replies) REQUIRE(r.has_value());
  CHECK(stat(server, "max_concurrent_requests") >= 2);
  CHECK(server.requests_to("/v1/chat/completions") == 5);  // a-one, b-retry twice, b-429 twice

  // The cache answered a's second call: one call reached the model, its usage is a's.
  CHECK(a->llm_calls == 1);
  CHECK(a->cache_hits == 1);
  CHECK(a->prompt_tokens == a_replies[0]->usage.prompt_tokens);
  CHECK(a->completion_tokens == a_replies[0]->usage.completion_tokens);
  CHECK(a->retries == 0);
  CHECK(a->rate_limit_wait.count() == 0);
  CHECK(a->connections_opened == 1);

  // b's two calls, each retried once; the 429's pause is b's wait alone.
  CHECK(b->llm_calls == 2);
  CHECK(b->cache_hits == 0);
  CHECK(b->prompt_tokens == b_replies[0]->usage.prompt_tokens + b_replies[1]->usage.prompt_tokens);
  CHECK(b->completion_tokens == b_replies[0]->usage.completion_tokens + b_replies[1]->usage.completion_tokens);
  CHECK(b->retries == 2);
  CHECK(b->retries_refused == 0);
  CHECK(b->rate_limit_wait.count() > 0);
  CHECK(b->connections_opened == 1);  // its retries went out on its kept-alive connection

  CHECK(a->connections_opened + b->connections_opened == stat(server, "connections_accepted"));
  // Together the meters are the provider's own counts.
  CallMeter both = *a;
  both += *b;
  check_equal(both.metrics(), live.cache.metrics());
}

TEST_CASE("a warm-up's connections count to its meter, not to the calls that use them", "[net][meter]") {
  TestServer server;
  Live live(server);
  CallMeter warmed;
  CHECK(dagent::test::run_on(live.io, live.client.warm(2, &warmed)) == 2);
  CHECK(warmed.connections_opened == 2);
  auto caller = std::make_shared<CallMeter>();
  auto reply = dagent::test::run_on(live.io, live.cache.chat(metered("hello", caller)));
  REQUIRE(reply.has_value());
  CHECK(caller->llm_calls == 1);
  CHECK(caller->connections_opened == 0);  // it took a warmed connection
  CHECK(live.cache.metrics().connections_opened == 2);
  CHECK(stat(server, "connections_accepted") == 2);
}

TEST_CASE("calls admitted from this process's share while the shared budget is down count to their meters",
          "[net][meter]") {
  TestServer server;
  auto o = options_for(server);
  o.shared_budget = std::make_shared<UnreachableBudget>();
  Live live(o);
  auto a = std::make_shared<CallMeter>();
  auto b = std::make_shared<CallMeter>();
  Replies a_replies, b_replies;
  asio::co_spawn(live.io, asks(&live.cache, a, "first", 2, &a_replies), Rethrow{});
  asio::co_spawn(live.io, asks(&live.cache, b, "second", 1, &b_replies), Rethrow{});
  live.io.run();
  REQUIRE(a_replies.size() == 2);
  REQUIRE(b_replies.size() == 1);
  CHECK(a->rate_limit_fallback_calls == 2);
  CHECK(b->rate_limit_fallback_calls == 1);
  CHECK(a->llm_calls == 2);
  CHECK(b->llm_calls == 1);
  CallMeter both = *a;
  both += *b;
  check_equal(both.metrics(), live.cache.metrics());
}
