#pragma once
// Fuzzer-chosen split points, shared by the targets that check a streamed reader against a whole
// read. The input starts with one byte k (taken mod 16), then k chunk sizes (one byte each, used
// in turn, 0 meaning an empty chunk); the rest is the text.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace dagent::fuzz {

struct SplitInput {
  std::string_view text;
  std::vector<std::string_view> chunks;  ///< text, cut at the chosen sizes
};

inline SplitInput split_input(std::string_view data) {
  SplitInput out;
  std::string_view sizes;
  if (!data.empty()) {
    const std::size_t k = std::min<std::size_t>(static_cast<unsigned char>(data[0]) % 16, data.size() - 1);
    sizes = data.substr(1, k);
    data.remove_prefix(1 + k);
  }
  out.text = data;
  std::size_t at = 0, turn = 0, empties = 0;
  while (at < data.size()) {
    std::size_t n = sizes.empty() ? data.size() : static_cast<unsigned char>(sizes[turn++ % sizes.size()]);
    // A run of zero sizes would never end: after one round of them, take one byte.
    if (n == 0 && ++empties > sizes.size()) n = 1;
    if (n != 0) empties = 0;
    n = std::min(n, data.size() - at);
    out.chunks.push_back(data.substr(at, n));
    at += n;
  }
  return out;
}

}  // namespace dagent::fuzz
