#include "memory/chunker.hpp"

#include <catch2/catch.hpp>

#include <cstddef>
#include <random>
#include <string>
#include <string_view>
#include <vector>

using dagent::memory::Chunk;
using dagent::memory::chunk_text;

namespace {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

bool all_space(std::string_view s) {
  for (const char c : s) {
    if (!is_space(c)) return false;
  }
  return true;
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto lead = static_cast<unsigned char>(s[i]);
    const std::size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
    if (length == 0 || i + length > s.size()) return false;
    for (std::size_t j = 1; j < length; ++j) {
      if (!is_continuation(s[i + j])) return false;
    }
    i += length;
  }
  return true;
}

std::string_view slice(std::string_view text, const Chunk& c) { return text.substr(c.begin, c.end - c.begin); }

// What every chunking must satisfy: in order, within bounds, never splitting a UTF-8 sequence,
// leaving out only whitespace, each chunk reaching further than the one before.
void check_invariants(std::string_view text, const std::vector<Chunk>& chunks, std::size_t max_chars) {
  if (all_space(text)) {
    CHECK(chunks.empty());
    return;
  }
  REQUIRE_FALSE(chunks.empty());
  CHECK(all_space(text.substr(0, chunks.front().begin)));
  CHECK(chunks.back().end == text.size());
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    const auto& c = chunks[i];
    INFO("chunk " << i << " [" << c.begin << ", " << c.end << ")");
    REQUIRE(c.begin < c.end);
    REQUIRE(c.end <= text.size());
    CHECK(c.end - c.begin <= max_chars);
    CHECK_FALSE(is_space(text[c.begin]));
    CHECK_FALSE(is_continuation(text[c.begin]));
    CHECK((c.end == text.size() || !is_continuation(text[c.end])));
    CHECK(valid_utf8(slice(text, c)));
    if (i > 0) {
      const auto& prev = chunks[i - 1];
      CHECK(prev.begin < c.begin);
      CHECK(prev.end < c.end);
      if (c.begin > prev.end) CHECK(all_space(text.substr(prev.end, c.begin - prev.end)));
    }
  }
}

std::string repeat(std::string_view piece, std::size_t times) {
  std::string out;
  for (std::size_t i = 0; i < times; ++i) out += piece;
  return out;
}

}  // namespace

TEST_CASE("chunk_text keeps a short text in one chunk", "[memory]") {
  const std::string text = "  \nA short note.\n";
  const auto chunks = chunk_text(text, 100, 10);
  REQUIRE(chunks.size() == 1);
  CHECK(slice(text, chunks[0]) == "A short note.\n");
}

TEST_CASE("chunk_text gives no chunks for empty or whitespace-only text", "[memory]") {
  CHECK(chunk_text("", 100, 10).empty());
  CHECK(chunk_text("   \n\n\t \r\n ", 100, 10).empty());
  CHECK(chunk_text(repeat(" \n", 500), 100, 10).empty());
}

TEST_CASE("chunk_text cuts at a paragraph break in the second half", "[memory]") {
  // The paragraph break wins over the later sentence end and space.
  const std::string text = std::string(58, 'a') + "\n\n" + std::string(20, 'b') + ". " + std::string(10, 'c') + " " +
                           std::string(40, 'd');
  const auto chunks = chunk_text(text, 100, 0);
  REQUIRE(chunks.size() == 2);
  CHECK(chunks[0].begin == 0);
  CHECK(chunks[0].end == 60);
  CHECK(chunks[1].begin == 60);
  CHECK(chunks[1].end == text.size());
  check_invariants(text, chunks, 100);
}

TEST_CASE("chunk_text ignores a paragraph break in the first half", "[memory]") {
  const std::string text = std::string(20, 'a') + "\n\n" + std::string(60, 'b') + " " + std::string(40, 'c');
  const auto chunks = chunk_text(text, 100, 0);
  REQUIRE(chunks.size() == 2);
  CHECK(chunks[0].end == 83);  // after the space, not after the early break
  check_invariants(text, chunks, 100);
}

TEST_CASE("chunk_text cuts at a sentence end before a later space", "[memory]") {
  const std::string text =
      "one two three four five six seven eight nine ten. eleven twelve thirteen fourteen fifteen sixteen";
  const auto chunks = chunk_text(text, 60, 0);
  REQUIRE(chunks.size() == 2);
  CHECK(slice(text, chunks[0]) == "one two three four five six seven eight nine ten. ");
  CHECK(slice(text, chunks[1]) == "eleven twelve thirteen fourteen fifteen sixteen");

  SECTION("a question mark, an exclamation mark and a newline end sentences too") {
    for (const std::string end : {"? ", "! ", "\n"}) {
      const auto changed = "one two three four five six seven eight nine ten" + end + "eleven twelve thirteen fourteen";
      const auto cut = chunk_text(changed, 60, 0);
      REQUIRE(cut.size() == 2);
      CHECK(cut[0].end == 48 + end.size());
    }
  }
}

TEST_CASE("chunk_text cuts at the last space when there is no sentence end", "[memory]") {
  const std::string text = repeat("word ", 10);
  const auto chunks = chunk_text(text, 23, 0);
  REQUIRE_FALSE(chunks.empty());
  CHECK(slice(text, chunks[0]) == "word word word word ");
  check_invariants(text, chunks, 23);
}

TEST_CASE("chunk_text hard-cuts a word longer than max_chars", "[memory]") {
  const std::string text(250, 'x');
  SECTION("without overlap") {
    const auto chunks = chunk_text(text, 100, 0);
    REQUIRE(chunks.size() == 3);
    CHECK((chunks[0].begin == 0 && chunks[0].end == 100));
    CHECK((chunks[1].begin == 100 && chunks[1].end == 200));
    CHECK((chunks[2].begin == 200 && chunks[2].end == 250));
  }
  SECTION("with overlap") {
    const auto chunks = chunk_text(text, 100, 10);
    REQUIRE(chunks.size() == 3);
    CHECK((chunks[1].begin == 90 && chunks[1].end == 190));
    CHECK((chunks[2].begin == 180 && chunks[2].end == 250));
  }
}

TEST_CASE("chunk_text never splits a UTF-8 sequence", "[memory]") {
  for (const std::string piece : {"日本語", "é", "🙂", "aé日🙂"}) {
    const auto text = repeat(piece, 200);
    for (const std::size_t max_chars : {4u, 5u, 10u, 17u, 64u}) {
      INFO("piece " << piece << " max_chars " << max_chars);
      const auto chunks = chunk_text(text, max_chars, max_chars / 3);
      check_invariants(text, chunks, max_chars);
    }
  }
}

TEST_CASE("chunk_text covers the whole text in order", "[memory]") {
  std::string text;
  for (int i = 0; i < 200; ++i) {
    text += "Sentence number " + std::to_string(i) + " says something.";
    text += i % 7 == 6 ? "\n\n" : " ";
  }
  const auto chunks = chunk_text(text, 300, 40);
  CHECK(chunks.size() > 10);
  check_invariants(text, chunks, 300);
}

TEST_CASE("chunk_text overlaps consecutive chunks by about overlap bytes at a word start", "[memory]") {
  const std::string text = repeat("lorem ipsum dolor sit amet ", 100);
  const std::size_t overlap = 50;
  const auto chunks = chunk_text(text, 200, overlap);
  REQUIRE(chunks.size() > 3);
  for (std::size_t i = 1; i < chunks.size(); ++i) {
    const auto shared = chunks[i - 1].end - chunks[i].begin;
    INFO("chunk " << i);
    CHECK(chunks[i].begin < chunks[i - 1].end);
    CHECK(shared <= overlap);
    CHECK(shared + 6 >= overlap);  // moved forward at most a word ("lorem ")
    CHECK(text[chunks[i].begin - 1] == ' ');
  }
  check_invariants(text, chunks, 200);
}

TEST_CASE("chunk_text respects max_chars", "[memory]") {
  const std::string text = repeat("a bb ccc dddd eeeee. ffffff\n", 300);
  for (const std::size_t max_chars : {8u, 13u, 50u, 333u, 2000u}) {
    INFO("max_chars " << max_chars);
    check_invariants(text, chunk_text(text, max_chars, max_chars / 5), max_chars);
  }
}

TEST_CASE("chunk_text keeps its invariants on random texts", "[memory]") {
  const std::vector<std::string> pieces = {"a",  "word", "longerword", "é",  "日本", "🙂",  " ",   " ",  "  ",
                                           ". ", "! ",   "? ",         "\n", "\n\n", "\t", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"};
  std::mt19937 random(20261121);
  for (int round = 0; round < 500; ++round) {
    std::string text;
    const auto count = std::uniform_int_distribution<int>(0, 400)(random);
    for (int i = 0; i < count; ++i) text += pieces[std::uniform_int_distribution<std::size_t>(0, pieces.size() - 1)(random)];
    const auto max_chars = std::uniform_int_distribution<std::size_t>(8, 300)(random);
    const auto overlap = std::uniform_int_distribution<std::size_t>(0, max_chars - 1)(random);
    INFO("round " << round << " max_chars " << max_chars << " overlap " << overlap);
    check_invariants(text, chunk_text(text, max_chars, overlap), max_chars);
  }
}
