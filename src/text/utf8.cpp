#include "text/utf8.hpp"

namespace dagent::text {

std::size_t utf8_cut(std::string_view text, std::size_t max) noexcept {
  if (max >= text.size()) return text.size();
  // Back up over continuation bytes (10xxxxxx): the cut then falls before a lead byte.
  while (max > 0 && (static_cast<unsigned char>(text[max]) & 0xC0) == 0x80) --max;
  return max;
}

}  // namespace dagent::text
