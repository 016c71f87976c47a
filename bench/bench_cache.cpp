// Response cache hit latency (issue 16): a hit in this process's LRU (L1) against a hit in Redis
// (L2: GET+PTTL, decode, inflate), each N times in sequence on one loop through
// CachingProvider::chat / embed, for a small reply, a large (compressed) reply and a 1536-float
// embedding; prints p50/p99 in microseconds. The model is a stub that counts its calls: every
// measured call must be a hit.
//
// Usage: bench_cache --redis redis://127.0.0.1:PORT [--n 5000]
// Prints one JSON line (prefixed "json ") and human lines.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "net/cached_reply.hpp"
#include "net/response_cache.hpp"
#include "redis/redis_cache.hpp"
#include "redis_bench_common.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent;
using Clock = std::chrono::steady_clock;

using bench::Samples;

// Words drawn at random from a small vocabulary: text that deflates about as model output does.
std::string prose(std::size_t bytes, unsigned seed) {
  static const char* k_words[] = {"the", "cache", "answer", "request", "model", "Redis", "process", "value",
                                  "latency", "shared", "entry", "returns", "because", "which", "under", "every"};
  std::mt19937 rng(seed);
  std::string out;
  while (out.size() < bytes) out += std::string(k_words[rng() % 16]) + (rng() % 9 == 0 ? ".\n" : " ");
  return out.substr(0, bytes);
}

// The model: a fixed reply per call, counted.
class StubProvider final : public net::LlmProvider {
 public:
  std::string content;
  std::size_t dimension = 1536;
  int calls = 0;

  asio::awaitable<net::LlmResult<net::ChatResponse>> chat(net::ChatRequest request) override {
    ++calls;
    co_return net::ChatResponse{"chatcmpl-bench", request.model, content, "stop", {120, 300}};
  }
  asio::awaitable<net::LlmResult<net::ChatResponse>> chat_stream(net::ChatRequest request,
                                                                 std::function<void(std::string_view)>) override {
    co_return co_await chat(std::move(request));
  }
  asio::awaitable<net::LlmResult<net::EmbedResponse>> embed(net::EmbedRequest request) override {
    ++calls;
    co_return embedding(request.inputs.size());
  }
  // Floats as a model's: small, normally distributed, every bit of the mantissa used.
  net::EmbedResponse embedding(std::size_t inputs) const {
    net::EmbedResponse r;
    r.dimension = dimension;
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 0.03f);
    for (std::size_t i = 0; i < inputs * dimension; ++i) r.vectors.push_back(normal(rng));
    r.usage = {8, 0};
    return r;
  }
  net::ProviderMetrics metrics() const override { return {}; }
};

net::ChatRequest chat_request() {
  net::ChatRequest r;
  r.model = "gpt-bench";
  r.messages = {{"system", prose(400, 1)}, {"user", prose(300, 2)}};
  r.max_tokens = 500;
  return r;
}

struct Case {
  const char* name;
  net::CachingProvider* cache;
  bool embed;
  Samples* samples;
};

asio::awaitable<void> call_once(Case c, Samples* into) {
  auto t = Clock::now();
  bool ok = false;
  if (c.embed) {
    net::EmbedRequest request;  // g++ 12: no braced initializer inside a co_await
    request.model = "text-embedding-bench";
    request.inputs.push_back("one input");
    auto r = co_await c.cache->embed(std::move(request));
    ok = r.has_value();
  } else {
    auto r = co_await c.cache->chat(chat_request());
    ok = r.has_value();
  }
  if (!into) co_return;
  ok ? into->us.push_back(bench::since_us(t)) : void(++into->failures);
}

asio::awaitable<void> measure(std::vector<Case> cases, int n) {
  for (int i = 0; i < n; ++i)
    for (const auto& c : cases) co_await call_once(c, c.samples);
}

struct Done {
  void operator()(std::exception_ptr e) const {
    if (e) std::rethrow_exception(e);
  }
};

// Runs `work` on `io` until nothing is left (the background writes to Redis included).
void run(asio::io_context& io, asio::awaitable<void> work) {
  io.restart();
  asio::co_spawn(io, std::move(work), Done{});
  io.run();
}

asio::awaitable<void> fill(std::vector<Case> cases) {
  for (const auto& c : cases) co_await call_once(c, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const bench::Args args(argc, argv);
    const int n = static_cast<int>(args.integer("n", 5000));
    const auto options = bench::redis_options(args, "bench_cache --redis redis://127.0.0.1:PORT [--n N]");
    if (!options) return 2;
    asio::io_context io(1);
    auto shared = std::make_shared<redis::RedisCache>(redis::RedisClient(io.get_executor(), *options));
    // One stub and two caches per reply size: L1 keeps everything; L2 keeps nothing in-process
    // (max_entries 0), so every call is answered by Redis.
    struct Setup {
      const char* name;
      std::size_t bytes;
      bool embed;
      StubProvider stub;
      std::unique_ptr<net::CachingProvider> l1, l2;
      Samples l1_samples, l2_samples;
      std::size_t stored = 0;
    };
    std::vector<std::unique_ptr<Setup>> setups;
    for (auto [name, bytes, embed] : {std::tuple{"chat_300B", std::size_t{300}, false},
                                      std::tuple{"chat_16KiB", std::size_t{16384}, false},
                                      std::tuple{"embed_1536", std::size_t{0}, true}}) {
      auto s = std::make_unique<Setup>();
      s->name = name;
      s->bytes = bytes;
      s->embed = embed;
      s->stub.content = prose(bytes, 3);
      const std::string scope = std::string("bench://") + name;
      s->l1 = std::make_unique<net::CachingProvider>(io.get_executor(), s->stub,
                                                     net::CacheOptions{.ttl = std::chrono::hours(1), .scope = scope});
      s->l2 = std::make_unique<net::CachingProvider>(
          io.get_executor(), s->stub, net::CacheOptions{.ttl = std::chrono::hours(1), .max_entries = 0, .scope = scope, .shared = shared});
      setups.push_back(std::move(s));
    }
    std::vector<Case> cases;
    for (auto& s : setups) {  // L1 and L2 of each size in turn
      cases.push_back({s->name, s->l1.get(), s->embed, &s->l1_samples});
      cases.push_back({s->name, s->l2.get(), s->embed, &s->l2_samples});
    }
    run(io, fill(cases));  // each L1 and each L2 filled by one miss, the Redis writes finished
    std::vector<int> calls_after_fill;
    for (auto& s : setups) calls_after_fill.push_back(s->stub.calls);
    run(io, measure(cases, n));

    json::object out;
    for (std::size_t i = 0; i < setups.size(); ++i) {
      auto& s = *setups[i];
      const int misses = s.stub.calls - calls_after_fill[i];
      const auto l2 = s.l2->metrics();
      json::object row;
      for (auto [level, samples] : {std::pair{"l1", &s.l1_samples}, std::pair{"l2", &s.l2_samples}}) {
        row[level] = json::object{{"p50_us", samples->pct(0.5)}, {"p99_us", samples->pct(0.99)}, {"failures", samples->failures}};
        std::printf("%-11s %s hit  p50 %8.1f us   p99 %8.1f us   (%d failures)\n", s.name, level, samples->pct(0.5),
                    samples->pct(0.99), samples->failures);
      }
      row["misses"] = misses;
      row["l2_hits"] = l2.cache_l2_hits;
      row["l2_errors"] = l2.cache_l2_errors;
      out[s.name] = std::move(row);
      if (misses != 0 || l2.cache_l2_errors != 0)
        std::printf("%-11s NOT ALL HITS: %d calls reached the model, %lld L2 errors\n", s.name, misses,
                    static_cast<long long>(l2.cache_l2_errors));
    }
    // What each value costs in Redis.
    for (auto& setup : setups) {
      auto& s = *setup;
      net::CachedReply reply = s.embed ? net::CachedReply(s.stub.embedding(1))
                                       : net::CachedReply(net::ChatResponse{"chatcmpl-bench", "gpt-bench", s.stub.content, "stop", {}});
      s.stored = net::encode_reply(reply, std::string(64, 'f')).size();
      std::printf("%-11s stored as %zu bytes\n", s.name, s.stored);
      out[s.name].as_object()["stored_bytes"] = s.stored;
    }
    out["n"] = n;
    std::printf("json %s\n", json::serialize(out).c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cache: %s\n", e.what());
    return 1;
  }
}
