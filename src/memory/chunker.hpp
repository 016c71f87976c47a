#pragma once
// Splits text into overlapping chunks for embedding, cutting at paragraph or sentence boundaries
// where possible (memory.chunk_chars, memory.chunk_overlap).

#include <cstddef>
#include <string_view>
#include <vector>

namespace dagent::memory {

/// A chunk as byte offsets [begin, end) into the chunked text.
struct Chunk {
  std::size_t begin = 0;
  std::size_t end = 0;
};

/// Chunks of at most `max_chars` bytes covering `text` in order; consecutive chunks share about
/// `overlap` bytes (capped at max_chars / 2), the next chunk starting at a word when one is near.
/// A chunk ends at the last paragraph break ("\n\n") in its second half, else the last sentence
/// end (". ", "! ", "? ", newline) there, else the last space there, else at max_chars — never
/// inside a UTF-8 sequence. Chunks skip leading whitespace, so none holds only whitespace; empty
/// text gives no chunks.
std::vector<Chunk> chunk_text(std::string_view text, std::size_t max_chars, std::size_t overlap);

}  // namespace dagent::memory
