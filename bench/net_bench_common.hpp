#pragma once
// Shared by the network benchmarks (bench_http, bench_limiter): argument parsing, the test
// server's control endpoints (/_stats, /_reset, /_script), and CPU time of this process and of
// the server process.

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "net/http_client.hpp"
#include "net/url.hpp"

namespace dagent::bench {

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

/// `--key value` pairs (and bare `--flag`s, whose value is "1").
class Args {
 public:
  Args(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string key = argv[i];
      if (!key.starts_with("--")) throw std::runtime_error("unexpected argument " + key);
      key = key.substr(2);
      if (i + 1 < argc && !std::string_view(argv[i + 1]).starts_with("--")) values_[key] = argv[++i];
      else values_[key] = "1";
    }
  }

  bool has(const std::string& key) const { return values_.count(key) != 0; }

  std::string str(const std::string& key, std::string fallback) const {
    auto it = values_.find(key);
    return it == values_.end() ? fallback : it->second;
  }

  std::int64_t integer(const std::string& key, std::int64_t fallback) const {
    auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    std::int64_t out = 0;
    const auto& text = it->second;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    if (ec != std::errc() || end != text.data() + text.size()) throw std::runtime_error("--" + key + " needs an integer");
    return out;
  }

  double number(const std::string& key, double fallback) const {
    auto it = values_.find(key);
    return it == values_.end() ? fallback : std::stod(it->second);
  }

  bool flag(const std::string& key, bool fallback) const {
    auto it = values_.find(key);
    if (it == values_.end()) return fallback;
    return it->second == "1" || it->second == "on" || it->second == "true";
  }

 private:
  std::map<std::string, std::string> values_;
};

/// User + system CPU seconds of this process.
inline double self_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/// utime + stime of process `pid` in seconds (from /proc/PID/stat, clock-tick resolution);
/// nullopt when pid is 0 or the file cannot be read.
inline std::optional<double> process_cpu_seconds(long pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');  // the command name may hold spaces; fields follow ")"
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(text.substr(close + 2));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  // After ")": state is field 3, so utime (14) and stime (15) are at indices 11 and 12.
  if (fields.size() < 13) return std::nullopt;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (std::stod(fields[11]) + std::stod(fields[12])) / ticks;
}

/// Sends `request` on `http` and stores the result in `*out` (a named coroutine for co_spawn).
inline asio::awaitable<void> send_into(net::HttpClient* http, net::Origin origin, net::HttpRequest request,
                                       std::optional<net::HttpResult<net::HttpResponse>>* out) {
  auto call = http->send(std::move(origin), std::move(request));
  auto result = co_await std::move(call);
  out->emplace(std::move(result));
}

/// The test server's control endpoints, over their own client (its connections are control
/// connections, which the server leaves out of connections_accepted).
class ServerControl {
 public:
  ServerControl(asio::io_context& io, net::Origin origin)
      : io_(io), origin_(std::move(origin)), http_(io.get_executor(), nullptr, net::HttpOptions{}) {}

  /// GET /_stats, parsed.
  json::value stats() { return json::parse(call("GET", "/_stats", "")); }
  /// POST /_reset: zeroes the counters, the script and the rate window.
  void reset() { call("POST", "/_reset", ""); }
  /// POST /_script.
  void script(const std::string& document) { call("POST", "/_script", document); }

  /// One request, run to completion on the io_context (which must not be running).
  std::string call(std::string method, std::string target, std::string body) {
    std::optional<net::HttpResult<net::HttpResponse>> out;
    asio::co_spawn(io_, send_into(&http_, origin_, make(std::move(method), std::move(target), std::move(body)), &out),
                   asio::detached);
    io_.restart();
    io_.run();
    io_.restart();
    return body_of(out);
  }

  /// GET /_stats from a coroutine on the running io_context.
  asio::awaitable<json::value> async_stats() {
    std::optional<net::HttpResult<net::HttpResponse>> out;
    auto sent = send_into(&http_, origin_, make("GET", "/_stats", ""), &out);
    co_await std::move(sent);
    co_return json::parse(body_of(out));
  }

 private:
  static net::HttpRequest make(std::string method, std::string target, std::string body) {
    net::HttpRequest request;
    request.method = std::move(method);
    request.target = std::move(target);
    request.body = std::move(body);
    if (!request.body.empty()) request.headers.push_back({"content-type", "application/json"});
    return request;
  }

  static std::string body_of(std::optional<net::HttpResult<net::HttpResponse>>& out) {
    if (!out || !*out) throw std::runtime_error("control request failed: " + (out ? (*out).error().message : "no reply"));
    if ((*out)->status != 200) throw std::runtime_error("control request: status " + std::to_string((*out)->status));
    return std::move((*out)->body);
  }

  asio::io_context& io_;
  net::Origin origin_;
  net::HttpClient http_;
};

/// A number inside a JSON document by path ("status.429"); 0 when absent.
inline double json_number(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* at = &v;
  for (auto key : path) {
    const auto* o = at->if_object();
    if (!o) return 0;
    at = o->if_contains(key);
    if (!at) return 0;
  }
  return at->is_number() ? at->to_number<double>() : 0;
}

/// Latencies in µs and the calls that failed; pct() sorts on first use (the bench is over).
struct Samples {
  std::vector<double> us;
  int failures = 0;
  double pct(double p) {
    if (us.empty()) return 0;
    std::sort(us.begin(), us.end());
    return us[std::min(us.size() - 1, static_cast<std::size_t>(p * static_cast<double>(us.size())))];
  }
};

/// µs since `t` on the steady clock.
inline double since_us(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t).count();
}

inline net::Origin loopback(std::int64_t port) { return net::Origin{"127.0.0.1", std::to_string(port), false}; }

/// Percentile `p` in [0, 1] of sorted values (nearest rank).
template <class T>
T percentile(const std::vector<T>& sorted, double p) {
  if (sorted.empty()) return T{};
  auto rank = static_cast<std::size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(rank, sorted.size() - 1)];
}

}  // namespace dagent::bench
