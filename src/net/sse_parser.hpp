#pragma once
// Server-sent events (WHATWG HTML, "event stream interpretation"), sans-I/O: bytes in, events out.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

namespace dagent::net {

/// One dispatched event.
struct SseEvent {
  std::string event;                   ///< the `event` field, or "message" when the event had none
  std::string data;                    ///< the `data` lines joined with '\n'
  std::string id;                      ///< the last event ID: the latest valid `id` of the stream so far
  std::optional<std::int64_t> retry_ms;  ///< the latest valid `retry` since the previous dispatched event

  /// Field-by-field equality.
  friend bool operator==(const SseEvent&, const SseEvent&) = default;
};

/// Whether `event` is OpenAI's end-of-stream marker, `data: [DONE]`.
bool is_done_marker(const SseEvent& event) noexcept;

/// Incremental SSE parser: yields the same events however the input is split into chunks.
/// Accepts LF, CRLF and lone CR line ends (a CR ending one chunk and an LF starting the next
/// are one line end) and skips one UTF-8 BOM at the start of the stream. Bytes are passed
/// through as they are (no UTF-8 validation). An event is dispatched at a blank line if it had
/// at least one `data` field (`data:` with an empty value counts); unterminated events are
/// never dispatched. A `retry` field in a block that dispatches nothing is carried to the next
/// dispatched event.
class SseParser {
 public:
  /// `max_event_bytes` caps one event: the bytes of the line being buffered plus the `data`
  /// accumulated for the current event. Comment lines are skipped without buffering.
  explicit SseParser(std::size_t max_event_bytes = 4 << 20);

  /// Parses `bytes`, appending each completed event to `out`. On event_too_large, the events
  /// completed before the oversized one are in `out`, the buffers are emptied, and the parser is
  /// failed: every later feed() returns event_too_large and consumes nothing until reset().
  boost::system::result<void> feed(std::string_view bytes, std::vector<SseEvent>& out);

  /// Whether part of an unfinished line or event is buffered: true at the end of a stream means
  /// the stream was truncated. False after a failure.
  bool mid_event() const noexcept;

  /// Returns to the state of a new stream (BOM check, last event ID, failure), keeping capacity.
  void reset();

 private:
  bool append_partial(std::string_view piece);
  void process_line(std::string_view line, std::vector<SseEvent>& out);
  void process_field(std::string_view field, std::string_view value);
  void dispatch(std::vector<SseEvent>& out);
  void fail();

  std::size_t max_event_bytes_;
  std::string line_;
  std::string data_;
  std::string event_type_;
  std::string last_id_;
  std::optional<std::int64_t> pending_retry_;
  std::uint8_t bom_matched_ = 0;
  bool bom_checked_ = false;
  bool skip_lf_ = false;
  bool in_comment_ = false;
  bool event_started_ = false;
  bool failed_ = false;
};

}  // namespace dagent::net
