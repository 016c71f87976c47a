#include "server_stats.hpp"

#include "openai_replies.hpp"

#include <algorithm>
#include <array>

namespace dagent::test_server {
namespace json = boost::json;

namespace {

// Headers whose values are credentials: the log says only that they were there.
constexpr std::array<std::string_view, 6> k_secret_headers = {
    "authorization", "proxy-authorization", "api-key", "x-api-key", "openai-api-key", "cookie"};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
  return out;
}

}  // namespace

double ServerStats::since_start(Clock::time_point t) const {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(t - start_).count()) / 1000.0;
}

std::uint64_t ServerStats::connection_opened() {
  ++connections_accepted_;
  ++connections_open_;
  return next_connection_id_++;
}

void ServerStats::connection_became_control(bool tls_handshaken) {
  connections_accepted_ = std::max<std::int64_t>(0, connections_accepted_ - 1);
  --connections_open_;
  ++control_connections_;
  if (tls_handshaken) tls_handshakes_ = std::max<std::int64_t>(0, tls_handshakes_ - 1);
}

void ServerStats::connection_closed(bool control) {
  if (!control) --connections_open_;
}

void ServerStats::tls_handshake(bool succeeded) {
  if (succeeded) ++tls_handshakes_;
  else ++tls_handshake_failures_;
}

std::uint64_t ServerStats::request_arrived(const RequestArrival& arrival, Clock::time_point now) {
  ++requests_;
  ++requests_by_path_[arrival.path];
  max_in_flight_ = std::max(max_in_flight_, ++in_flight_);

  Record record;
  record.id = next_record_id_++;
  record.connection_id = arrival.connection_id;
  record.connection_accepted_ms = since_start(arrival.connection_accepted);
  record.method = arrival.method;
  record.target = arrival.target;
  record.path = arrival.path;
  for (const auto& [name, value] : arrival.headers) {
    std::string key = lower(name);
    bool secret = std::find(k_secret_headers.begin(), k_secret_headers.end(), key) != k_secret_headers.end();
    record.headers[key] = secret ? std::string("present") : value;
  }
  record.body = std::string(utf8_prefix(arrival.body, k_body_limit));
  record.body_bytes = arrival.body.size();
  record.arrival_ms = since_start(now);
  recent_.push_back(std::move(record));
  if (recent_.size() > k_recent_capacity) recent_.pop_front();
  return recent_.back().id;
}

void ServerStats::request_completed(std::uint64_t record, unsigned status, Fault fault,
                                    std::optional<std::size_t> rule, Clock::time_point now) {
  --in_flight_;
  if (status != 0) ++statuses_[status];
  if (status == 429) ++rate_limited_;
  if (fault != Fault::none) ++faults_[fault];
  auto it = std::find_if(recent_.begin(), recent_.end(), [&](const Record& r) { return r.id == record; });
  if (it == recent_.end()) return;  // already rotated out of the log, or cleared meanwhile
  it->completion_ms = since_start(now);
  it->status = status;
  it->fault = fault;
  it->rule = rule;
}

void ServerStats::clear() {
  connections_accepted_ = 0;
  control_connections_ = 0;
  tls_handshakes_ = 0;
  tls_handshake_failures_ = 0;
  requests_ = 0;
  requests_by_path_.clear();
  statuses_.clear();
  faults_.clear();
  rate_limited_ = 0;
  max_in_flight_ = in_flight_;
  recent_.clear();
}

json::object ServerStats::to_json(Clock::time_point now) const {
  json::object by_path;
  for (const auto& [path, count] : requests_by_path_) by_path[path] = count;
  json::object statuses;
  for (const auto& [status, count] : statuses_) statuses[std::to_string(status)] = count;
  json::object faults;
  for (const auto& [fault, count] : faults_) faults[to_string(fault)] = count;

  json::array recent;
  for (const Record& r : recent_) {
    json::object entry{{"id", r.id},
                       {"connection_id", r.connection_id},
                       {"connection_accepted_ms", r.connection_accepted_ms},
                       {"method", r.method},
                       {"target", r.target},
                       {"path", r.path},
                       {"headers", r.headers},
                       {"body", r.body},
                       {"body_bytes", r.body_bytes},
                       {"arrival_ms", r.arrival_ms},
                       {"status", r.status},
                       {"fault", to_string(r.fault)}};
    if (r.completion_ms) entry["completion_ms"] = *r.completion_ms;
    else entry["completion_ms"] = nullptr;
    if (r.rule) entry["rule"] = *r.rule;
    else entry["rule"] = nullptr;
    recent.push_back(std::move(entry));
  }

  return json::object{{"uptime_ms", since_start(now)},
                      {"connections_accepted", connections_accepted_},
                      {"connections_open", connections_open_},
                      {"control_connections", control_connections_},
                      {"tls_handshakes", tls_handshakes_},
                      {"tls_handshake_failures", tls_handshake_failures_},
                      {"requests", json::object{{"total", requests_}, {"by_path", std::move(by_path)}}},
                      {"status", std::move(statuses)},
                      {"faults", std::move(faults)},
                      {"rate_limited", rate_limited_},
                      {"concurrent_requests", in_flight_},
                      {"max_concurrent_requests", max_in_flight_},
                      {"recent", std::move(recent)}};
}

}  // namespace dagent::test_server
