#pragma once
// Counters and the recent-request log behind GET /_stats. Not thread-safe: ServerState locks.

#include "script.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>

namespace dagent::test_server {

/// One request as it arrived (headers as received; redaction happens here).
struct RequestArrival {
  std::uint64_t connection_id = 0;
  std::chrono::steady_clock::time_point connection_accepted;
  std::string method;
  std::string target;
  std::string path;
  HeaderList headers;
  std::string_view body;
};

class ServerStats {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t k_recent_capacity = 50;
  static constexpr std::size_t k_body_limit = 65536;  // whole planning prompts fit

  explicit ServerStats(Clock::time_point start) : start_(start) {}

  std::uint64_t connection_opened();
  /// The connection's first request was a control request (/_...): it leaves every
  /// connection count, so tests see only the connections of the client under test.
  void connection_became_control(bool tls_handshaken);
  void connection_closed(bool control);
  void tls_handshake(bool succeeded);

  /// Returns the id of the new record in the recent log.
  std::uint64_t request_arrived(const RequestArrival& arrival, Clock::time_point now);
  /// `status` is the status line sent, 0 when none was; a 429 also counts as rate_limited.
  void request_completed(std::uint64_t record, unsigned status, Fault fault, std::optional<std::size_t> rule,
                         Clock::time_point now);

  /// Zeroes the counters and the log; the gauges (open connections, requests in flight) stay.
  void clear();
  boost::json::object to_json(Clock::time_point now) const;

 private:
  struct Record {
    std::uint64_t id = 0;
    std::uint64_t connection_id = 0;
    double connection_accepted_ms = 0;
    std::string method, target, path;
    boost::json::object headers;
    std::string body;
    std::size_t body_bytes = 0;
    double arrival_ms = 0;
    std::optional<double> completion_ms;
    unsigned status = 0;
    Fault fault = Fault::none;
    std::optional<std::size_t> rule;
  };
  double since_start(Clock::time_point t) const;

  Clock::time_point start_;
  std::uint64_t next_connection_id_ = 1;
  std::uint64_t next_record_id_ = 1;
  // Signed: a control connection accepted before a /_reset is subtracted after it.
  std::int64_t connections_accepted_ = 0;
  std::int64_t connections_open_ = 0;
  std::uint64_t control_connections_ = 0;
  std::int64_t tls_handshakes_ = 0;
  std::uint64_t tls_handshake_failures_ = 0;
  std::uint64_t requests_ = 0;
  std::map<std::string, std::uint64_t> requests_by_path_;
  std::map<unsigned, std::uint64_t> statuses_;
  std::map<Fault, std::uint64_t> faults_;
  std::uint64_t rate_limited_ = 0;
  std::int64_t in_flight_ = 0;
  std::int64_t max_in_flight_ = 0;
  std::deque<Record> recent_;
};

}  // namespace dagent::test_server
