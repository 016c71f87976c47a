// UTF-8 repair (src/text/utf8): valid_utf8's output is always valid and equals the input when the
// input was valid; make_valid_utf8 agrees with it; utf8_cut never splits a character. The checks
// use a decoder written here from the Unicode tables, so a bug shared by the library's fast path
// (simdjson) and its repair loop cannot hide.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "check.hpp"
#include "text/utf8.hpp"

namespace {

using dagent::fuzz::check;

// Length of the well-formed sequence at text[i] (Unicode Table 3-7), or 0 when ill-formed.
std::size_t well_formed_at(std::string_view text, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned>(static_cast<unsigned char>(text[i + k])); };
  const std::size_t left = text.size() - i;
  const unsigned c = b(0);
  if (c <= 0x7F) return 1;
  const auto cont = [&](std::size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return k < left && b(k) >= lo && b(k) <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

bool reference_valid(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = well_formed_at(text, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Every well-formed character of the input survives, in order: removing the U+FFFD that the repair
// added must leave exactly the input's well-formed characters.
std::string well_formed_only(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = well_formed_at(text, i);
    if (n == 0) {
      ++i;
      continue;
    }
    const std::string_view ch = text.substr(i, n);
    if (ch != "\xEF\xBF\xBD") out.append(ch);
    i += n;
  }
  return out;
}

// Whether `cut` falls strictly inside a well-formed character of `text`.
bool inside_character(std::string_view text, std::size_t cut) {
  for (std::size_t i = 0; i < text.size() && i < cut;) {
    const std::size_t n = well_formed_at(text, i);
    if (n > 1 && cut > i && cut < i + n) return true;
    i += n == 0 ? 1 : n;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const bool valid = reference_valid(input);
  check(dagent::text::is_valid_utf8(input) == valid, "is_valid_utf8 disagrees with the Unicode tables");

  const std::string repaired = dagent::text::valid_utf8(input);
  check(reference_valid(repaired), "valid_utf8 returned ill-formed UTF-8");
  if (valid) check(repaired == input, "valid_utf8 changed valid text");
  check(well_formed_only(repaired) == well_formed_only(input), "valid_utf8 lost or invented a character");
  // Each ill-formed subpart is at least one byte and becomes three, so the output is bounded.
  check(repaired.size() <= 3 * input.size(), "valid_utf8 output too long");

  std::string in_place(input);
  const bool changed = dagent::text::make_valid_utf8(in_place);
  check(changed == !valid, "make_valid_utf8's result disagrees with validity");
  check(in_place == repaired, "make_valid_utf8 disagrees with valid_utf8");

  // Cuts at every offset near the ends and at a few inside, in valid and repaired text alike.
  for (const std::string_view text : {input, std::string_view(repaired)}) {
    const bool text_valid = reference_valid(text);
    auto check_cut = [&](std::size_t max) {
      const std::size_t cut = dagent::text::utf8_cut(text, max);
      check(cut <= max && cut <= text.size(), "utf8_cut went past max");
      if (max >= text.size()) check(cut == text.size(), "utf8_cut shortened text that fits");
      // Never inside a well-formed character; a stray continuation byte of ill-formed text is a
      // boundary of its own (the cut looks back at most 3 bytes, so long runs of them stay cheap).
      check(!inside_character(text, cut), "utf8_cut split a well-formed character");
      if (text_valid) {
        // Valid text: the cut keeps whole characters and drops at most the one that did not fit.
        check(reference_valid(text.substr(0, cut)), "utf8_cut split a character");
        check(max >= text.size() || max - cut < 4, "utf8_cut dropped more than one character");
      }
    };
    const std::size_t n = text.size();
    for (std::size_t max = 0; max <= n + 1 && max < 16; ++max) check_cut(max);
    for (std::size_t back = 0; back < 16 && back <= n; ++back) check_cut(n - back);
    for (std::size_t k = 1; k < 8; ++k) check_cut(n * k / 8);
  }
  return 0;
}
