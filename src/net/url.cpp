#include "net/url.hpp"

#include <charconv>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

namespace dagent::net {

boost::system::result<BaseUrl, std::string> parse_base_url(std::string_view text) {
  auto parsed = boost::urls::parse_absolute_uri(text);
  if (!parsed) return "invalid base URL '" + std::string(text) + "': " + parsed.error().message();
  const auto& u = *parsed;
  BaseUrl out;
  if (u.scheme() == "https") {
    out.origin.tls = true;
  } else if (u.scheme() == "http") {
    out.origin.tls = false;
  } else {
    return "invalid base URL '" + std::string(text) + "': the scheme must be http or https";
  }
  if (!u.has_authority() || u.host().empty())
    return "invalid base URL '" + std::string(text) + "': it has no host";
  if (u.has_userinfo()) return "invalid base URL: user information in the URL is not supported";
  if (u.has_query() || u.has_fragment())
    return "invalid base URL '" + std::string(text) + "': a query or fragment is not allowed";
  out.origin.host = u.encoded_host_address().decode();
  if (out.origin.host.size() > 2 && out.origin.host.front() == '[') out.origin.host = out.origin.host.substr(1, out.origin.host.size() - 2);
  if (u.has_port()) {
    // Why strict: the port goes to getaddrinfo as a service name, which takes 84386 modulo 65536.
    const std::string_view port = u.port();
    unsigned number = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (port.empty() || port.size() > 5 || ec != std::errc{} || end != port.data() + port.size() || number < 1 ||
        number > 65535)
      return "invalid base URL '" + std::string(text) + "': the port must be a number in 1..65535";
    out.origin.port = std::to_string(number);
  } else {
    out.origin.port = out.origin.tls ? "443" : "80";
  }
  // Why: Boost.URL reads "host:18850x/v1" as port 18850 and path "x/v1", and (1.81)
  // "127.0.0.1.nip.io" as the address 127.0.0.1 and the path ".nip.io": neither is that host.
  if (!u.encoded_path().empty() && !u.encoded_path().starts_with("/"))
    return "invalid base URL '" + std::string(text) + "': " +
           (u.has_port() ? "the port must be a number in 1..65535"
                         : "the host is not a valid name or address (names that start with an IPv4 address, such as "
                           "127.0.0.1.nip.io, are not supported)");
  out.path = u.encoded_path().decode();
  while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  return out;
}

}  // namespace dagent::net
