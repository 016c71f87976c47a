#pragma once
// The seam through which a RateLimiter draws from a budget it shares with other processes (kept
// in Redis by redis::RedisBudget); tests may put their own behind it.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

namespace dagent::net {

/// One round trip to the shared budget: the updates this process owes it, and optionally a grant.
struct SharedAsk {
  bool take = true;                      ///< ask for 1 request and `tokens`; false: only the updates
  std::int64_t tokens = 0;
  double request_capacity = 0;           ///< the budget's limits (the server's, once its headers said)
  double token_capacity = 0;
  std::chrono::nanoseconds period{0};    ///< both refill in full over this span
  std::int64_t token_debt = 0;           ///< sum of actual − estimated tokens of calls settled since the last ask
  std::int64_t request_returns = 0;      ///< grants never sent since the last ask, whose request goes back
  std::chrono::milliseconds hold{0};     ///< a 429's retry-after: every process holds, and the budget restarts empty
  std::optional<double> request_upper;   ///< the server's headers say the level is at most this
  std::optional<double> token_upper;
};

struct SharedAnswer {
  bool granted = false;
  std::chrono::nanoseconds wait{0};  ///< not granted: when to ask again (the budget's own clock)
};

class SharedBudget {
 public:
  virtual ~SharedBudget() = default;
  /// Applies the updates and, with `take`, grants or says how long until it could. Fails with a
  /// message (naming no secret) when the store cannot answer within its timeout; the updates are
  /// then not applied, and the caller keeps them for its next ask.
  virtual boost::asio::awaitable<boost::system::result<SharedAnswer, std::string>> ask(SharedAsk ask) = 0;
};

}  // namespace dagent::net
