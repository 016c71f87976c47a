#include "redis/redis_cache.hpp"

namespace dagent::redis {

namespace asio = boost::asio;

namespace {

// The server's error text, bounded; it holds no secret of ours.
std::string refused(const RedisClient& client, std::string_view command, const Reply& reply) {
  return "Redis at " + client.endpoint().key() + " refused " + std::string(command) + ": " + reply.str.substr(0, 200);
}

// Why in_place_error: SharedEntry can be built from a string (C++20 aggregate init), so a bare
// message would be ambiguous.
net::SharedCache::Found failure(std::string message) { return {boost::system::in_place_error, std::move(message)}; }

}  // namespace

RedisCache::RedisCache(RedisClient client) : client_(std::move(client)) {}

std::string RedisCache::redis_key(std::string_view key) { return "dagent:cache:v1:" + std::string(key); }

asio::awaitable<RedisCache::Found> RedisCache::get(std::string key) {
  std::string at = redis_key(key);
  std::vector<Command> commands{{"GET", at}, {"PTTL", at}};
  auto replies = co_await client_.pipeline(std::move(commands));
  if (!replies) co_return failure(replies.error().message);
  if (replies->size() != 2) co_return failure("Redis at " + client_.endpoint().key() + " answered a pipeline out of step");
  const Reply& value = (*replies)[0];
  const Reply& pttl = (*replies)[1];
  if (value.is_error()) co_return failure(refused(client_, "GET", value));  // e.g. WRONGTYPE: someone else's key
  if (value.type == Reply::Type::nil) co_return std::optional<net::SharedEntry>();
  if (value.type != Reply::Type::string) co_return failure("Redis at " + client_.endpoint().key() + " answered GET with no string");
  net::SharedEntry entry{std::move((*replies)[0].str), std::nullopt};
  if (pttl.type == Reply::Type::integer) {
    // -2: expired between the two commands; -1: no expiry (set by someone else).
    if (pttl.integer == -2) co_return std::optional<net::SharedEntry>();
    if (pttl.integer >= 0) entry.ttl = std::chrono::milliseconds(pttl.integer);
  }
  co_return std::optional<net::SharedEntry>(std::move(entry));
}

asio::awaitable<RedisCache::Stored> RedisCache::put(std::string key, std::string value, std::chrono::milliseconds ttl) {
  Command set{"SET", redis_key(key), std::move(value), "PX", std::to_string(std::max<std::int64_t>(ttl.count(), 1))};
  auto reply = co_await client_.command(std::move(set));
  if (!reply) co_return reply.error().message;
  if (reply->is_error()) co_return refused(client_, "SET", *reply);
  co_return Stored();
}

}  // namespace dagent::redis
