#include "redis/redis_url.hpp"

#include <charconv>
#include <utility>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include "net/secret.hpp"

namespace dagent::redis {
namespace {

bool parse_number(std::string_view text, int low, int high, int& out) {
  int n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || text.size() > 7 || ec != std::errc{} || end != text.data() + text.size() || n < low || n > high)
    return false;
  out = n;
  return true;
}

// Why in_place_error: RedisEndpoint is an aggregate whose first member is a string, so C++20
// would also construct the value from a message.
boost::system::result<RedisEndpoint, std::string> fail(std::string message) {
  return {boost::system::in_place_error, std::move(message)};
}

}  // namespace

boost::system::result<RedisEndpoint, std::string> parse_redis_url(std::string_view text) {
  const std::string shown = "'" + std::string(text) + "'";
  auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed) return fail("invalid Redis URL " + shown + ": " + parsed.error().message());
  const auto& u = *parsed;
  RedisEndpoint out;
  if (u.scheme() == "rediss") out.tls = true;
  else if (u.scheme() != "redis") return fail("invalid Redis URL " + shown + ": the scheme must be redis or rediss");
  // Why before anything that echoes the URL: user information may hold a password.
  if (u.has_userinfo())
    return fail(std::string("invalid Redis URL: user information (a password) in the URL is not supported; name the "
                       "password's environment variable in redis.password_env"));
  if (!u.has_authority() || u.host().empty()) return fail("invalid Redis URL " + shown + ": it has no host");
  if (u.has_query() || u.has_fragment()) return fail("invalid Redis URL " + shown + ": a query or fragment is not allowed");
  out.host = u.encoded_host_address().decode();
  if (out.host.size() > 2 && out.host.front() == '[') out.host = out.host.substr(1, out.host.size() - 2);
  int port = 6379;
  if (u.has_port() && !parse_number(u.port(), 1, 65535, port))
    return fail("invalid Redis URL " + shown + ": the port must be a number in 1..65535");
  out.port = std::to_string(port);
  std::string_view path = u.encoded_path();
  if (!path.empty() && !path.starts_with("/"))
    return fail("invalid Redis URL " + shown + ": the host is not a valid name or address");
  if (path.starts_with("/")) path.remove_prefix(1);
  if (!path.empty() && !parse_number(path, 0, 1000000, out.db))
    return fail("invalid Redis URL " + shown + ": the path must be a database number (e.g. /0)");
  if (!out.tls && !net::is_loopback_host(out.host))
    return fail("redis:// sends the password and the shared budget in clear text to " + out.host +
           "; use rediss:// (plain redis:// is allowed only for loopback hosts: localhost, 127.0.0.0/8, ::1)");
  return out;
}

}  // namespace dagent::redis
