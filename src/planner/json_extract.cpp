#include "planner/json_extract.hpp"

#include <cstddef>
#include <optional>
#include <utility>

#include <boost/json/parser.hpp>

namespace dagent::planner {
namespace {

constexpr std::string_view k_fence = "```";
constexpr std::string_view k_openers = "{[";
constexpr std::string_view k_whitespace = " \t\r\n";

/// The outcome of one strict parse of a candidate.
struct Attempt {
  std::optional<boost::json::value> value;  ///< set when the candidate parsed
  boost::system::error_code ec;             ///< why it did not
  std::size_t error_offset = 0;             ///< bytes of the candidate consumed before the error
};

/// A failed candidate kept for the error message.
struct Failure {
  std::size_t offset = 0;
  std::string reason;
};

/// Where a bracket scan from an opener stopped.
struct Span {
  std::size_t end = 0;  ///< one past the last byte scanned
  bool closed = false;  ///< the opener's own closer was reached
};

Attempt parse_strict(std::string_view candidate) {
  // boost::json::parse gives no offset; its parser reports how far it got before the error.
  boost::json::parser parser;
  Attempt attempt;
  attempt.error_offset = parser.write(candidate.data(), candidate.size(), attempt.ec);
  if (!attempt.ec) attempt.value = parser.release();
  return attempt;
}

bool starts_like_json(std::string_view candidate) {
  const std::size_t first = candidate.find_first_not_of(k_whitespace);
  return first != std::string_view::npos && k_openers.find(candidate[first]) != std::string_view::npos;
}

bool is_info_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '+' || c == '.';
}

/// Scans from the opener at `start`, skipping brackets inside strings; stops at the opener's
/// closer, at a closer of the wrong kind (included in the span), or at the end of the text.
Span scan_span(std::string_view text, std::size_t start) {
  std::string closers;
  bool in_string = false;
  bool escape = false;
  for (std::size_t i = start; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escape) {
        escape = false;
      } else if (c == '\\') {
        escape = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '{':
        closers.push_back('}');
        break;
      case '[':
        closers.push_back(']');
        break;
      case '}':
      case ']':
        if (closers.back() != c) return {i + 1, false};
        closers.pop_back();
        if (closers.empty()) return {i + 1, true};
        break;
      default:
        break;
    }
  }
  return {text.size(), false};
}

/// Tries the content of each code fence in order; records the first failure that looked like JSON.
std::optional<boost::json::value> try_fences(std::string_view text, std::optional<Failure>& failure) {
  std::size_t open = text.find(k_fence);
  while (open != std::string_view::npos) {
    std::size_t after = open + k_fence.size();
    while (after < text.size() && text[after] == '`') ++after;  // longer fences (````) too
    const std::size_t close = text.find(k_fence, after);
    const std::size_t end = close == std::string_view::npos ? text.size() : close;
    // The info string is the rest of the opening line; an inline fence (```json {...}```) has
    // no newline before its closer, so only a leading info word is dropped.
    std::size_t content = text.find('\n', after);
    if (content != std::string_view::npos && content < end) {
      ++content;
    } else {
      content = after;
      while (content < end && is_info_char(text[content])) ++content;
    }
    const std::string_view candidate = text.substr(content, end - content);
    Attempt attempt = parse_strict(candidate);
    if (attempt.value) return std::move(attempt.value);
    if (!failure && starts_like_json(candidate)) {
      failure = Failure{content + attempt.error_offset, attempt.ec.message()};
    }
    if (close == std::string_view::npos) break;
    std::size_t next = close + k_fence.size();
    while (next < text.size() && text[next] == '`') ++next;
    open = text.find(k_fence, next);
  }
  return std::nullopt;
}

/// Tries each top-level bracket span in order; records the longest failure.
std::optional<boost::json::value> try_spans(std::string_view text, std::optional<Failure>& failure) {
  std::size_t longest = 0;
  std::optional<Failure> span_failure;
  std::size_t start = text.find_first_of(k_openers);
  while (start != std::string_view::npos) {
    const Span span = scan_span(text, start);
    const std::string_view candidate = text.substr(start, span.end - start);
    if (span.closed || candidate.size() > longest) {
      Attempt attempt = parse_strict(candidate);
      if (attempt.value) return std::move(attempt.value);
      if (candidate.size() > longest) {
        longest = candidate.size();
        span_failure = Failure{start + attempt.error_offset, attempt.ec.message()};
      }
    }
    // Spans are disjoint, so the whole scan is linear in the text.
    start = text.find_first_of(k_openers, span.end);
  }
  if (!failure) failure = std::move(span_failure);
  return std::nullopt;
}

}  // namespace

boost::system::result<boost::json::value, std::string> extract_json(std::string_view text) {
  Attempt whole = parse_strict(text);
  if (whole.value) return std::move(*whole.value);

  std::optional<Failure> failure;
  if (auto value = try_fences(text, failure)) return std::move(*value);
  if (auto value = try_spans(text, failure)) return std::move(*value);

  // A json::value is constructible from a string too, so the error is placed explicitly.
  if (!failure) return {boost::system::in_place_error, "the reply contains no JSON value"};
  return {boost::system::in_place_error,
          "the reply's JSON is malformed: " + failure->reason + " at offset " + std::to_string(failure->offset)};
}

}  // namespace dagent::planner
