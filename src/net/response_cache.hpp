#pragma once
// The response cache (caching.llm_responses): exact-match, LRU with a TTL and a size bound, as a
// decorator around any LlmProvider.

#include <chrono>
#include <functional>
#include <list>
#include <string>
#include <unordered_map>
#include <variant>

#include "net/llm_provider.hpp"

namespace dagent::net {

class CachingProvider final : public LlmProvider {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  /// Wraps `inner` (which must outlive this); entries live `ttl` and at most `max_entries` are
  /// kept (least recently used first out). Failed calls are never cached.
  CachingProvider(LlmProvider& inner, std::chrono::seconds ttl, std::size_t max_entries,
                  Clock now = &std::chrono::steady_clock::now);

  boost::asio::awaitable<LlmResult<ChatResponse>> chat(ChatRequest request) override;
  /// A hit delivers the whole cached reply as one delta.
  boost::asio::awaitable<LlmResult<ChatResponse>> chat_stream(ChatRequest request,
                                                              std::function<void(std::string_view)> on_delta) override;
  boost::asio::awaitable<LlmResult<EmbedResponse>> embed(EmbedRequest request) override;
  /// The inner provider's counters, with this cache's hits.
  ProviderMetrics metrics() const override;
  /// Forwarded to the inner provider.
  void reset_retry_budget() override { inner_.reset_retry_budget(); }
  /// Forwarded: a miss still needs a connection.
  boost::asio::awaitable<int> warm(int k) override { return inner_.warm(k); }

  std::size_t size() const noexcept { return index_.size(); }

 private:
  using Value = std::variant<ChatResponse, EmbedResponse>;
  struct Entry {
    std::string key;
    Value value;
    std::chrono::steady_clock::time_point expires;
  };

  const Value* find(const std::string& key);
  void store(std::string key, Value value);

  LlmProvider& inner_;
  std::chrono::seconds ttl_;
  std::size_t max_entries_;
  Clock now_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  std::int64_t hits_ = 0;
};

}  // namespace dagent::net
