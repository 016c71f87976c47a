#include "net/sse_parser.hpp"

#include <charconv>

#include "net/net_error.hpp"

namespace dagent::net {
namespace {

constexpr std::string_view k_bom = "\xEF\xBB\xBF";
constexpr std::string_view k_line_ends = "\r\n";
constexpr std::string_view k_default_event = "message";

std::optional<std::int64_t> parse_retry(std::string_view value) {
  if (value.empty()) return std::nullopt;
  for (const char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  std::int64_t ms = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
  if (ec != std::errc() || end != value.data() + value.size()) return std::nullopt;
  return ms;
}

}  // namespace

bool is_done_marker(const SseEvent& event) noexcept { return event.data == "[DONE]"; }

SseParser::SseParser(std::size_t max_event_bytes) : max_event_bytes_(max_event_bytes) {}

boost::system::result<void> SseParser::feed(std::string_view bytes, std::vector<SseEvent>& out) {
  if (failed_) return make_error_code(NetErrc::event_too_large);

  // The BOM may itself arrive split across chunks, so it is matched byte by byte; a partial
  // match that turns out not to be a BOM is ordinary line content.
  if (!bom_checked_) {
    while (!bytes.empty() && bom_matched_ < k_bom.size() && bytes.front() == k_bom[bom_matched_]) {
      ++bom_matched_;
      bytes.remove_prefix(1);
    }
    if (bom_matched_ == k_bom.size()) {
      bom_checked_ = true;
    } else if (!bytes.empty()) {
      bom_checked_ = true;
      if (!append_partial(k_bom.substr(0, bom_matched_))) {
        fail();
        return make_error_code(NetErrc::event_too_large);
      }
    }
  }

  std::size_t pos = 0;
  while (pos < bytes.size()) {
    // A CR may end one chunk and its LF start the next: together they are one line end.
    if (skip_lf_) {
      skip_lf_ = false;
      if (bytes[pos] == '\n') {
        ++pos;
        continue;
      }
    }
    const std::size_t end = bytes.find_first_of(k_line_ends, pos);
    if (end == std::string_view::npos) {
      if (!append_partial(bytes.substr(pos))) {
        fail();
        return make_error_code(NetErrc::event_too_large);
      }
      break;
    }
    const std::string_view piece = bytes.substr(pos, end - pos);
    skip_lf_ = bytes[end] == '\r';
    pos = end + 1;
    if (in_comment_) {
      in_comment_ = false;
    } else if (line_.empty()) {
      if (!piece.empty() && piece.front() != ':' && piece.size() + data_.size() > max_event_bytes_) {
        fail();
        return make_error_code(NetErrc::event_too_large);
      }
      process_line(piece, out);
    } else {
      if (!append_partial(piece)) {
        fail();
        return make_error_code(NetErrc::event_too_large);
      }
      process_line(line_, out);
      line_.clear();
    }
  }
  return {};
}

bool SseParser::mid_event() const noexcept {
  return !line_.empty() || in_comment_ || event_started_ || (!bom_checked_ && bom_matched_ > 0);
}

void SseParser::reset() {
  line_.clear();
  data_.clear();
  event_type_.clear();
  last_id_.clear();
  pending_retry_.reset();
  bom_matched_ = 0;
  bom_checked_ = false;
  skip_lf_ = false;
  in_comment_ = false;
  event_started_ = false;
  failed_ = false;
}

bool SseParser::append_partial(std::string_view piece) {
  if (piece.empty() || in_comment_) return true;
  if (line_.empty() && piece.front() == ':') {
    in_comment_ = true;
    return true;
  }
  if (line_.size() + piece.size() + data_.size() > max_event_bytes_) return false;
  line_.append(piece);
  return true;
}

void SseParser::process_line(std::string_view line, std::vector<SseEvent>& out) {
  if (line.empty()) {
    dispatch(out);
    return;
  }
  if (line.front() == ':') return;
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    process_field(line, {});
    return;
  }
  std::string_view value = line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  process_field(line.substr(0, colon), value);
}

void SseParser::process_field(std::string_view field, std::string_view value) {
  event_started_ = true;
  if (field == "data") {
    data_.append(value);
    data_.push_back('\n');
  } else if (field == "event") {
    event_type_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_.assign(value);
  } else if (field == "retry") {
    if (auto ms = parse_retry(value)) pending_retry_ = ms;
  }
}

void SseParser::dispatch(std::vector<SseEvent>& out) {
  event_started_ = false;
  if (data_.empty()) {
    event_type_.clear();
    return;
  }
  data_.pop_back();
  SseEvent& event = out.emplace_back();
  if (event_type_.empty()) {
    event.event = k_default_event;
  } else {
    event.event = event_type_;
  }
  event.data = data_;
  event.id = last_id_;
  event.retry_ms = pending_retry_;
  pending_retry_.reset();
  data_.clear();
  event_type_.clear();
}

void SseParser::fail() {
  failed_ = true;
  line_.clear();
  data_.clear();
  event_type_.clear();
  pending_retry_.reset();
  in_comment_ = false;
  event_started_ = false;
  skip_lf_ = false;
}

}  // namespace dagent::net
