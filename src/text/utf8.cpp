#include "text/utf8.hpp"

#include <simdjson.h>

namespace dagent::text {

namespace {

constexpr std::string_view k_replacement = "\xEF\xBF\xBD";

// The length of the well-formed sequence at `text[i]`, or, when it is ill-formed, the length of
// its maximal subpart (at least 1) with `ok` false.
std::size_t sequence_at(std::string_view text, std::size_t i, bool& ok) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char c = byte(0);
  ok = true;
  if (c < 0x80) return 1;
  std::size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;       // overlong
    else if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;       // overlong
    else if (c == 0xF4) hi = 0x8F;  // past U+10FFFF
  } else {
    ok = false;  // a continuation byte, C0/C1 (always overlong) or F5..FF
    return 1;
  }
  for (std::size_t k = 1; k <= need; ++k) {
    if (i + k >= text.size()) {
      ok = false;
      return k;
    }
    const unsigned char b = byte(k);
    const bool in_range = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!in_range) {
      ok = false;
      return k;
    }
  }
  return need + 1;
}

}  // namespace

std::size_t utf8_cut(std::string_view text, std::size_t max) noexcept {
  if (max >= text.size()) return text.size();
  const auto continues = [&](std::size_t i) { return (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80; };
  if (!continues(max)) return max;  // the cut falls before a lead byte or ASCII: it splits nothing
  // A sequence is at most 4 bytes, so its lead is at most 3 bytes back. Looking no further keeps
  // the cut near `max` in binary or Latin-1 text, where a run of continuation bytes can be long.
  for (std::size_t back = 1; back <= 3 && back <= max; ++back) {
    if (continues(max - back)) continue;
    const auto c = static_cast<unsigned char>(text[max - back]);
    const std::size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return length > back ? max - back : max;
  }
  return max;
}

bool is_valid_utf8(std::string_view text) noexcept {
  return simdjson::validate_utf8(text.data(), text.size());
}

std::string valid_utf8(std::string_view text) {
  if (is_valid_utf8(text)) return std::string(text);
  std::string out;
  out.reserve(text.size() + text.size() / 2);
  std::size_t i = 0;
  while (i < text.size()) {
    bool ok = false;
    const std::size_t n = sequence_at(text, i, ok);
    if (ok) out.append(text.substr(i, n));
    else out.append(k_replacement);
    i += n;
  }
  return out;
}

bool make_valid_utf8(std::string& text) {
  if (is_valid_utf8(text)) return false;
  text = valid_utf8(text);
  return true;
}

std::string excerpt(std::string_view text, std::size_t limit) {
  std::string out = valid_utf8(text.substr(0, utf8_cut(text, limit)));
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) c = ' ';
  }
  return out;
}

std::string clipped(std::string_view text, std::size_t max) {
  if (text.size() <= max) return std::string(text);
  return std::string(text.substr(0, utf8_cut(text, max))) + "…";
}

}  // namespace dagent::text
