#include "net/response_cache.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include <map>

#include "net/openai_client.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace asio = boost::asio;
using namespace dagent::net;
using namespace std::chrono_literals;

using dagent::test::run_on;

ChatRequest ask(std::string text) {
  ChatRequest r;
  r.model = "gpt-test";
  r.messages.push_back({"user", std::move(text)});
  return r;
}

// A second level in memory that can be taken down, as Redis can.
class FakeShared final : public SharedCache {
 public:
  std::map<std::string, SharedEntry> entries;
  bool down = false;
  std::vector<std::string> calls;  ///< "get KEY" / "put KEY", in order

  asio::awaitable<Found> get(std::string key) override {
    calls.push_back("get " + key);
    if (down) co_return Found(boost::system::in_place_error, "Redis at redis://127.0.0.1:9/0: connection refused");
    auto it = entries.find(key);
    if (it == entries.end()) co_return std::optional<SharedEntry>();
    co_return std::optional<SharedEntry>(it->second);
  }
  asio::awaitable<Stored> put(std::string key, std::string value, std::chrono::milliseconds ttl) override {
    calls.push_back("put " + key);
    if (down) co_return std::string("Redis at redis://127.0.0.1:9/0: connection refused");
    entries[key] = SharedEntry{std::move(value), ttl};
    co_return Stored();
  }
};

// Two processes' caches (their own first level, one second level) over one live client.
struct TwoCaches {
  dagent::test::TestServer server;
  asio::io_context io;
  OpenAiClient live{io.get_executor(), nullptr, options(server)};
  std::shared_ptr<FakeShared> shared = std::make_shared<FakeShared>();
  std::chrono::steady_clock::time_point now{};
  std::vector<std::string> warnings;
  CachingProvider a{io.get_executor(), live, cache_options("http://model.test:8080/v1")};
  CachingProvider b{io.get_executor(), live, cache_options("http://model.test:8080/v1")};

  static OpenAiOptions options(const dagent::test::TestServer& server) {
    OpenAiOptions o;
    o.base_url = *parse_base_url(server.base_url());
    return o;
  }
  CacheOptions cache_options(std::string scope) {
    return {.ttl = 10s, .max_entries = 100, .scope = std::move(scope), .shared = shared,
            .warn = [this](const std::string& w) { warnings.push_back(w); }, .now = [this] { return now; }};
  }
  std::int64_t server_requests() const { return server.stats().at("requests").at("total").to_number<std::int64_t>(); }
  std::string only_key() const {
    REQUIRE(shared->entries.size() == 1);
    return shared->entries.begin()->first;
  }
};

}  // namespace

TEST_CASE("the response cache answers repeats without a request, expires and evicts", "[net][cache]") {
  dagent::test::TestServer server;
  OpenAiOptions o;
  o.base_url = *parse_base_url(server.base_url());
  asio::io_context io;
  OpenAiClient live(io.get_executor(), nullptr, o);
  auto now = std::chrono::steady_clock::time_point{};
  CachingProvider cache(io.get_executor(), live, {.ttl = std::chrono::seconds(10), .max_entries = 2, .now = [&] { return now; }});
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

TEST_CASE("a second process's cache answers from the shared level without a request", "[net][cache]") {
  TwoCaches t;
  auto first = run_on(t.io, t.a.chat(ask("a")));
  REQUIRE(first.has_value());
  CHECK(t.server_requests() == 1);
  const std::string key = t.only_key();
  CHECK(key.size() == 64);  // the request's fingerprint, hex SHA-256
  CHECK(t.shared->entries.at(key).ttl == std::chrono::milliseconds(10s));

  auto again = run_on(t.io, t.b.chat(ask("a")));
  REQUIRE(again.has_value());
  CHECK(again->content == first->content);
  CHECK(again->usage.completion_tokens == first->usage.completion_tokens);
  CHECK(t.server_requests() == 1);
  CHECK(t.b.metrics().cache_hits == 1);
  CHECK(t.b.metrics().cache_l2_hits == 1);
  CHECK(t.b.metrics().cache_l2_errors == 0);
  CHECK(t.b.size() == 1);  // the hit filled b's first level...
  REQUIRE(run_on(t.io, t.b.chat(ask("a"))).has_value());
  // ...so the repeat did not ask the shared level again.
  CHECK(t.shared->calls == std::vector<std::string>{"get " + key, "put " + key, "get " + key});
  CHECK(t.b.metrics().cache_hits == 2);
  CHECK(t.b.metrics().cache_l2_hits == 1);
  CHECK(t.warnings.empty());

  SECTION("a streamed call hits the same entry and gets the reply as one delta") {
    std::vector<std::string> deltas;
    auto streamed = run_on(t.io, t.a.chat_stream(ask("a"), [&](std::string_view d) { deltas.emplace_back(d); }));
    REQUIRE(streamed.has_value());
    CHECK(deltas == std::vector<std::string>{first->content});
    CHECK(t.server_requests() == 1);
  }
  SECTION("providers at another base URL never share entries") {
    CachingProvider other(t.io.get_executor(), t.live, t.cache_options("https://api.other.test:443/v1"));
    REQUIRE(run_on(t.io, other.chat(ask("a"))).has_value());
    CHECK(t.server_requests() == 2);
    CHECK(t.shared->entries.size() == 2);
  }
}

TEST_CASE("an entry from the shared level lives in the first only as long as it has left", "[net][cache]") {
  TwoCaches t;
  REQUIRE(run_on(t.io, t.a.chat(ask("a"))).has_value());
  const std::string key = t.only_key();
  t.shared->entries.at(key).ttl = 3s;  // the entry was written 7 s ago
  REQUIRE(run_on(t.io, t.b.chat(ask("a"))).has_value());
  t.now += 2s;
  REQUIRE(run_on(t.io, t.b.chat(ask("a"))).has_value());  // still in b's first level
  CHECK(t.shared->calls.size() == 3);
  t.now += 2s;
  t.shared->entries.clear();  // and expired in the shared level too
  REQUIRE(run_on(t.io, t.b.chat(ask("a"))).has_value());
  CHECK(t.server_requests() == 2);
  CHECK(t.shared->calls.back() == "put " + key);
  CHECK(t.b.metrics().cache_l2_hits == 1);
}

TEST_CASE("failures are cached in neither level", "[net][cache]") {
  TwoCaches t;
  t.server.set_script(boost::json::parse(R"({"rules": [{"path": "/v1/chat/completions", "times": 1, "status": 400}]})"));
  CHECK_FALSE(run_on(t.io, t.a.chat(ask("z"))).has_value());
  CHECK(t.shared->entries.empty());
  CHECK(t.a.size() == 0);
  CHECK(run_on(t.io, t.b.chat(ask("z"))).has_value());
  CHECK(t.server_requests() == 2);
}

TEST_CASE("embeddings are shared too, and a chat key never returns an embedding", "[net][cache]") {
  TwoCaches t;
  EmbedRequest e{"text-embedding-test", {"one", "two"}, std::nullopt};
  auto first = run_on(t.io, t.a.embed(e));
  REQUIRE(first.has_value());
  auto shared = run_on(t.io, t.b.embed(e));
  REQUIRE(shared.has_value());
  CHECK(shared->vectors == first->vectors);
  CHECK(shared->dimension == first->dimension);
  CHECK(t.server.requests_to("/v1/embeddings") == 1);

  REQUIRE(run_on(t.io, t.a.chat(ask("a"))).has_value());
  std::string chat_key;
  for (const auto& [key, entry] : t.shared->entries)
    if (decode_reply(entry.value, key, ReplyKind::chat)) chat_key = key;
  REQUIRE_FALSE(chat_key.empty());
  t.shared->entries[chat_key].value = encode_reply(*first, chat_key);  // an embedding under the chat's key
  auto answered = run_on(t.io, t.b.chat(ask("a")));
  REQUIRE(answered.has_value());
  CHECK_FALSE(answered->content.empty());
  CHECK(t.server_requests() == 3);  // the embedding, the first chat, this one
  CHECK(t.b.metrics().cache_l2_errors == 1);
  REQUIRE(t.warnings.size() == 1);
  CHECK_THAT(t.warnings[0], Catch::Contains("a value in the shared cache was ignored (the value is not a chat reply)"));
  CHECK(decode_reply(t.shared->entries[chat_key].value, chat_key, ReplyKind::chat).has_value());  // written again, right
}

TEST_CASE("with the shared level down, the cache works in this process, warns once and recovers", "[net][cache]") {
  TwoCaches t;
  t.shared->down = true;
  auto first = run_on(t.io, t.a.chat(ask("a")));
  REQUIRE(first.has_value());
  CHECK(t.a.metrics().cache_l2_errors == 2);  // the read and the write
  auto repeat = run_on(t.io, t.a.chat(ask("a")));
  REQUIRE(repeat.has_value());
  CHECK(repeat->content == first->content);
  CHECK(t.a.metrics().cache_hits == 1);
  CHECK(t.a.metrics().cache_l2_errors == 2);  // a first-level hit does not ask
  REQUIRE(run_on(t.io, t.a.chat(ask("b"))).has_value());
  CHECK(t.a.metrics().cache_l2_errors == 4);
  CHECK(t.server_requests() == 2);
  REQUIRE(t.warnings.size() == 1);
  CHECK_THAT(t.warnings[0], Catch::StartsWith("response cache: the shared cache did not answer (Redis at "));

  t.shared->down = false;
  REQUIRE(run_on(t.io, t.a.chat(ask("c"))).has_value());
  CHECK(t.shared->entries.size() == 1);
  REQUIRE(run_on(t.io, t.b.chat(ask("c"))).has_value());
  CHECK(t.b.metrics().cache_l2_hits == 1);
  CHECK(t.server_requests() == 3);
  CHECK(t.warnings.size() == 1);
}
