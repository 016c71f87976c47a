#include "text/utf8.hpp"

#include <catch2/catch.hpp>

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
  CHECK(utf8_cut("\x80\x80\x80", 2) == 0);  // continuation bytes only: nothing is kept
}
