#include "text/utf8.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

using dagent::text::utf8_cut;

TEST_CASE("utf8_cut never splits a character", "[text]") {
  const std::string s = "a\xC3\xA9" "b\xE2\x82\xAC" "c\xF0\x9F\x98\x80";  // a é b € c 😀
  CHECK(utf8_cut(s, 100) == s.size());
  CHECK(utf8_cut(s, 0) == 0);
  CHECK(utf8_cut(s, 1) == 1);  // before é
  CHECK(utf8_cut(s, 2) == 1);  // inside é: é dropped whole
  CHECK(utf8_cut(s, 3) == 3);
  CHECK(utf8_cut(s, 5) == 4);  // inside €
  CHECK(utf8_cut(s, 6) == 4);
  CHECK(utf8_cut(s, 9) == 8);  // inside 😀
  CHECK(utf8_cut(s, 11) == 8);
}

using dagent::text::is_valid_utf8;
using dagent::text::make_valid_utf8;
using dagent::text::valid_utf8;

namespace {
const std::string fffd = "\xEF\xBF\xBD";
}

TEST_CASE("valid_utf8 keeps valid text byte for byte", "[text]") {
  const std::string s = "plain a\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF end";
  CHECK(is_valid_utf8(s));
  CHECK(valid_utf8(s) == s);
  std::string copy = s;
  CHECK_FALSE(make_valid_utf8(copy));
  CHECK(copy == s);
  CHECK(valid_utf8("") == "");
}

TEST_CASE("valid_utf8 replaces each maximal ill-formed subpart by one U+FFFD", "[text]") {
  // Latin-1: "café" with é as the single byte E9.
  CHECK(valid_utf8("caf\xE9") == "caf" + fffd);
  CHECK(valid_utf8("\xE9t\xE9") == fffd + "t" + fffd);
  // Truncated sequences: the valid prefix of a sequence is one subpart.
  CHECK(valid_utf8("a\xE2\x82") == "a" + fffd);
  CHECK(valid_utf8("a\xE2\x82z") == "a" + fffd + "z");
  CHECK(valid_utf8("\xF0\x9F\x98") == fffd);
  CHECK(valid_utf8("\xC3") == fffd);
  // Overlong forms: C0/C1 leads, E0 80..9F, F0 80..8F.
  CHECK(valid_utf8("\xC0\xAF") == fffd + fffd);
  CHECK(valid_utf8("\xE0\x80\xAF") == fffd + fffd + fffd);
  CHECK(valid_utf8("\xF0\x80\x80\xAF") == fffd + fffd + fffd + fffd);
  // Encoded surrogates (U+D800, U+DFFF) and code points past U+10FFFF.
  CHECK(valid_utf8("\xED\xA0\x80") == fffd + fffd + fffd);
  CHECK(valid_utf8("\xED\xBF\xBF") == fffd + fffd + fffd);
  CHECK(valid_utf8("\xF4\x90\x80\x80") == fffd + fffd + fffd + fffd);
  CHECK(valid_utf8("\xF5\x80") == fffd + fffd);
  // Stray continuation bytes.
  CHECK(valid_utf8("\x80\xBF") == fffd + fffd);
  // The example of the Unicode standard (Table 3-8).
  CHECK(valid_utf8("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64") ==
        "a" + fffd + fffd + fffd + "b" + fffd + "c" + fffd + fffd + "d");
  std::string bad = "x\xFFy";
  CHECK(make_valid_utf8(bad));
  CHECK(bad == "x" + fffd + "y");
}

TEST_CASE("valid_utf8 always returns valid UTF-8 (every 1- and 2-byte input, seeded 3-6 byte inputs)",
          "[text]") {
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      const std::string in{static_cast<char>(a), static_cast<char>(b)};
      const std::string out = valid_utf8(in);
      REQUIRE(is_valid_utf8(out));
      if (is_valid_utf8(in)) REQUIRE(out == in);
    }
  }
  std::uint32_t seed = 12345;
  for (int round = 0; round < 200000; ++round) {
    std::string in;
    const int n = 3 + round % 4;
    for (int k = 0; k < n; ++k) {
      seed = seed * 1664525u + 1013904223u;
      in.push_back(static_cast<char>(0x7F + (seed >> 24) % 0x81));  // mostly non-ASCII bytes
    }
    const std::string out = valid_utf8(in);
    REQUIRE(is_valid_utf8(out));
    if (is_valid_utf8(in)) REQUIRE(out == in);
  }
}

TEST_CASE("utf8_cut backs up at most 3 bytes: bytes that are not UTF-8 are cut where asked", "[text]") {
  // Regression: it backed up over every continuation byte, so max_bytes 2 of "\x80\x80\x80"
  // (or of a long run of them in a binary file) kept nothing.
  CHECK(utf8_cut("\x80\x80\x80", 2) == 2);
  CHECK(utf8_cut(std::string(100, '\x80'), 50) == 50);
  // A whole character before the cut is kept even when a stray continuation byte follows it.
  CHECK(utf8_cut("\xE2\x82\xAC\x80", 3) == 3);
  // Latin-1: no byte continues another, so the cut is where asked (a truncated sequence before
  // the cut is left to the repair).
  CHECK(utf8_cut("caf\xE9\xE9\xE9", 5) == 5);
  // A lead byte whose sequence would cross the cut is dropped with its continuation bytes.
  CHECK(utf8_cut("ab\xF0\x9F\x98\x80", 5) == 2);
  CHECK(utf8_cut("ab\xF0\x9F\x98\x80", 3) == 2);
  CHECK(utf8_cut("a\xE2\x82z", 3) == 3);
}
