#pragma once
// Text that is not UTF-8, of each kind the repair must handle, for the tests of every path by
// which text enters dagent, and what it becomes.

#include <string>
#include <string_view>

namespace dagent::test {

inline const std::string k_fffd = "\xEF\xBF\xBD";

/// Latin-1 (caf\xE9), a truncated sequence (\xE2\x82 of €), overlong forms (C0 AF, E0 80 AF)
/// and an encoded lone surrogate (ED A0 80), between ASCII words and one valid character.
inline const std::string k_bad_text = "caf\xE9 | \xE2\x82 | \xC0\xAF | \xE0\x80\xAF | \xED\xA0\x80 | \xC3\xA9";

/// k_bad_text repaired: one U+FFFD per maximal ill-formed subpart, the valid é kept.
inline const std::string k_bad_text_repaired = "caf" + k_fffd + " | " + k_fffd + " | " + k_fffd + k_fffd + " | " +
                                               k_fffd + k_fffd + k_fffd + " | " + k_fffd + k_fffd + k_fffd +
                                               " | \xC3\xA9";

/// `bytes` spelled for a test-server script with "bytes": true (tests/server/script.hpp): each
/// byte as the character U+0000..U+00FF, so a reply can carry bytes that are not UTF-8.
inline std::string script_bytes(std::string_view bytes) {
  std::string out;
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x80) {
      out.push_back(c);
    } else {
      out.push_back(static_cast<char>(0xC0 | (b >> 6)));
      out.push_back(static_cast<char>(0x80 | (b & 0x3F)));
    }
  }
  return out;
}

}  // namespace dagent::test
