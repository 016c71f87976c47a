#include "memory/embedding_batcher.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "net/call_meter.hpp"
#include "net/net_error.hpp"
#include "net/openai_client.hpp"
#include "net/tls_context.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent::memory;
using namespace dagent::net;
using namespace dagent::test;
using namespace std::chrono_literals;

using Embedded = LlmResult<EmbedResponse>;
using Calls = std::vector<std::vector<std::string>>;

constexpr const char* k_model = "text-embedding-test";

TestServer serve(std::optional<json::value> script = {}) {
  return TestServer(TestServerOptions{.cert = ServerCert::valid, .script = std::move(script)});
}

OpenAiOptions client_options(const TestServer& server) {
  OpenAiOptions o;
  o.base_url = *parse_base_url(server.base_url());
  o.api_key = "sk-test-key";
  o.random01 = [] { return 0.0; };
  return o;
}

std::shared_ptr<TlsContext> test_ca() {
  auto tls = TlsContext::create(TestCerts::get().ca().string());
  REQUIRE(tls.has_value());
  return *tls;
}

BatcherOptions batching(std::size_t batch_size, std::chrono::milliseconds max_delay) {
  BatcherOptions o;
  o.batch_size = batch_size;
  o.max_delay = max_delay;
  o.model = k_model;
  return o;
}

// The real client over TLS with the test CA, and a batcher in front of it.
struct Batched {
  asio::io_context io;
  OpenAiClient client;
  EmbeddingBatcher batcher;

  Batched(const TestServer& server, BatcherOptions options)
      : client(io.get_executor(), test_ca(), client_options(server)),
        batcher(io.get_executor(), client, std::move(options)) {}

  // One embed() per call, started in order, all waiting at once; runs the loop until all end.
  std::vector<Embedded> embed_concurrently(Calls calls) {
    std::vector<std::optional<Embedded>> out(calls.size());
    for (std::size_t i = 0; i < calls.size(); ++i)
      asio::co_spawn(io, batcher.embed(std::move(calls[i])), ResultSink<Embedded>{&out[i]});
    io.restart();
    io.run();
    std::vector<Embedded> results;
    for (auto& r : out) {
      REQUIRE(r.has_value());
      results.push_back(std::move(*r));
    }
    return results;
  }

  // The texts embedded by the client alone, in one request.
  EmbedResponse direct(std::vector<std::string> texts) {
    auto got = run_on(io, client.embed(EmbedRequest{k_model, std::move(texts), std::nullopt}));
    REQUIRE(got.has_value());
    return std::move(*got);
  }
};

// The bodies of the embedding requests the server saw, in arrival order.
std::vector<std::string> request_bodies(const TestServer& server) {
  const json::value stats = server.stats();
  std::vector<std::string> bodies;
  for (const auto& r : stats.at("recent").as_array())
    if (r.at("path") == "/v1/embeddings") bodies.emplace_back(r.at("body").as_string());
  return bodies;
}

// How many inputs each embedding request held, smallest first.
std::vector<std::size_t> inputs_per_request(const TestServer& server) {
  std::vector<std::size_t> sizes;
  for (const auto& body : request_bodies(server)) sizes.push_back(json::parse(body).at("input").as_array().size());
  std::sort(sizes.begin(), sizes.end());
  return sizes;
}

Calls one_text_each(std::size_t n) {
  Calls calls;
  for (std::size_t i = 0; i < n; ++i) calls.push_back({"caller " + std::to_string(i) + " writes about topic " + std::to_string(i * 7)});
  return calls;
}

// What a step that races embed() against its timeout saw.
struct Race {
  std::optional<Embedded> embedded;
  bool timer_won = false;
  std::int64_t sent_at_end = -1;       // requests_sent() when the race ended
  std::int64_t in_flight_at_end = -1;  // requests_in_flight() then
};

asio::awaitable<void> embed_into(EmbeddingBatcher* batcher, std::vector<std::string> texts, std::optional<Embedded>* out) {
  auto call = batcher->embed(std::move(texts));
  *out = co_await std::move(call);
}

// Races embed() against a timer with awaitable operators, as a step timeout does.
asio::awaitable<void> embed_before(EmbeddingBatcher* batcher, std::vector<std::string> texts,
                                   std::chrono::milliseconds deadline, Race* race) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(co_await asio::this_coro::executor, deadline);
  auto call = embed_into(batcher, std::move(texts), &race->embedded);
  auto expiry = timer.async_wait(asio::as_tuple(asio::use_awaitable));
  auto either = std::move(call) || std::move(expiry);
  auto winner = co_await std::move(either);
  race->timer_won = winner.index() == 1;
  race->sent_at_end = batcher->requests_sent();
  race->in_flight_at_end = batcher->requests_in_flight();
}

// Completion of a spawned race: an exception fails the test instead of vanishing.
struct Rethrow {
  void operator()(std::exception_ptr e) const {
    if (e) std::rethrow_exception(e);
  }
};

asio::awaitable<void> destroy_after(std::optional<EmbeddingBatcher>* batcher, std::chrono::milliseconds delay) {
  asio::steady_timer timer(co_await asio::this_coro::executor, delay);
  auto expiry = timer.async_wait(asio::as_tuple(asio::use_awaitable));
  co_await std::move(expiry);
  batcher->reset();
}

void check_cancelled(const Race& race) {
  CHECK(race.timer_won);
  REQUIRE(race.embedded.has_value());
  REQUIRE_FALSE(race.embedded->has_value());
  CHECK(race.embedded->error().code == NetErrc::cancelled);
}

}  // namespace

TEST_CASE("concurrent callers share requests of batch_size inputs", "[memory]") {
  TestServer server = serve();
  Batched b(server, batching(4, 200ms));
  Calls calls = one_text_each(10);
  auto results = b.embed_concurrently(calls);

  CHECK(server.requests_to("/v1/embeddings") == 3);
  CHECK(inputs_per_request(server) == std::vector<std::size_t>{2, 4, 4});
  CHECK(b.batcher.requests_sent() == 3);
  CHECK(b.batcher.requests_in_flight() == 0);
  // Each caller's share of the usage; together they are what the provider reported.
  std::int64_t tokens = 0;
  for (const auto& r : results) {
    REQUIRE(r.has_value());
    CHECK(r->usage.prompt_tokens > 0);
    tokens += r->usage.prompt_tokens;
  }
  CHECK(tokens == b.client.metrics().prompt_tokens);
  for (std::size_t i = 0; i < calls.size(); ++i) {
    INFO("caller " << i);
    const auto alone = b.direct(calls[i]);
    CHECK(results[i]->dimension == 64);
    CHECK(results[i]->size() == 1);
    CHECK(results[i]->vectors == alone.vectors);
  }
}

TEST_CASE("with batching off every text is its own request", "[memory]") {
  TestServer server = serve();
  auto options = batching(4, 200ms);
  options.enabled = false;
  Batched b(server, options);
  Calls calls = one_text_each(4);
  calls.push_back({"first of three", "second of three", "third of three"});
  auto results = b.embed_concurrently(calls);

  CHECK(server.requests_to("/v1/embeddings") == 7);
  CHECK(inputs_per_request(server) == std::vector<std::size_t>(7, 1));
  CHECK(b.batcher.requests_sent() == 7);
  for (std::size_t i = 0; i < calls.size(); ++i) {
    INFO("caller " << i);
    REQUIRE(results[i].has_value());
    CHECK(results[i]->vectors == b.direct(calls[i]).vectors);
  }
}

TEST_CASE("a caller with more texts than batch_size spans several requests in order", "[memory]") {
  TestServer server = serve();
  Batched b(server, batching(100, 50ms));
  std::vector<std::string> texts;
  for (int i = 0; i < 250; ++i) texts.push_back("chunk " + std::to_string(i) + " of word" + std::to_string(i % 13));
  auto results = b.embed_concurrently({texts});

  REQUIRE(results[0].has_value());
  CHECK(server.requests_to("/v1/embeddings") == 3);
  CHECK(inputs_per_request(server) == std::vector<std::size_t>{50, 100, 100});
  CHECK(results[0]->size() == 250);
  CHECK(results[0]->vectors == b.direct(texts).vectors);
}

TEST_CASE("fewer texts than batch_size are sent together after max_delay", "[memory]") {
  TestServer server = serve();
  auto options = batching(100, 20ms);
  options.dimensions = 32;
  Batched b(server, options);
  auto results = b.embed_concurrently(one_text_each(3));

  CHECK(server.requests_to("/v1/embeddings") == 1);
  CHECK(inputs_per_request(server) == std::vector<std::size_t>{3});
  const auto body = json::parse(request_bodies(server).at(0));
  CHECK(body.at("dimensions") == 32);
  CHECK(body.at("model") == k_model);
  for (const auto& r : results) {
    REQUIRE(r.has_value());
    CHECK(r->dimension == 32);
    CHECK(r->size() == 1);
  }
}

TEST_CASE("a failed request fails exactly the callers with a text in it", "[memory]") {
  // A 400 is not retried, so the marked request fails once and for all.
  TestServer server = serve(json::parse(R"({"rules": [{"path": "/v1/embeddings", "contains": "poison",
      "status": 400, "body": {"error": {"message": "poisoned batch", "type": "invalid_request_error",
      "code": "bad_input"}}}]})"));
  Batched b(server, batching(2, 50ms));
  // Requests: {alpha, beta}, {gamma, poison}, then {epsilon} after the delay.
  auto results = b.embed_concurrently({{"alpha one"}, {"beta two", "gamma three"}, {"poison delta"}, {"epsilon five"}});

  CHECK(server.requests_to("/v1/embeddings") == 3);
  CHECK(results[0].has_value());
  REQUIRE(results[3].has_value());
  for (std::size_t i : {1, 2}) {
    INFO("caller " << i);
    REQUIRE_FALSE(results[i].has_value());
    CHECK(results[i].error().code == NetErrc::provider_refused);
    CHECK(results[i].error().status == 400);
    CHECK_THAT(results[i].error().message, Catch::Contains("poisoned batch"));
  }
  CHECK(results[3]->vectors == b.direct({"epsilon five"}).vectors);
}

TEST_CASE("replies that do not fit the request fail their callers with a protocol error", "[memory]") {
  SECTION("one caller's requests return vectors of different dimensions") {
    TestServer server = serve(json::parse(R"({"rules": [{"path": "/v1/embeddings", "contains": "odd",
        "body": {"object": "list", "model": "m", "usage": {"prompt_tokens": 4, "total_tokens": 4},
                 "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]},
                          {"object": "embedding", "index": 1, "embedding": [0.4, 0.5, 0.6]}]}}]})"));
    Batched b(server, batching(2, 50ms));
    auto results = b.embed_concurrently({{"odd one", "two", "three", "four"}, {"solo"}});

    CHECK(server.requests_to("/v1/embeddings") == 3);
    REQUIRE_FALSE(results[0].has_value());
    CHECK(results[0].error().code == NetErrc::protocol_error);
    CHECK_THAT(results[0].error().message, Catch::Contains("3 and 64 dimensions") || Catch::Contains("64 and 3 dimensions"));
    REQUIRE(results[1].has_value());
    CHECK(results[1]->dimension == 64);
  }
  SECTION("a reply with fewer vectors than inputs") {
    TestServer server = serve(json::parse(R"({"rules": [{"path": "/v1/embeddings", "contains": "short",
        "body": {"object": "list", "model": "m", "usage": {"prompt_tokens": 4, "total_tokens": 4},
                 "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]}}]})"));
    Batched b(server, batching(2, 50ms));
    auto results = b.embed_concurrently({{"short a"}, {"b text"}, {"c text"}});

    for (std::size_t i : {0, 1}) {
      INFO("caller " << i);
      REQUIRE_FALSE(results[i].has_value());
      CHECK(results[i].error().code == NetErrc::protocol_error);
    }
    CHECK(results[2].has_value());
  }
}

TEST_CASE("a cancelled caller returns at once and the others get their vectors", "[memory]") {
  SECTION("cancelled while its text is queued: the text is never sent") {
    TestServer server = serve();
    Batched b(server, batching(100, 300ms));
    Race race;
    std::optional<Embedded> first, last;
    asio::co_spawn(b.io, b.batcher.embed({"beta words"}), ResultSink<Embedded>{&first});
    asio::co_spawn(b.io, embed_before(&b.batcher, {"cancelled zeta"}, 20ms, &race), Rethrow{});
    asio::co_spawn(b.io, b.batcher.embed({"gamma words"}), ResultSink<Embedded>{&last});
    b.io.run();

    check_cancelled(race);
    CHECK(race.sent_at_end == 0);  // it returned before the delay flushed the queue
    REQUIRE(first.has_value());
    REQUIRE(last.has_value());
    CHECK(first->has_value());
    CHECK(last->has_value());
    CHECK(inputs_per_request(server) == std::vector<std::size_t>{2});
    CHECK_THAT(request_bodies(server).at(0), !Catch::Contains("zeta"));
  }
  SECTION("cancelled while its request is in flight: the request still finishes") {
    TestServer server = serve(json::parse(R"({"rules": [{"path": "/v1/embeddings", "contains": "slow", "latency_ms": 600}]})"));
    Batched b(server, batching(2, 1000ms));
    Race race;
    std::optional<Embedded> other;
    asio::co_spawn(b.io, embed_before(&b.batcher, {"slow delta"}, 50ms, &race), Rethrow{});
    asio::co_spawn(b.io, b.batcher.embed({"epsilon words"}), ResultSink<Embedded>{&other});
    b.io.run();

    check_cancelled(race);
    CHECK(race.sent_at_end == 1);
    CHECK(race.in_flight_at_end == 1);  // it returned without waiting for the reply
    REQUIRE(other.has_value());
    REQUIRE(other->has_value());
    CHECK((*other)->vectors == b.direct({"epsilon words"}).vectors);
    CHECK(b.batcher.requests_in_flight() == 0);
    const json::value stats = server.stats();
    CHECK(stats.at("recent").as_array().at(0).at("status") == 200);
  }
}

TEST_CASE("destroying the batcher fails the queued callers while sent requests finish", "[memory]") {
  TestServer server = serve(json::parse(R"({"rules": [{"path": "/v1/embeddings", "latency_ms": 300}]})"));
  Batched b(server, batching(2, 1000ms));
  std::optional<EmbeddingBatcher> doomed(std::in_place, b.io.get_executor(), b.client, batching(2, 1000ms));
  std::optional<Embedded> sent, queued;
  asio::co_spawn(b.io, doomed->embed({"one", "two"}), ResultSink<Embedded>{&sent});
  asio::co_spawn(b.io, doomed->embed({"three"}), ResultSink<Embedded>{&queued});
  asio::co_spawn(b.io, destroy_after(&doomed, 50ms), Rethrow{});
  b.io.run();

  REQUIRE(queued.has_value());
  REQUIRE_FALSE(queued->has_value());
  CHECK(queued->error().code == NetErrc::cancelled);
  REQUIRE(sent.has_value());
  REQUIRE(sent->has_value());
  CHECK((*sent)->vectors == b.direct({"one", "two"}).vectors);
  CHECK(server.requests_to("/v1/embeddings") == 2);  // the batch, then the direct call; never "three"
}

TEST_CASE("a batch counts to the meter of the caller whose text opened it, its tokens split by input", "[memory][meter]") {
  // Batch 1 holds the first caller's three texts and the second's first; batch 2 the second's
  // other two, whose first attempt fails once.
  TestServer server = serve(json::parse(R"({"rules": [{"path": "/v1/embeddings", "contains": "second caller, text 2",
      "times": 1, "status": 500, "headers": {"retry-after-ms": "1"}}]})"));
  Batched b(server, batching(4, 50ms));
  auto first = std::make_shared<CallMeter>();
  auto second = std::make_shared<CallMeter>();
  std::optional<Embedded> first_out, second_out;
  std::vector<std::string> first_texts{"first caller, text 1", "first caller, text 2 is a little longer", "first caller, 3"};
  std::vector<std::string> second_texts{"second caller, text 1", "second caller, text 2", "second caller, text 3"};
  asio::co_spawn(b.io, b.batcher.embed(first_texts, first), ResultSink<Embedded>{&first_out});
  asio::co_spawn(b.io, b.batcher.embed(second_texts, second), ResultSink<Embedded>{&second_out});
  b.io.run();
  REQUIRE(first_out.has_value());
  REQUIRE(second_out.has_value());
  REQUIRE(first_out->has_value());
  REQUIRE(second_out->has_value());
  CHECK(inputs_per_request(server) == std::vector<std::size_t>{2, 2, 4});  // batch 2 was sent twice

  // Each request once, to the caller that opened it, with its retry.
  CHECK(first->embedding_calls == 1);
  CHECK(second->embedding_calls == 1);
  CHECK(first->retries == 0);
  CHECK(second->retries == 1);
  CHECK(first->connections_opened == 1);
  // The tokens of each caller's own texts: its share of the usage, as the batcher reported it.
  CHECK(first->prompt_tokens > 0);
  CHECK(first->prompt_tokens == (*first_out)->usage.prompt_tokens);
  CHECK(second->prompt_tokens == (*second_out)->usage.prompt_tokens);
  const auto total = b.client.metrics();
  CHECK(first->prompt_tokens + second->prompt_tokens == total.prompt_tokens);
  CHECK(first->embedding_calls + second->embedding_calls == total.embedding_calls);
  CHECK(first->retries + second->retries == total.retries);
  CHECK(first->connections_opened + second->connections_opened == total.connections_opened);
  CHECK(first->llm_calls + second->llm_calls == 0);
}
