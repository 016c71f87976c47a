#pragma once
// The body of one Streamable HTTP answer to a POST (MCP "Transports", Streamable HTTP), sans-I/O:
// bytes in, JSON-RPC messages out, for either content type a server may answer with.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include "net/sse_parser.hpp"

namespace simdjson::dom {
class parser;
}

namespace dagent::mcp {

/// How a server answered a POST: one JSON body, or an SSE stream whose events are messages.
enum class HttpBodyKind { json, event_stream };

/// The body kind a Content-Type value names ("application/json; charset=utf-8" is json), or a
/// message saying which media type it is instead.
boost::system::result<HttpBodyKind, std::string> http_body_kind(std::string_view content_type);

/// Reads one answer. A JSON body is one message or an array of them (a batch); an event stream
/// carries one message (or batch) per event with data. Events without data (the priming event of
/// protocol 2025-11-25, which only sets an event ID) and events named other than "message" are
/// skipped. Strings that are not UTF-8 are repaired (U+FFFD) before parsing; numbers are read bit
/// for bit (simdjson). Yields the same messages however the body is split.
class HttpTransportReader {
 public:
  /// `request_id`: the id of the request the POST carried, whose response ends the exchange;
  /// nullopt when it carried a notification or a response. `max_message_bytes` caps one message.
  HttpTransportReader(HttpBodyKind kind, std::optional<boost::json::value> request_id, std::size_t max_message_bytes);
  ~HttpTransportReader();
  HttpTransportReader(HttpTransportReader&&) noexcept;
  HttpTransportReader& operator=(HttpTransportReader&&) noexcept;

  /// Parses `bytes`, appending each complete message to `out`. On an error (a message that is
  /// not a JSON object, one past the size cap) the messages before it are in `out`, and the
  /// reader is failed: every later call returns an error.
  boost::system::result<void, std::string> feed(std::string_view bytes, std::vector<boost::json::object>& out);
  /// The body ended: a JSON body is parsed now (empty: no message). An event stream that ends in
  /// the middle of an event before the response arrived is an error.
  boost::system::result<void, std::string> finish(std::vector<boost::json::object>& out);

  /// Whether the response to the request (an object with that id and no method) has been read.
  bool answered() const noexcept { return answered_; }
  HttpBodyKind kind() const noexcept { return kind_; }
  /// Messages read so far, over every stream.
  std::size_t messages_read() const noexcept { return messages_read_; }
  /// The event stream's last event ID (empty when no event had one): where a resumed stream
  /// starts (Last-Event-ID), and the latest `retry` the server asked for.
  const std::string& last_event_id() const noexcept { return last_event_id_; }
  std::optional<std::int64_t> retry_ms() const noexcept { return retry_ms_; }
  /// Reads a new event stream that resumes this one (the answer to a GET with Last-Event-ID).
  void resume();

 private:
  boost::system::result<void, std::string> parse(std::string& text, std::vector<boost::json::object>& out);
  void note(const boost::json::object& message);
  boost::system::result<void, std::string> fail(std::string why);

  HttpBodyKind kind_;
  std::optional<boost::json::value> request_id_;
  std::size_t max_message_bytes_;
  std::unique_ptr<simdjson::dom::parser> parser_;
  net::SseParser sse_;
  std::vector<net::SseEvent> events_;
  std::string body_;  // a JSON body until it ends
  std::string last_event_id_;
  std::optional<std::int64_t> retry_ms_;
  std::size_t messages_read_ = 0;
  bool answered_ = false;
  bool failed_ = false;
};

}  // namespace dagent::mcp
