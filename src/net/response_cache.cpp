#include "net/response_cache.hpp"

#include <boost/json/serialize.hpp>

namespace dagent::net {

namespace json = boost::json;

namespace {

std::string chat_key(const ChatRequest& r) { return "chat " + json::serialize(to_json(r, false)); }

std::string embed_key(const EmbedRequest& r) {
  json::array inputs;
  for (const auto& in : r.inputs) inputs.emplace_back(in);
  json::object o{{"model", r.model}, {"input", std::move(inputs)}};
  if (r.dimensions) o["dimensions"] = *r.dimensions;
  return "embed " + json::serialize(o);
}

}  // namespace

CachingProvider::CachingProvider(LlmProvider& inner, std::chrono::seconds ttl, std::size_t max_entries, Clock now)
    : inner_(inner), ttl_(ttl), max_entries_(max_entries), now_(std::move(now)) {}

const CachingProvider::Value* CachingProvider::find(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  if (now_() >= it->second->expires) {
    lru_.erase(it->second);
    index_.erase(it);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++hits_;
  return &lru_.front().value;
}

void CachingProvider::store(std::string key, Value value) {
  if (max_entries_ == 0) return;
  if (auto it = index_.find(key); it != index_.end()) {
    lru_.erase(it->second);
    index_.erase(it);
  }
  while (index_.size() >= max_entries_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(Entry{key, std::move(value), now_() + ttl_});
  index_.emplace(std::move(key), lru_.begin());
}

boost::asio::awaitable<LlmResult<ChatResponse>> CachingProvider::chat(ChatRequest request) {
  auto key = chat_key(request);
  if (const auto* hit = find(key)) co_return std::get<ChatResponse>(*hit);
  auto reply = co_await inner_.chat(std::move(request));
  if (reply) store(std::move(key), *reply);
  co_return reply;
}

boost::asio::awaitable<LlmResult<ChatResponse>> CachingProvider::chat_stream(
    ChatRequest request, std::function<void(std::string_view)> on_delta) {
  auto key = chat_key(request);
  if (const auto* hit = find(key)) {
    auto reply = std::get<ChatResponse>(*hit);
    if (on_delta && !reply.content.empty()) on_delta(reply.content);
    co_return reply;
  }
  auto reply = co_await inner_.chat_stream(std::move(request), std::move(on_delta));
  if (reply) store(std::move(key), *reply);
  co_return reply;
}

boost::asio::awaitable<LlmResult<EmbedResponse>> CachingProvider::embed(EmbedRequest request) {
  auto key = embed_key(request);
  if (const auto* hit = find(key)) co_return std::get<EmbedResponse>(*hit);
  auto reply = co_await inner_.embed(std::move(request));
  if (reply) store(std::move(key), *reply);
  co_return reply;
}

ProviderMetrics CachingProvider::metrics() const {
  auto m = inner_.metrics();
  m.cache_hits += hits_;
  return m;
}

}  // namespace dagent::net
