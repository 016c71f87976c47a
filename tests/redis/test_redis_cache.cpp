#include "redis/redis_cache.hpp"

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

#include "net/openai_client.hpp"
#include "net/response_cache.hpp"
#include "net/url.hpp"
#include "support/redis_process.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using dagent::net::CacheOptions;
using dagent::net::CachingProvider;
using dagent::net::ChatRequest;
using dagent::net::SharedCache;
using dagent::redis::Command;
using dagent::redis::RedisCache;
using dagent::redis::RedisClient;
using dagent::redis::RedisOptions;
using dagent::redis::Reply;
using dagent::test::RedisServer;
using dagent::test::run_on;

namespace {

RedisOptions options_for(const RedisServer& server) {
  dagent::config::RedisConfig cfg;
  cfg.url = server.url();
  auto options = RedisOptions::from(cfg, ".");
  REQUIRE(options.has_value());
  // Why no backoff: the test restarts the server and wants the next call to connect, not to wait.
  options->backoff_min = 0ms;
  options->backoff_max = 0ms;
  return *options;
}

asio::awaitable<SharedCache::Found> get(std::shared_ptr<RedisCache> cache, std::string key) {
  co_return co_await cache->get(std::move(key));
}

asio::awaitable<SharedCache::Stored> put(std::shared_ptr<RedisCache> cache, std::string key, std::string value,
                                         std::chrono::milliseconds ttl) {
  co_return co_await cache->put(std::move(key), std::move(value), ttl);
}

asio::awaitable<boost::system::result<Reply, dagent::redis::RedisError>> send(RedisClient client, Command command) {
  co_return co_await client.command(std::move(command));
}

ChatRequest ask(std::string text) {
  ChatRequest r;
  r.model = "gpt-test";
  r.messages.push_back({"user", std::move(text)});
  return r;
}

// One process: its loop, its Redis connection, its model client and its cache.
struct Process {
  asio::io_context io;
  RedisClient redis;
  dagent::net::OpenAiClient live;
  std::vector<std::string> warnings;
  CachingProvider cache;

  Process(const RedisServer& server, const dagent::test::TestServer& model)
      : redis(io.get_executor(), options_for(server)),
        live(io.get_executor(), nullptr, model_options(model)),
        cache(io.get_executor(), live,
              {.ttl = 60s, .scope = "http://model.test:80", .shared = std::make_shared<RedisCache>(redis),
               .warn = [this](const std::string& w) { warnings.push_back(w); }}) {}

  static dagent::net::OpenAiOptions model_options(const dagent::test::TestServer& model) {
    dagent::net::OpenAiOptions o;
    o.base_url = *dagent::net::parse_base_url(model.base_url());
    return o;
  }
  std::vector<std::string> keys() {
    auto r = run_on(io, send(redis, {"KEYS", "dagent:cache:v1:*"}));
    REQUIRE(r.has_value());
    std::vector<std::string> out;
    for (const auto& e : r->elements) out.push_back(e.str);
    return out;
  }
};

}  // namespace

TEST_CASE("RedisCache stores with PX and reads the value with the time it has left", "[redis][cache]") {
  RedisServer server;
  asio::io_context io;
  RedisClient client(io.get_executor(), options_for(server));
  auto cache = std::make_shared<RedisCache>(client);
  CHECK(RedisCache::redis_key("ab") == "dagent:cache:v1:ab");
  auto missing = run_on(io, get(cache, "ab"));
  REQUIRE(missing.has_value());
  CHECK_FALSE(missing->has_value());
  REQUIRE(run_on(io, put(cache, "ab", std::string("bin\0ary", 7), 5000ms)).has_value());
  auto found = run_on(io, get(cache, "ab"));
  REQUIRE(found.has_value());
  REQUIRE(found->has_value());
  CHECK((*found)->value == std::string("bin\0ary", 7));
  REQUIRE((*found)->ttl.has_value());
  CHECK(*(*found)->ttl > 0ms);
  CHECK(*(*found)->ttl <= 5000ms);

  SECTION("a key without an expiry has no TTL") {
    REQUIRE(run_on(io, send(client, {"SET", "dagent:cache:v1:cd", "v"})).has_value());
    auto forever = run_on(io, get(cache, "cd"));
    REQUIRE(forever.has_value());
    REQUIRE(forever->has_value());
    CHECK_FALSE((*forever)->ttl.has_value());
  }
  SECTION("a key of another type is an error naming the server") {
    REQUIRE(run_on(io, send(client, {"HSET", "dagent:cache:v1:ef", "f", "v"})).has_value());
    auto wrong = run_on(io, get(cache, "ef"));
    REQUIRE_FALSE(wrong.has_value());
    CHECK_THAT(wrong.error(), Catch::StartsWith("Redis at " + server.url() + "/0 refused GET: WRONGTYPE"));
  }
}

TEST_CASE("two processes share replies through Redis, large ones compressed", "[redis][cache]") {
  RedisServer server;
  dagent::test::TestServer model;
  Process one(server, model);
  Process two(server, model);
  auto requests = [&] { return model.stats().at("requests").at("total").to_number<std::int64_t>(); };

  auto first = run_on(one.io, one.cache.chat(ask("hello")));
  REQUIRE(first.has_value());
  REQUIRE(one.keys().size() == 1);  // run_on ran the background write to its end
  auto pttl = run_on(one.io, send(one.redis, {"PTTL", one.keys()[0]}));
  REQUIRE(pttl.has_value());
  CHECK(pttl->integer > 0);
  CHECK(pttl->integer <= 60000);  // SET ... PX the cache's TTL
  auto shared = run_on(two.io, two.cache.chat(ask("hello")));
  REQUIRE(shared.has_value());
  CHECK(shared->content == first->content);
  CHECK(requests() == 1);
  CHECK(two.cache.metrics().cache_l2_hits == 1);

  // A reply over 1 KiB, scripted.
  const std::string long_reply(5000, 'w');
  model.set_script(boost::json::value{
      {"rules", boost::json::array{boost::json::object{{"contains", "LONG"}, {"reply", long_reply}}}}});
  const std::string long_prompt = "LONG reply, please";
  auto large = run_on(one.io, one.cache.chat(ask(long_prompt)));
  REQUIRE(large.has_value());
  REQUIRE(large->content == long_reply);
  bool compressed = false;
  for (const auto& key : one.keys()) {
    auto value = run_on(one.io, send(one.redis, {"GET", key}));
    REQUIRE(value.has_value());
    if (value->str.size() >= 2 && value->str[1] == 1) compressed = value->str.size() < large->content.size();
  }
  CHECK(compressed);
  auto large_again = run_on(two.io, two.cache.chat(ask(long_prompt)));
  REQUIRE(large_again.has_value());
  CHECK(large_again->content == large->content);
  CHECK(requests() == 2);
  CHECK(two.cache.metrics().cache_l2_hits == 2);
  CHECK(one.warnings.empty());
  CHECK(two.warnings.empty());
}

TEST_CASE("a corrupt value in Redis is a miss and is written again", "[redis][cache]") {
  RedisServer server;
  dagent::test::TestServer model;
  Process one(server, model);
  Process two(server, model);
  REQUIRE(run_on(one.io, one.cache.chat(ask("hello"))).has_value());
  const auto keys = one.keys();
  REQUIRE(keys.size() == 1);
  REQUIRE(run_on(one.io, send(one.redis, {"SET", keys[0], std::string("\x01\x01\xff\xff\xff\xff garbage", 14)})).has_value());
  auto answered = run_on(two.io, two.cache.chat(ask("hello")));
  REQUIRE(answered.has_value());
  CHECK(model.stats().at("requests").at("total") == 2);
  CHECK(two.cache.metrics().cache_l2_errors == 1);
  REQUIRE(two.warnings.size() == 1);
  CHECK_THAT(two.warnings[0], Catch::Contains("a value in the shared cache was ignored (the value would inflate to"));
  auto rewritten = run_on(one.io, send(one.redis, {"GET", keys[0]}));
  REQUIRE(rewritten.has_value());
  CHECK(rewritten->str.substr(0, 2) == std::string("\x01\x00", 2));
}

TEST_CASE("with Redis killed the cache works in-process, warns once, and recovers", "[redis][cache]") {
  RedisServer server;
  dagent::test::TestServer model;
  Process one(server, model);
  server.kill();
  auto first = run_on(one.io, one.cache.chat(ask("a")));
  REQUIRE(first.has_value());
  auto again = run_on(one.io, one.cache.chat(ask("a")));
  REQUIRE(again.has_value());
  CHECK(again->content == first->content);
  REQUIRE(run_on(one.io, one.cache.chat(ask("b"))).has_value());
  const auto m = one.cache.metrics();
  CHECK(m.cache_hits == 1);
  CHECK(m.cache_l2_hits == 0);
  CHECK(m.cache_l2_errors == 4);  // the read and the write of "a" and of "b"
  REQUIRE(one.warnings.size() == 1);
  CHECK_THAT(one.warnings[0], Catch::StartsWith("response cache: the shared cache did not answer (") &&
                                  Catch::Contains(server.url()));

  server.start();
  REQUIRE(run_on(one.io, one.cache.chat(ask("c"))).has_value());
  CHECK(one.keys().size() == 1);
  Process two(server, model);
  REQUIRE(run_on(two.io, two.cache.chat(ask("c"))).has_value());
  CHECK(two.cache.metrics().cache_l2_hits == 1);
  CHECK(model.stats().at("requests").at("total") == 3);
  CHECK(one.warnings.size() == 1);
}

TEST_CASE("with Redis paused a call waits at most its timeout and is answered by the model", "[redis][cache]") {
  RedisServer server;
  dagent::test::TestServer model;
  Process one(server, model);
  REQUIRE(run_on(one.io, one.cache.chat(ask("warm"))).has_value());  // a connection open before the pause
  server.pause();
  auto answered = run_on(one.io, one.cache.chat(ask("paused")));
  server.resume();
  REQUIRE(answered.has_value());
  CHECK_FALSE(answered->content.empty());
  CHECK(one.cache.metrics().cache_l2_errors == 2);  // the read and the write timed out
  REQUIRE(one.warnings.size() == 1);
  CHECK_THAT(one.warnings[0], Catch::Contains("did not answer"));
  REQUIRE(run_on(one.io, one.cache.chat(ask("after"))).has_value());
  CHECK(one.cache.metrics().cache_l2_errors == 2);
  // A write that timed out may still land once Redis runs again; "after" was written for sure.
  Process two(server, model);
  REQUIRE(run_on(two.io, two.cache.chat(ask("after"))).has_value());
  CHECK(two.cache.metrics().cache_l2_hits == 1);
}
