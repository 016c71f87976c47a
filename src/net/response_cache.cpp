#include "net/response_cache.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <utility>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>

#include "net/call_meter.hpp"
#include "net/request_fingerprint.hpp"
#include "observe/metrics.hpp"

namespace dagent::net {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// Writes to the second level running at once, at most; a reply past that stays in this process.
constexpr std::size_t k_max_writes = 32;

}  // namespace

// The second level and what its calls and background writes count. Shared with the writes, so a
// write that completes after the cache is gone touches only this.
struct CachingProvider::Level2 {
  struct Write {
    asio::cancellation_signal cancel;
    bool running = false;
  };

  std::shared_ptr<SharedCache> store;
  std::function<void(const std::string&)> warn;
  std::int64_t hits = 0;
  std::int64_t errors = 0;
  bool warned_unreachable = false;
  bool warned_unreadable = false;
  bool closed = false;  ///< the cache is gone: completions count nothing
  std::array<Write, k_max_writes> writes;

  void say(const std::string& message) const {
    if (warn) warn(message);
    else std::fprintf(stderr, "dagent: warning: %s\n", message.c_str());
  }

  // `meter`: the call's, which the failure counts to as well (may be null).
  void unreachable(const std::string& why, CallMeter* meter) {
    ++errors;
    if (meter) ++meter->cache_l2_errors;
    if (std::exchange(warned_unreachable, true)) return;
    say("response cache: the shared cache did not answer (" + why +
        "); calls it cannot answer are cached in this process only (performance.caching.backend)");
  }

  void unreadable(const std::string& why, CallMeter* meter) {
    ++errors;
    if (meter) ++meter->cache_l2_errors;
    if (std::exchange(warned_unreadable, true)) return;
    say("response cache: a value in the shared cache was ignored (" + why + "); the call went to the model");
  }
};

namespace {

asio::awaitable<SharedCache::Stored> write_shared(std::shared_ptr<SharedCache> store, std::string key, std::string value,
                                                  std::chrono::milliseconds ttl) {
  co_return co_await store->put(std::move(key), std::move(value), ttl);
}

struct WriteDone {
  std::shared_ptr<CachingProvider::Level2> level2;
  CachingProvider::Level2::Write* write;
  std::shared_ptr<CallMeter> meter;  // the call whose reply is written; it may have ended
  void operator()(std::exception_ptr e, SharedCache::Stored stored) const {
    write->running = false;
    if (level2->closed) return;  // cancelled by ~CachingProvider
    if (e) level2->unreachable("a write failed", meter.get());
    else if (!stored) level2->unreachable(stored.error(), meter.get());
  }
};

}  // namespace

CachingProvider::CachingProvider(asio::any_io_executor executor, LlmProvider& inner, CacheOptions options)
    : executor_(std::move(executor)), inner_(inner), options_(std::move(options)) {
  if (options_.shared) {
    level2_ = std::make_shared<Level2>();
    level2_->store = options_.shared;
    level2_->warn = options_.warn;
  }
}

CachingProvider::~CachingProvider() {
  if (!level2_) return;
  level2_->closed = true;
  for (auto& write : level2_->writes)
    if (write.running) write.cancel.emit(asio::cancellation_type::terminal);
}

std::string CachingProvider::key_of(json::object normalized) const {
  normalized["provider"] = options_.scope;
  return fingerprint(normalized);
}

const CachingProvider::Value* CachingProvider::find(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  if (options_.now() >= it->second->expires) {
    lru_.erase(it->second);
    index_.erase(it);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++hits_;
  observe::cache_hit(observe::CacheLevel::memory);
  return &lru_.front().value;
}

void CachingProvider::store(std::string key, Value value, std::chrono::milliseconds ttl) {
  if (options_.max_entries == 0 || ttl <= std::chrono::milliseconds(0)) return;
  if (auto it = index_.find(key); it != index_.end()) {
    lru_.erase(it->second);
    index_.erase(it);
  }
  while (index_.size() >= options_.max_entries) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(Entry{key, std::move(value), options_.now() + ttl});
  index_.emplace(std::move(key), lru_.begin());
}

asio::awaitable<std::optional<CachingProvider::Value>> CachingProvider::lookup(std::string key, ReplyKind kind,
                                                                            std::shared_ptr<CallMeter> meter) {
  if (const auto* hit = find(key)) {
    if (meter) ++meter->cache_hits;
    co_return *hit;
  }
  if (!level2_) co_return std::nullopt;
  const auto level2 = level2_;
  auto found = co_await level2->store->get(key);
  if (!found) {
    // A caller that was cancelled learns nothing about the store.
    const auto state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() == asio::cancellation_type::none) level2->unreachable(found.error(), meter.get());
    co_return std::nullopt;
  }
  if (!*found) co_return std::nullopt;
  auto reply = decode_reply((*found)->value, key, kind);
  if (!reply) {
    level2->unreadable(reply.error(), meter.get());
    co_return std::nullopt;
  }
  // Why the store's TTL: the entry lives as long here as it does there, not a fresh TTL from now.
  const std::chrono::milliseconds ttl = options_.ttl;
  store(key, *reply, std::min(ttl, (*found)->ttl.value_or(ttl)));
  ++hits_;
  ++level2->hits;
  if (meter) ++meter->cache_hits;
  if (meter) ++meter->cache_l2_hits;
  observe::cache_hit(observe::CacheLevel::redis);
  co_return std::move(*reply);
}

void CachingProvider::remember(std::string key, const Value& value, std::shared_ptr<CallMeter> meter) {
  const std::chrono::milliseconds ttl = options_.ttl;
  store(key, value, ttl);
  if (!level2_ || ttl <= std::chrono::milliseconds(0)) return;
  std::string bytes = encode_reply(value, key);
  if (bytes.empty()) return;  // too large for the second level, or not storable
  auto free = std::find_if(level2_->writes.begin(), level2_->writes.end(), [](const auto& w) { return !w.running; });
  if (free == level2_->writes.end()) return;
  free->running = true;
  asio::co_spawn(executor_, write_shared(level2_->store, std::move(key), std::move(bytes), ttl),
                 asio::bind_cancellation_slot(free->cancel.slot(), WriteDone{level2_, &*free, std::move(meter)}));
}

boost::asio::awaitable<LlmResult<ChatResponse>> CachingProvider::chat(ChatRequest request) {
  auto key = key_of(normalize(request, CallKind::chat));
  const auto meter = request.meter;
  auto hit = co_await lookup(key, ReplyKind::chat, meter);
  if (hit) co_return std::get<ChatResponse>(std::move(*hit));
  observe::cache_miss();
  auto reply = co_await inner_.chat(std::move(request));
  if (reply) remember(std::move(key), *reply, meter);
  co_return reply;
}

boost::asio::awaitable<LlmResult<ChatResponse>> CachingProvider::chat_stream(
    ChatRequest request, std::function<void(std::string_view)> on_delta) {
  // The same key as chat(): a streamed reply and a whole one are the same answer.
  auto key = key_of(normalize(request, CallKind::chat));
  const auto meter = request.meter;
  auto hit = co_await lookup(key, ReplyKind::chat, meter);
  if (hit) {
    auto reply = std::get<ChatResponse>(std::move(*hit));
    if (on_delta && !reply.content.empty()) on_delta(reply.content);
    co_return reply;
  }
  observe::cache_miss();
  auto reply = co_await inner_.chat_stream(std::move(request), std::move(on_delta));
  if (reply) remember(std::move(key), *reply, meter);
  co_return reply;
}

boost::asio::awaitable<LlmResult<EmbedResponse>> CachingProvider::embed(EmbedRequest request) {
  auto key = key_of(normalize(request));
  const auto meter = request.meter;
  auto hit = co_await lookup(key, ReplyKind::embed, meter);
  if (hit) co_return std::get<EmbedResponse>(std::move(*hit));
  observe::cache_miss();
  auto reply = co_await inner_.embed(std::move(request));
  if (reply) remember(std::move(key), *reply, meter);
  co_return reply;
}

ProviderMetrics CachingProvider::metrics() const {
  auto m = inner_.metrics();
  m.cache_hits += hits_;
  if (level2_) {
    m.cache_l2_hits += level2_->hits;
    m.cache_l2_errors += level2_->errors;
  }
  return m;
}

}  // namespace dagent::net
