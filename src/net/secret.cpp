#include "net/secret.hpp"

#include <cstdlib>

#include <boost/asio/ip/address.hpp>

#include "net/url.hpp"

namespace dagent::net {

namespace {

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if ((x >= 'A' && x <= 'Z' ? x + 32 : x) != (y >= 'A' && y <= 'Z' ? y + 32 : y)) return false;
  }
  return true;
}

}  // namespace

bool is_loopback_host(std::string_view host) noexcept {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (iequals(host, "localhost")) return true;
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(std::string(host), ec);
  if (ec) return false;  // a name: DNS decides where it goes
  if (address.is_v6() && address.to_v6().is_v4_mapped())
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6()).is_loopback();
  return address.is_loopback();
}

std::optional<std::string> plain_http_problem(const BaseUrl& url) {
  if (url.origin.tls || is_loopback_host(url.origin.host)) return std::nullopt;
  return "http:// sends the API key in clear text to " + url.origin.host +
         "; use https:// (plain http is allowed only for loopback hosts: localhost, 127.0.0.0/8, ::1)";
}

std::optional<std::string> api_key_env_problem(std::string_view name) {
  if (name == "API_KEY" || (name.size() > 8 && name.ends_with("_API_KEY")) ||
      (name.size() > 7 && name.ends_with("_APIKEY")))
    return std::nullopt;
  if (const char* listed = std::getenv(std::string(k_allowed_key_envs).c_str())) {
    std::string_view rest = listed;
    while (!rest.empty()) {
      const auto comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      if (!item.empty() && item == name) return std::nullopt;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return "'" + std::string(name) +
         "' does not look like an API key variable: the name must end in _API_KEY or _APIKEY (or be API_KEY), or be "
         "listed in the environment variable " + std::string(k_allowed_key_envs) + " (comma-separated)";
}

}  // namespace dagent::net
