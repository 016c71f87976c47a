#pragma once
// Base URLs of OpenAI-compatible APIs: scheme, host, port and path prefix.

#include <string>
#include <string_view>

#include <boost/system/result.hpp>

namespace dagent::net {

/// Where connections go: one pool per origin.
struct Origin {
  std::string host;
  std::string port;   ///< always set ("443" / "80" when the URL has none)
  bool tls = true;

  std::string key() const { return (tls ? "https://" : "http://") + host + ":" + port; }
  friend bool operator==(const Origin&, const Origin&) = default;
};

/// A parsed base URL such as `https://api.openai.com/v1`.
struct BaseUrl {
  Origin origin;
  std::string path;  ///< without a trailing slash, e.g. "/v1"; empty for the root

  /// The request target for an API path such as "/chat/completions".
  std::string target(std::string_view api_path) const { return path + std::string(api_path); }
};

/// Parses an http or https URL with a host and an optional port of digits only, 1..65535;
/// anything else (other schemes, user info, a query or fragment, a port out of range) is refused
/// with a message.
boost::system::result<BaseUrl, std::string> parse_base_url(std::string_view url);

}  // namespace dagent::net
