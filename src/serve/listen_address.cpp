#include "serve/listen_address.hpp"

#include <charconv>

#include <boost/asio/ip/address.hpp>

namespace dagent::serve {

std::variant<ListenAddress, std::string> parse_listen_address(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
    return "listen address '" + std::string(text) + "' is not HOST:PORT (e.g. 127.0.0.1:8080)";
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535)
    return "listen address '" + std::string(text) + "': port must be a number from 0 to 65535";
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code parse_ec;
  const auto address = boost::asio::ip::make_address(std::string(host), parse_ec);
  if (parse_ec)
    return "listen address '" + std::string(text) + "': '" + std::string(host) +
           "' is not an IP address (or localhost)";
  ListenAddress out;
  out.host = address.to_string();
  out.port = static_cast<unsigned short>(port);
  out.loopback = address.is_loopback();
  return out;
}

}  // namespace dagent::serve
