#pragma once
// The response cache's shared level in Redis: one string per cached reply, under
// `dagent:cache:v1:<fingerprint>`, expiring with the cache's TTL (SET ... PX).

#include <string>
#include <string_view>

#include "net/shared_cache.hpp"
#include "redis/redis_client.hpp"

namespace dagent::redis {

class RedisCache final : public net::SharedCache {
 public:
  explicit RedisCache(RedisClient client);

  /// GET and PTTL in one pipeline: the value and the time it has left.
  boost::asio::awaitable<Found> get(std::string key) override;
  /// SET key value PX ttl.
  boost::asio::awaitable<Stored> put(std::string key, std::string value, std::chrono::milliseconds ttl) override;

  /// The Redis key of the cache key `key`.
  static std::string redis_key(std::string_view key);

 private:
  RedisClient client_;
};

}  // namespace dagent::redis
