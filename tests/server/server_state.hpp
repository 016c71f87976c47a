#pragma once
// Everything the test server decides, without I/O: routing, script rules, rate limits and stats.
// The sessions turn a Reply into bytes (and faults) on the wire.

#include "rate_window.hpp"
#include "script.hpp"
#include "server_stats.hpp"

#include <chrono>
#include <functional>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace dagent::test_server {

struct ServerConfig {
  RateLimits limits;
  std::chrono::milliseconds latency{0};  // added before every non-control reply
  Script script;
  Fault handshake_fault = Fault::none;  // reset or stall: what the first TLS handshakes meet
  std::uint64_t handshake_faults = 0;   // how many TLS connections (control ones included) meet it
};

/// Per connection, owned by its session.
struct ConnectionInfo {
  std::uint64_t id = 0;
  std::chrono::steady_clock::time_point accepted;
  bool tls_handshaken = false;
  bool control = false;  // its first request was a control request
  std::uint64_t requests = 0;
};

struct IncomingRequest {
  std::string method;
  std::string target;
  HeaderList headers;
  std::string body;
};

/// What to send back, and how to misbehave while sending it.
struct Reply {
  unsigned status = 200;
  std::string content_type = "application/json";
  HeaderList headers;  // set after Content-Type, so a scripted content-type wins
  std::string body;
  std::vector<std::string> events;  // non-empty: an SSE stream, one chunk (write) per event
  std::chrono::milliseconds latency{0};
  std::chrono::milliseconds stream_interval{0};
  Fault fault = Fault::none;
  std::optional<std::uint64_t> record;  // the stats record; none for control requests
  std::optional<std::size_t> rule;      // the script rule that answered
  bool held = false;                    // the rule has hold_until: ask ServerState::hold first
};

/// Shared by every session; one mutex because sessions may run on several threads (--threads).
class ServerState {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ServerState(ServerConfig config);

  std::uint64_t connection_opened();
  /// The fault the next TLS connection meets during its handshake, or Fault::none.
  Fault take_handshake_fault();
  void tls_handshake(ConnectionInfo& connection, bool succeeded);
  void connection_closed(const ConnectionInfo& connection);

  /// Decides the reply to a fully read request; counts it unless it is a control request.
  Reply respond(ConnectionInfo& connection, const IncomingRequest& request);
  /// For a held reply: true when it may go now; otherwise false, and `wake` is called (on the
  /// thread of whichever request meets the hold, or of a script change) once it may.
  bool hold(const Reply& reply, std::function<void()> wake);
  /// `status_sent` is 0 when no status line went out (reset, stall before headers).
  void request_finished(const Reply& reply, unsigned status_sent);

 private:
  Reply control_reply(const IncomingRequest& request, const std::string& path);  // locked
  /// The wakers whose hold is now met (all of them after a script change); locked.
  std::vector<std::function<void()>> take_met_waiters(bool all);

  struct Waiter {
    std::size_t rule;
    std::function<void()> wake;
  };

  std::mutex mutex_;
  const Clock::time_point start_ = Clock::now();
  const std::chrono::milliseconds latency_;
  const Fault handshake_fault_;
  std::uint64_t handshake_faults_left_;
  Script script_;
  RateWindow limiter_;
  ServerStats stats_{start_};
  std::uint64_t next_completion_ = 1;
  std::vector<Waiter> waiters_;
};

}  // namespace dagent::test_server
