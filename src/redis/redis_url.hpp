#pragma once
// Where the shared Redis is: redis.url parsed.

#include <string>
#include <string_view>

#include <boost/system/result.hpp>

namespace dagent::redis {

/// A parsed `redis://host:port/db` or `rediss://host:port/db` (TLS).
struct RedisEndpoint {
  std::string host;
  std::string port;  ///< always set ("6379" when the URL has none)
  bool tls = false;
  int db = 0;        ///< SELECTed on connect when not 0

  /// The URL without secrets, for messages.
  std::string key() const { return (tls ? "rediss://" : "redis://") + host + ":" + port + "/" + std::to_string(db); }
};

/// Parses redis.url. Refused with a message: other schemes, no host, a port outside 1..65535, a
/// database that is not a number in 0..15... (any non-negative int), a query or fragment, and user
/// information (the password comes from the variable named by redis.password_env, never from the
/// config file). Plain `redis://` only to a loopback host, as llm.base_url's http://.
boost::system::result<RedisEndpoint, std::string> parse_redis_url(std::string_view url);

}  // namespace dagent::redis
