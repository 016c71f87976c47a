#pragma once
// The response cache (caching.llm_responses): exact-match, keyed by the request's fingerprint;
// a first level in this process (LRU with a TTL and a size bound) and optionally a second level
// shared with other processes (caching.backend: redis), as a decorator around any LlmProvider.

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>

#include <boost/asio/any_io_executor.hpp>

#include "net/cached_reply.hpp"
#include "net/llm_provider.hpp"
#include "net/shared_cache.hpp"

namespace dagent::net {

struct CacheOptions {
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  std::chrono::seconds ttl{3600};  ///< every entry's lifetime, in both levels
  std::size_t max_entries = 10000;  ///< in this process (least recently used first out)
  /// Hashed into every key with the request: the provider's base URL, so providers that serve
  /// models of the same name never share entries.
  std::string scope;
  /// The second level; null: this process only. Its failures are warned about once per kind
  /// (unreachable, unreadable value) and counted, and the call goes on as if it missed.
  std::shared_ptr<SharedCache> shared;
  /// Receives those warnings; by default they go to standard error.
  std::function<void(const std::string&)> warn;
  Clock now = &std::chrono::steady_clock::now;
};

class CachingProvider final : public LlmProvider {
 public:
  using Clock = CacheOptions::Clock;

  /// Wraps `inner` (which must outlive this). Failed calls are never cached. A reply is written
  /// to the second level in the background on `executor`, at most a few writes at once (past
  /// that, a reply is kept in this process only).
  CachingProvider(boost::asio::any_io_executor executor, LlmProvider& inner, CacheOptions options);
  /// Cancels the writes to the second level still running; they touch nothing of this afterwards.
  ~CachingProvider() override;
  CachingProvider(const CachingProvider&) = delete;
  CachingProvider& operator=(const CachingProvider&) = delete;

  boost::asio::awaitable<LlmResult<ChatResponse>> chat(ChatRequest request) override;
  /// A hit delivers the whole cached reply as one delta.
  boost::asio::awaitable<LlmResult<ChatResponse>> chat_stream(ChatRequest request,
                                                              std::function<void(std::string_view)> on_delta) override;
  boost::asio::awaitable<LlmResult<EmbedResponse>> embed(EmbedRequest request) override;
  /// The inner provider's counters, with this cache's hits (both levels), second-level hits and
  /// second-level errors. Each also counts to the meter of the call it happened in; a failed
  /// background write, to the meter of the call whose reply it wrote.
  ProviderMetrics metrics() const override;
  /// Forwarded: a miss still needs a connection.
  boost::asio::awaitable<int> warm(int k, CallMeter* meter) override { return inner_.warm(k, meter); }

  /// Entries in the first level.
  std::size_t size() const noexcept { return index_.size(); }

  struct Level2;

 private:
  using Value = CachedReply;
  struct Entry {
    std::string key;
    Value value;
    std::chrono::steady_clock::time_point expires;
  };

  std::string key_of(boost::json::object normalized) const;
  const Value* find(const std::string& key);
  void store(std::string key, Value value, std::chrono::milliseconds ttl);
  /// The first level's entry, else the second level's (which then fills the first); none on a miss.
  /// Hits and second-level errors count to `meter` too (may be null).
  boost::asio::awaitable<std::optional<Value>> lookup(std::string key, ReplyKind kind, std::shared_ptr<CallMeter> meter);
  /// Stores a reply just received in the first level and starts its write to the second, whose
  /// failure counts to `meter` too.
  void remember(std::string key, const Value& value, std::shared_ptr<CallMeter> meter);

  boost::asio::any_io_executor executor_;
  LlmProvider& inner_;
  CacheOptions options_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  std::int64_t hits_ = 0;
  std::shared_ptr<Level2> level2_;  // with options_.shared; shared with the writes it runs
};

}  // namespace dagent::net
