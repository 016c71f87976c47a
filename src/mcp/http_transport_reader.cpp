#include "mcp/http_transport_reader.hpp"

#include <simdjson.h>

#include "text/simdjson_boost.hpp"
#include "text/utf8.hpp"

namespace dagent::mcp {

namespace json = boost::json;

namespace {

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

std::string_view trimmed(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool only_whitespace(std::string_view s) noexcept {
  return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// A media type fit for a message: printable, short.
std::string shown(std::string_view s) {
  std::string out = text::valid_utf8(s.substr(0, text::utf8_cut(s, 80)));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = ' ';
  return out;
}

}  // namespace

boost::system::result<HttpBodyKind, std::string> http_body_kind(std::string_view content_type) {
  std::string media(trimmed(content_type.substr(0, content_type.find(';'))));
  for (char& c : media) c = lower(c);
  if (media == "application/json") return HttpBodyKind::json;
  if (media == "text/event-stream") return HttpBodyKind::event_stream;
  if (media.empty()) return std::string("the answer has no Content-Type");
  return "the answer's Content-Type is '" + shown(content_type) + "', not application/json or text/event-stream";
}

HttpTransportReader::HttpTransportReader(HttpBodyKind kind, std::optional<json::value> request_id,
                                         std::size_t max_message_bytes)
    : kind_(kind), request_id_(std::move(request_id)), max_message_bytes_(max_message_bytes),
      parser_(std::make_unique<simdjson::dom::parser>()), sse_(max_message_bytes) {}

HttpTransportReader::~HttpTransportReader() = default;
HttpTransportReader::HttpTransportReader(HttpTransportReader&&) noexcept = default;
HttpTransportReader& HttpTransportReader::operator=(HttpTransportReader&&) noexcept = default;

boost::system::result<void, std::string> HttpTransportReader::fail(std::string why) {
  failed_ = true;
  body_.clear();
  events_.clear();
  return why;
}

void HttpTransportReader::note(const json::object& message) {
  ++messages_read_;
  if (!request_id_ || message.contains("method")) return;
  if (const auto* id = message.if_contains("id"); id && *id == *request_id_) answered_ = true;
}

boost::system::result<void, std::string> HttpTransportReader::parse(std::string& text, std::vector<json::object>& out) {
  // Why: simdjson refuses text that is not UTF-8, and the message would be lost for one bad byte.
  text::make_valid_utf8(text);
  simdjson::dom::element root;
  if (auto e = parser_->parse(text.data(), text.size()).get(root))
    return fail(std::string("a message is not valid JSON: ") + simdjson::error_message(e));
  simdjson::dom::array batch;
  if (root.get(batch) == simdjson::SUCCESS) {
    for (auto item : batch)
      if (item.type() != simdjson::dom::element_type::OBJECT) return fail("a batch holds a value that is not a JSON object");
    for (auto item : batch) {
      out.push_back(std::move(text::to_boost_json(item).as_object()));
      note(out.back());
    }
    return {};
  }
  if (root.type() != simdjson::dom::element_type::OBJECT) return fail("a message is not a JSON object");
  out.push_back(std::move(text::to_boost_json(root).as_object()));
  note(out.back());
  return {};
}

boost::system::result<void, std::string> HttpTransportReader::feed(std::string_view bytes, std::vector<json::object>& out) {
  if (failed_) return std::string("the answer was already found invalid");
  if (kind_ == HttpBodyKind::json) {
    if (body_.size() + bytes.size() > max_message_bytes_)
      return fail("the JSON answer is larger than " + std::to_string(max_message_bytes_) + " bytes");
    body_.append(bytes);
    return {};
  }
  events_.clear();
  const auto fed = sse_.feed(bytes, events_);
  for (auto& event : events_) {
    if (!event.id.empty()) last_event_id_ = event.id;  // kept across a resumed stream, as EventSource does
    if (event.retry_ms) retry_ms_ = event.retry_ms;
    if (event.event != "message" || only_whitespace(event.data)) continue;
    if (auto parsed = parse(event.data, out); !parsed) return parsed;
  }
  if (!fed) return fail("an event is larger than " + std::to_string(max_message_bytes_) + " bytes");
  return {};
}

void HttpTransportReader::resume() {
  // Why not reset(): the parser's last event ID would be lost; a resumed stream goes on from ours.
  sse_ = net::SseParser(max_message_bytes_);
  events_.clear();
}

boost::system::result<void, std::string> HttpTransportReader::finish(std::vector<json::object>& out) {
  if (failed_) return std::string("the answer was already found invalid");
  if (kind_ == HttpBodyKind::event_stream) {
    if (sse_.mid_event() && !answered_) return fail("the event stream ended in the middle of an event");
    return {};
  }
  if (only_whitespace(body_)) return {};
  auto parsed = parse(body_, out);
  body_.clear();
  return parsed;
}

}  // namespace dagent::mcp
