#include "net/net_error.hpp"

#include <string>

namespace dagent::net {
namespace {

class NetCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "dagent.net"; }
  std::string message(int ev) const override {
    switch (static_cast<NetErrc>(ev)) {
      case NetErrc::invalid_url: return "invalid URL";
      case NetErrc::no_ca_certificates: return "no trusted CA certificates could be loaded";
      case NetErrc::resolve_failed: return "host name resolution failed";
      case NetErrc::connect_failed: return "connection failed";
      case NetErrc::tls_handshake_failed: return "TLS handshake failed";
      case NetErrc::connect_timeout: return "connect timed out";
      case NetErrc::request_timeout: return "request timed out";
      case NetErrc::idle_timeout: return "stream idle timeout";
      case NetErrc::connection_closed: return "connection closed before the response was complete";
      case NetErrc::truncated: return "response truncated";
      case NetErrc::protocol_error: return "protocol error";
      case NetErrc::event_too_large: return "server-sent event too large";
      case NetErrc::circuit_open: return "circuit breaker open";
      case NetErrc::api_error: return "API error";
      case NetErrc::cancelled: return "request cancelled";
      case NetErrc::replay_mismatch: return "no recorded request matches";
      case NetErrc::provider_refused: return "the provider refused the request";
      case NetErrc::too_large: return "response too large";
      case NetErrc::budget_exceeded: return "the run's budget is spent";
    }
    return "unknown network error";
  }
};

}  // namespace

const boost::system::error_category& net_category() noexcept {
  static const NetCategory category;
  return category;
}

boost::system::error_code make_error_code(NetErrc e) noexcept {
  return {static_cast<int>(e), net_category()};
}

}  // namespace dagent::net
