#pragma once
// A small pool of connections to one Redis server, over our own Asio sockets (TCP or verified
// TLS) with hiredis's sans-I/O RESP codec: a deadline on every command, pipelining, AUTH and
// SELECT on connect, and reconnection with backoff after a failed connect.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/system/result.hpp>

#include "config/config.hpp"
#include "redis/redis_error.hpp"
#include "redis/redis_url.hpp"
#include "redis/resp_codec.hpp"

namespace dagent::net {
class TlsContext;
}

namespace dagent::redis {

/// One command's arguments, e.g. {"SET", "k", "v"}.
using Command = std::vector<std::string>;

struct RedisOptions {
  RedisEndpoint endpoint;
  std::string password;                          ///< "" sends no AUTH; never printed
  std::shared_ptr<net::TlsContext> tls;          ///< required for rediss://
  std::chrono::milliseconds timeout{250};        ///< a command or pipeline: waiting for a connection, send, replies
  std::chrono::milliseconds connect_timeout{1000};
  int pool_size = 4;
  std::chrono::milliseconds backoff_min{100};    ///< after a failed connect, no attempt for this long...
  std::chrono::milliseconds backoff_max{5000};   ///< ...doubling with each further failure up to this

  /// The options of the `redis:` section: the URL parsed, the password read from the variable
  /// named by redis.password_env, and for rediss:// the trust store (system + redis.ca_file,
  /// relative to `base_dir`).
  static boost::system::result<RedisOptions, RedisError> from(const config::RedisConfig& cfg,
                                                                const std::filesystem::path& base_dir);
};

/// Commands to one Redis server from one event loop. Commands may run concurrently: they wait in
/// one FIFO queue, and each connection of the pool takes everything waiting into one write and
/// reads the replies in order, so commands issued while the connections are busy share a round
/// trip (automatic pipelining). A caller that is cancelled or reaches its deadline leaves at once;
/// its commands, if already written, still complete on the connection, so the other callers of
/// that write and the connection are unaffected; when all of them have left, the connection is
/// closed instead (nobody waits for a cancelled XREAD BLOCK). A connection whose exchange failed
/// or timed out is closed, never reused (its replies would be out of step). Copies share the pool.
class RedisClient {
 public:
  struct Stats {
    std::uint64_t connects = 0;          ///< connections opened (and authenticated)
    std::uint64_t connect_failures = 0;
    std::uint64_t timeouts = 0;          ///< commands that hit their deadline
    std::uint64_t commands = 0;          ///< commands sent (each of a pipeline counts)
    std::uint64_t writes = 0;            ///< writes to a connection: concurrent callers' commands share one
  };

  RedisClient(boost::asio::any_io_executor executor, RedisOptions options);
  ~RedisClient();
  RedisClient(const RedisClient&) = default;
  RedisClient& operator=(const RedisClient&) = default;

  /// Sends one command and returns its reply (an error reply is a Reply, not a failure). Fails
  /// with a RedisError for transport problems, the deadline, or unavailable during backoff.
  boost::asio::awaitable<boost::system::result<Reply, RedisError>> command(Command args);
  /// As command(), with its own deadline instead of `timeout`: for blocking commands (XREAD
  /// BLOCK, XREADGROUP BLOCK), which hold their connection for the whole wait — give them a
  /// client of their own (pool_size 1) so they never keep a connection from the others.
  boost::asio::awaitable<boost::system::result<Reply, RedisError>> command(Command args,
                                                                           std::chrono::milliseconds timeout);
  /// Sends every command in one write on one connection and returns their replies in order.
  boost::asio::awaitable<boost::system::result<std::vector<Reply>, RedisError>> pipeline(std::vector<Command> commands);

  Stats stats() const noexcept;
  /// Connections open now (idle or in use).
  int open_connections() const noexcept;
  const RedisEndpoint& endpoint() const noexcept;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace dagent::redis
