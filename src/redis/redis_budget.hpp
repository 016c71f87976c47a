#pragma once
// The shared rate budget in Redis: a continuously refilled bucket of requests and one of tokens,
// updated by one atomic Lua script per ask on the server's clock (TIME), so client clocks do not
// matter; FIFO across processes by the time each was first refused.

#include <chrono>
#include <memory>
#include <string>

#include "net/shared_budget.hpp"
#include "redis/redis_client.hpp"

namespace dagent::redis {

class RedisBudget final : public net::SharedBudget {
 public:
  /// How much later than our grant the provider may start counting the request (see the script).
  static constexpr std::chrono::microseconds k_default_lag{5000};

  /// `name` keys the budget (processes sharing an API account use the same one); `member` names
  /// this process among those waiting (unique per process). `lag`: see k_default_lag.
  RedisBudget(RedisClient client, std::string name, std::string member,
              std::chrono::microseconds lag = k_default_lag);

  boost::asio::awaitable<boost::system::result<net::SharedAnswer, std::string>> ask(net::SharedAsk ask) override;

  /// The Lua script (for tests and for SCRIPT LOAD by operators).
  static const std::string& script();
  /// A member name unique to this process: host name, pid and a random suffix.
  static std::string process_member();

 private:
  RedisClient client_;
  std::string bucket_key_;
  std::string waiters_key_;
  std::string seen_key_;
  std::string member_;
  std::chrono::microseconds lag_;
};

}  // namespace dagent::redis
