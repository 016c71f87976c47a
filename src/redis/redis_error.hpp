#pragma once
// Errors of the Redis connection (dagent::redis): values, with a category, across module
// boundaries. A server's error reply ("-ERR ...") is not one of these: it is a Reply of type error.

#include <string>

#include <boost/system/error_code.hpp>

namespace dagent::redis {

enum class RedisErrc {
  invalid_url = 1,     ///< redis.url cannot be parsed, or is plain redis:// to a host that is not loopback
  no_password,         ///< the environment variable named by redis.password_env is not set
  connect_failed,      ///< resolve, TCP connect or TLS handshake failed
  connect_timeout,     ///< connecting took longer than redis.connect_timeout_ms
  timeout,             ///< a command (or pipeline) took longer than redis.timeout_ms
  connection_closed,   ///< the server closed or reset the connection before every reply came
  protocol_error,      ///< the bytes from the server are not RESP, or a reply is too large
  auth_failed,         ///< AUTH or SELECT on connect was refused
  unavailable,         ///< connecting failed recently; no attempt is made until the backoff ends
  cancelled,           ///< the caller cancelled the command
};

const boost::system::error_category& redis_category() noexcept;
boost::system::error_code make_error_code(RedisErrc e) noexcept;

/// A failed command: what went wrong and a message naming the server (never the password).
struct RedisError {
  boost::system::error_code code;
  std::string message;
};

}  // namespace dagent::redis

namespace boost::system {
template <>
struct is_error_code_enum<dagent::redis::RedisErrc> : std::true_type {};
}  // namespace boost::system
