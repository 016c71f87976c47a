#include "redis/redis_error.hpp"

namespace dagent::redis {
namespace {

class RedisCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "dagent.redis"; }
  std::string message(int ev) const override {
    switch (static_cast<RedisErrc>(ev)) {
      case RedisErrc::invalid_url: return "invalid Redis URL";
      case RedisErrc::no_password: return "the Redis password's environment variable is not set";
      case RedisErrc::connect_failed: return "cannot connect to Redis";
      case RedisErrc::connect_timeout: return "connecting to Redis timed out";
      case RedisErrc::timeout: return "Redis command timed out";
      case RedisErrc::connection_closed: return "Redis closed the connection";
      case RedisErrc::protocol_error: return "Redis protocol error";
      case RedisErrc::auth_failed: return "Redis refused AUTH or SELECT";
      case RedisErrc::unavailable: return "Redis is unavailable (reconnect backoff)";
      case RedisErrc::cancelled: return "Redis command cancelled";
    }
    return "unknown Redis error";
  }
};

}  // namespace

const boost::system::error_category& redis_category() noexcept {
  static const RedisCategory category;
  return category;
}

boost::system::error_code make_error_code(RedisErrc e) noexcept {
  return {static_cast<int>(e), redis_category()};
}

}  // namespace dagent::redis
