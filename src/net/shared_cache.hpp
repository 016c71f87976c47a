#pragma once
// The seam through which the response cache reaches a second level it shares with other
// processes (kept in Redis by redis::RedisCache); tests may put their own behind it.

#include <chrono>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

namespace dagent::net {

/// A value found in the shared cache, with the time it has left.
struct SharedEntry {
  std::string value;
  std::optional<std::chrono::milliseconds> ttl;  ///< none: the store keeps it without an expiry
};

class SharedCache {
 public:
  using Found = boost::system::result<std::optional<SharedEntry>, std::string>;
  using Stored = boost::system::result<void, std::string>;

  virtual ~SharedCache() = default;
  /// The value stored under `key`, nullopt when there is none. Fails with a message (naming no
  /// secret) when the store cannot answer within its timeout.
  virtual boost::asio::awaitable<Found> get(std::string key) = 0;
  /// Stores `value` under `key` for `ttl` (> 0), replacing any. Fails as get().
  virtual boost::asio::awaitable<Stored> put(std::string key, std::string value, std::chrono::milliseconds ttl) = 0;
};

}  // namespace dagent::net
