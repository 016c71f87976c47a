#include "memory/chunker.hpp"

#include <algorithm>

namespace dagent::memory {
namespace {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// A UTF-8 sequence has at most three continuation bytes; longer runs are not UTF-8, so the moves
// below stop after three bytes rather than walk through binary data.
std::size_t back_to_boundary(std::string_view text, std::size_t pos) {
  for (int i = 0; i < 3 && pos > 0 && pos < text.size() && is_continuation(text[pos]); ++i) --pos;
  return pos;
}

std::size_t forward_to_boundary(std::string_view text, std::size_t pos) {
  for (int i = 0; i < 3 && pos < text.size() && is_continuation(text[pos]); ++i) ++pos;
  return pos;
}

std::size_t skip_space(std::string_view text, std::size_t pos) {
  while (pos < text.size() && is_space(text[pos])) ++pos;
  return pos;
}

// The end of the last `delimiter` lying wholly in `window` and ending at or after `lowest`
// (offsets relative to the window), or 0.
std::size_t last_end_of(std::string_view window, std::string_view delimiter, std::size_t lowest) {
  const auto at = window.rfind(delimiter);
  if (at == std::string_view::npos || at + delimiter.size() < lowest) return 0;
  return at + delimiter.size();
}

// Where the chunk starting at `start` ends, given the previous chunk ended at `previous_end`
// (0 for the first): a boundary in the window's second half and past `previous_end`, so every
// chunk reaches further than the one before.
std::size_t cut(std::string_view text, std::size_t start, std::size_t max_chars, std::size_t previous_end) {
  if (text.size() - start <= max_chars) return text.size();
  const auto window = text.substr(start, max_chars);
  const auto lowest = std::max(max_chars / 2, previous_end + 1 > start ? previous_end + 1 - start : 1);
  if (const auto end = last_end_of(window, "\n\n", lowest)) return start + end;
  const auto sentence = std::max({last_end_of(window, ". ", lowest), last_end_of(window, "! ", lowest),
                                  last_end_of(window, "? ", lowest), last_end_of(window, "\n", lowest)});
  if (sentence) return start + sentence;
  if (const auto end = last_end_of(window, " ", lowest)) return start + end;
  const auto floor = std::max(start, previous_end);
  const auto end = back_to_boundary(text, start + max_chars);
  // Only when max_chars < 4 can one code point not fit; it is kept whole, making the chunk longer.
  return end > floor ? end : forward_to_boundary(text, floor + 1);
}

// Where the chunk after [start, end) starts: about `overlap` bytes before `end`, moved forward
// to the first word start in the overlap, and always past `start`.
std::size_t next_start(std::string_view text, std::size_t start, std::size_t end, std::size_t overlap) {
  const auto from = std::max(end > overlap ? end - overlap : 0, start + 1);
  for (auto pos = from; pos < end; ++pos) {
    if (is_space(text[pos - 1]) && !is_space(text[pos])) return pos;
  }
  return forward_to_boundary(text, from);
}

}  // namespace

std::vector<Chunk> chunk_text(std::string_view text, std::size_t max_chars, std::size_t overlap) {
  max_chars = std::max<std::size_t>(max_chars, 1);
  overlap = std::min(overlap, max_chars / 2);
  std::vector<Chunk> chunks;
  std::size_t previous_end = 0;
  for (auto start = skip_space(text, 0); start < text.size();) {
    const auto end = cut(text, start, max_chars, previous_end);
    chunks.push_back({start, end});
    if (end == text.size()) break;
    start = skip_space(text, next_start(text, start, end, overlap));
    previous_end = end;
  }
  return chunks;
}

}  // namespace dagent::memory
