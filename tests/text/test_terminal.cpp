#include "text/terminal.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using dagent::text::for_terminal;
using dagent::text::TerminalFilter;

TEST_CASE("for_terminal keeps text, newlines and tabs", "[text]") {
  const std::string plain = "plain text\twith a tab\nand a second line, caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80";
  CHECK(for_terminal(plain) == plain);
  CHECK(for_terminal("") == "");
}

TEST_CASE("for_terminal removes escape sequences whole", "[text]") {
  // CSI: colours, cursor movement, erase display, with parameters and intermediates.
  CHECK(for_terminal("a\x1b[31mred\x1b[0m b") == "ared b");
  CHECK(for_terminal("x\x1b[2J\x1b[H\x1b[1;1Hy") == "xy");
  CHECK(for_terminal("\x1b[?25l" "hidden cursor") == "hidden cursor");
  // OSC ended by BEL and by ST: window title, clipboard write (OSC 52), hyperlink.
  CHECK(for_terminal("a\x1b]0;evil title\x07" "b") == "ab");
  CHECK(for_terminal("a\x1b]52;c;cm0gLXJmIH4=\x1b\\b") == "ab");
  CHECK(for_terminal("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\") == "click");
  // DCS, APC, PM, SOS strings.
  CHECK(for_terminal("a\x1bPq#0;2;0;0;0\x1b\\b") == "ab");
  CHECK(for_terminal("a\x1b_payload\x07" "b\x1b^pm\x1b\\c\x1bXsos\x1b\\d") == "abcd");
  // Two- and three-byte escapes.
  CHECK(for_terminal("a\x1b" "cb") == "ab");   // RIS: reset the terminal
  CHECK(for_terminal("a\x1b(0b") == "ab");     // line-drawing charset
  CHECK(for_terminal("a\x1b#8b") == "ab");     // DECALN: fill the screen with E
  // An escape left open at the end shows nothing after it.
  CHECK(for_terminal("a\x1b]0;never ended") == "a");
  CHECK(for_terminal("a\x1b[") == "a");
  CHECK(for_terminal("a\x1b") == "a");
}

TEST_CASE("for_terminal removes control characters", "[text]") {
  // Carriage return (overwrites the line), backspace, bell, NUL, vertical tab, form feed, DEL.
  CHECK(for_terminal("safe\rEVIL") == "safeEVIL");
  CHECK(for_terminal("abc\b\b\bxyz") == "abcxyz");
  CHECK(for_terminal(std::string("a\0b\a\v\f\x7f" "c", 8)) == "abc");
  // C1 controls in UTF-8: U+009B (CSI), U+009D (OSC), U+0085 (NEL).
  CHECK(for_terminal("a\xC2\x9B" "31mb\xC2\x9D" "c\xC2\x85" "d") == "a31mbcd");
  // Bidirectional overrides and isolates: U+202E, U+2066, U+2069.
  CHECK(for_terminal("x\xE2\x80\xAEtxt.exe\xE2\x81\xA6y\xE2\x81\xA9z") == "xtxt.exeyz");
  // Neighbours that are ordinary text stay: U+00A0, U+2014 (em dash), U+2070.
  CHECK(for_terminal("\xC2\xA0\xE2\x80\x94\xE2\x81\xB0") == "\xC2\xA0\xE2\x80\x94\xE2\x81\xB0");
  // Stray bytes that are not UTF-8 are not controls: passed through for the caller's repair.
  CHECK(for_terminal("\xC2" "a\xE2\x80" "b\xFF") == "\xC2" "a\xE2\x80" "b\xFF");
}

TEST_CASE("TerminalFilter removes sequences split between pieces", "[text]") {
  const std::string whole =
      "answer \x1b]0;title\x07" "is \x1b[1;31mred\x1b[0m, \xE2\x80\xAE" "rev \xC2\x9B" "x, caf\xC3\xA9\r\n";
  const std::string expected = for_terminal(whole);
  CHECK(expected == "answer is red, rev x, caf\xC3\xA9\n");
  // Every way of cutting the text in two, and byte by byte.
  for (std::size_t cut = 0; cut <= whole.size(); ++cut) {
    TerminalFilter filter;
    std::string out;
    filter.feed(std::string_view(whole).substr(0, cut), out);
    filter.feed(std::string_view(whole).substr(cut), out);
    filter.finish(out);
    INFO("cut at " << cut);
    CHECK(out == expected);
  }
  TerminalFilter filter;
  std::string out;
  for (char c : whole) filter.feed(std::string_view(&c, 1), out);
  filter.finish(out);
  CHECK(out == expected);
}
