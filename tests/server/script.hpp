#pragma once
// The test server's script: rules that turn matching requests into scripted replies and faults.
//
//   {"rules": [{
//     "path": "/v1/chat/completions",  exact path, query excluded (absent: any non-control path)
//     "contains": "plan",              substring of the raw request body
//     "nth": 2 | "times": 3,           only the Nth / the first N requests passing path+contains
//     "status": 429,                   with "body" or a status other than 200: sent as is
//     "headers": {"retry-after-ms": "250"},          added to (and overriding) the reply's
//     "body": {...} | "text",          default for status >= 400: OpenAI's error shape
//     "latency_ms": 100,               before the reply (replaces --latency-ms)
//     "reply": "content",              chat content, whole or streamed
//     "stream_chunks": ["a", "b"],     streamed pieces (their concatenation when not streaming)
//     "stream_interval_ms": 20,        pause between streamed events (and pings)
//     "stream_events": ["data: {...}\n\n", ": ping\n\n"],  raw SSE text sent as is, one chunk per
//                                      element, instead of the generated events (streamed requests
//                                      only; no [DONE] unless listed)
//     "bytes": true,                   reply, body (a string), stream_chunks and stream_events are
//                                      bytes: each character U+0000..U+00FF is sent as that one byte
//                                      ("\u00e9" is the Latin-1 byte E9), so replies can hold bytes
//                                      that are not UTF-8
//     "fault": "reset" | "stall" | "truncate" | "close_after_response" | "ping",
//     "hold_until": {"path": "/v1/embeddings", "contains": "x"},  the reply (before latency_ms)
//                                      waits until a request passing these filters has reached the
//                                      script: two calls overlap by construction, not by
//                                      timing; unmet after 20 s, the reply is a 500 saying so
//     "comment": "free text"}]}
//
// Rules are tried in order and the first that applies answers; a rule whose nth/times is not
// satisfied falls through. Unknown keys are errors. Requests refused by --rpm/--tpm never reach
// the script.

#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dagent::test_server {

/// How a reply misbehaves on the wire.
enum class Fault {
  none,
  reset,                 ///< SO_LINGER 0 + close before any response byte (the peer sees a RST)
  stall,                 ///< never answer (streams: headers and the first event, then nothing)
  truncate,              ///< Content-Length larger than the body sent (streams: no [DONE], no last chunk)
  close_after_response,  ///< answer normally, then close the keep-alive connection without notice
  ping,                  ///< streams: headers and the first event, then a `: ping` comment every
                         ///< stream_interval (default 20 ms) until the client closes (at most 60 s)
};

std::string_view to_string(Fault fault);

using HeaderList = std::vector<std::pair<std::string, std::string>>;

/// A request filter: exact path (query excluded) and a substring of the body; unset = any.
struct RequestFilter {
  std::optional<std::string> path;
  std::optional<std::string> contains;
  bool passes(std::string_view request_path, std::string_view body) const;
};

/// What a matching rule does; every field is optional and unset fields keep the server default.
struct RuleAction {
  std::optional<unsigned> status;
  HeaderList headers;
  std::optional<std::string> body;  // an object or array in the script is serialized here
  std::optional<std::chrono::milliseconds> latency;
  std::optional<std::string> reply;  // chat completion content
  std::optional<std::vector<std::string>> stream_chunks;
  std::optional<std::chrono::milliseconds> stream_interval;
  std::optional<std::vector<std::string>> stream_events;  // raw SSE text, one chunk each
  Fault fault = Fault::none;
  std::optional<RequestFilter> hold_until;
};

/// One rule: the filters a request must pass, then the action.
struct Rule {
  RequestFilter filter;
  std::optional<std::uint64_t> nth;     // applies only to the Nth request passing the filters
  std::optional<std::uint64_t> times;   // applies to the first N requests passing the filters
  RuleAction action;
};

/// `{"rules": [...]}` with per-rule counters; an empty script matches nothing.
class Script {
 public:
  Script() = default;

  /// Validates a script document; the error names the offending rule and key.
  static boost::system::result<Script, std::string> parse(const boost::json::value& document);
  static boost::system::result<Script, std::string> parse(std::string_view text);

  /// Counts the request against every rule whose path/contains filters pass (so each rule's
  /// `nth`/`times` does not depend on the rules before it) and returns the index of the first
  /// rule that applies, if any.
  std::optional<std::size_t> match(std::string_view path, std::string_view body);

  const Rule& rule(std::size_t index) const { return rules_[index]; }
  /// Whether rule `index` has no hold_until, or a request passing it has reached match().
  bool hold_met(std::size_t index) const { return counters_[index].hold_met; }
  std::size_t size() const { return rules_.size(); }

  /// Per rule: how many requests passed its filters and how many it answered.
  boost::json::array counters() const;

 private:
  struct Counter {
    std::uint64_t seen = 0;
    std::uint64_t applied = 0;
    bool hold_met = true;
  };
  std::vector<Rule> rules_;
  std::vector<Counter> counters_;
};

}  // namespace dagent::test_server
