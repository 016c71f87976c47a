#include "net/url.hpp"

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
  out.origin.port = u.has_port() ? std::string(u.port()) : (out.origin.tls ? "443" : "80");
  out.path = u.encoded_path().decode();
  while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  return out;
}

}  // namespace dagent::net
