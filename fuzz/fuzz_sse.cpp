// The SSE parser (src/net/sse_parser). The input's first byte picks the event size limit, then
// come fuzzer-chosen split points (fuzz/chunks.hpp) and the stream. Checks that the events do not
// depend on the split, and, while the limit is not hit, equal those of the event-stream
// interpretation written here from the WHATWG text.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "check.hpp"
#include "chunks.hpp"
#include "net/sse_parser.hpp"

namespace {

using dagent::net::SseEvent;
using dagent::net::SseParser;

using dagent::fuzz::check;

struct Parsed {
  std::vector<SseEvent> events;
  bool failed = false;
  bool mid_event = false;
};

Parsed parse(const std::vector<std::string_view>& chunks, std::size_t limit) {
  SseParser parser(limit);
  Parsed out;
  for (const auto chunk : chunks) {
    if (!parser.feed(chunk, out.events)) out.failed = true;
  }
  out.mid_event = parser.mid_event();
  if (out.failed) check(!out.mid_event, "mid_event after a failure");
  return out;
}

Parsed reference(std::string_view text) {
  Parsed out;
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  std::string data, type, last_id;
  std::optional<std::int64_t> retry;
  bool started = false;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t end = text.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) break;
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (text[end] == '\r' && pos < text.size() && text[pos] == '\n') ++pos;
    if (line.empty()) {
      started = false;
      if (!data.empty()) {
        data.pop_back();
        out.events.push_back({type.empty() ? "message" : type, data, last_id, retry});
        retry.reset();
      }
      data.clear();
      type.clear();
      continue;
    }
    if (line.front() == ':') continue;
    started = true;
    const std::size_t colon = line.find(':');
    const std::string_view field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "data") {
      data.append(value);
      data += '\n';
    } else if (field == "event") {
      type = value;
    } else if (field == "id") {
      if (value.find('\0') == std::string_view::npos) last_id = value;
    } else if (field == "retry" && !value.empty()) {
      std::int64_t ms = 0;
      bool ok = true;
      for (char c : value) {
        if (c < '0' || c > '9' || ms > (INT64_MAX - (c - '0')) / 10) {
          ok = false;
          break;
        }
        ms = ms * 10 + (c - '0');
      }
      if (ok) retry = ms;
    }
  }
  out.mid_event = started || pos < text.size();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (input.empty()) return 0;
  const unsigned char pick = static_cast<unsigned char>(input[0]);
  input.remove_prefix(1);
  // Half the inputs run with a small limit, so the event_too_large path is explored too.
  const std::size_t limit = pick < 128 ? std::size_t{1} << 20 : std::size_t{pick - 127u} * 3;
  const auto split = dagent::fuzz::split_input(input);

  const Parsed whole = parse({split.text}, limit);
  const Parsed chunked = parse(split.chunks, limit);
  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < split.text.size(); ++i) bytes.push_back(split.text.substr(i, 1));
  const Parsed byte_by_byte = parse(bytes, limit);
  for (const Parsed* other : {&chunked, &byte_by_byte}) {
    check(other->failed == whole.failed, "the split changed whether the limit was hit");
    check(other->events == whole.events, "the split changed the events");
    check(other->mid_event == whole.mid_event, "the split changed mid_event");
  }

  const Parsed expected = reference(split.text);
  if (whole.failed) {
    check(whole.events.size() <= expected.events.size(), "more events than the stream holds");
    for (std::size_t i = 0; i < whole.events.size(); ++i)
      check(whole.events[i] == expected.events[i], "an event before the failure differs");
  } else {
    check(whole.events == expected.events, "the events differ from the event-stream interpretation");
    check(whole.mid_event == expected.mid_event, "mid_event differs from the event-stream interpretation");
  }
  for (const auto& e : whole.events) {
    check(e.data.size() <= limit, "an event larger than the limit");
    check(!e.retry_ms || *e.retry_ms >= 0, "a negative retry");
  }
  return 0;
}
