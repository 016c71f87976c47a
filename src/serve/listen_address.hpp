#pragma once
// Where `dagent serve` listens: serve.listen or --listen, as HOST:PORT.

#include <string>
#include <string_view>
#include <variant>

namespace dagent::serve {

/// A parsed listen address. `host` is an IP address (v4, or v6 in brackets on input).
struct ListenAddress {
  std::string host;
  unsigned short port = 0;  ///< 0: the kernel picks one (the service prints the port it got)
  bool loopback = false;    ///< 127.0.0.0/8 or ::1: reachable from this machine only
};

/// Parses "127.0.0.1:8080", "[::1]:8080" or "localhost:8080" (taken as 127.0.0.1); a message
/// saying what is wrong otherwise. Host names other than localhost are refused (no DNS at start).
std::variant<ListenAddress, std::string> parse_listen_address(std::string_view text);

}  // namespace dagent::serve
