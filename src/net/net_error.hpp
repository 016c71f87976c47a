#pragma once
// Errors of the network layer (dagent::net): values, with a category, across module boundaries.

#include <boost/system/error_code.hpp>

namespace dagent::net {

enum class NetErrc {
  invalid_url = 1,        ///< the base URL cannot be parsed or has an unsupported scheme
  no_ca_certificates,     ///< the TLS trust store loaded zero certificates
  resolve_failed,         ///< the host name did not resolve
  connect_failed,         ///< TCP connect refused or unreachable
  tls_handshake_failed,   ///< the TLS handshake failed (untrusted CA, wrong host name, expired)
  connect_timeout,        ///< connecting took longer than connect_timeout_ms
  request_timeout,        ///< the whole request took longer than timeout_ms
  idle_timeout,           ///< a stream received nothing for timeout_ms
  connection_closed,      ///< the peer closed or reset the connection before a full response
  truncated,              ///< a body or stream ended before its declared end
  protocol_error,         ///< the response is not valid HTTP/1.1 or the payload is not as expected
  event_too_large,        ///< a server-sent event exceeded the size cap
  circuit_open,           ///< the origin's circuit breaker is open; no socket was used
  api_error,              ///< the API answered with an error status (see ApiError)
  cancelled,              ///< the caller cancelled the request
  replay_mismatch,        ///< replay: the recording holds no request matching this one
  provider_refused,       ///< the provider answered 4xx: it refused this request (see LlmError)
  too_large,              ///< a response or stream exceeded its size cap
  budget_exceeded,        ///< a run's budget (limits.*) refused the call; nothing was sent
};

const boost::system::error_category& net_category() noexcept;
boost::system::error_code make_error_code(NetErrc e) noexcept;

}  // namespace dagent::net

namespace boost::system {
template <>
struct is_error_code_enum<dagent::net::NetErrc> : std::true_type {};
}  // namespace boost::system
