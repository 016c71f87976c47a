#include "cli/terminal_out.hpp"

#include <cstdarg>
#include <string>

#include "text/terminal.hpp"

namespace dagent::cli {

void print_safe(std::FILE* out, const char* format, ...) {
  char small[512];
  std::va_list args;
  va_start(args, format);
  std::va_list again;
  va_copy(again, args);
  const int n = std::vsnprintf(small, sizeof small, format, args);
  va_end(args);
  if (n < 0) {
    va_end(again);
    return;
  }
  std::string formatted;
  if (static_cast<std::size_t>(n) < sizeof small) {
    formatted.assign(small, static_cast<std::size_t>(n));
  } else {
    formatted.resize(static_cast<std::size_t>(n));
    std::vsnprintf(formatted.data(), formatted.size() + 1, format, again);
  }
  va_end(again);
  const std::string safe = text::for_terminal(formatted);
  std::fwrite(safe.data(), 1, safe.size(), out);
}

std::string json_for_terminal(std::string_view json) {
  std::string out;
  out.reserve(json.size());
  auto escape = [&out](unsigned code) {
    static constexpr char k_hex[] = "0123456789abcdef";
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) out += k_hex[(code >> shift) & 0xF];
  };
  for (std::size_t i = 0; i < json.size(); ++i) {
    const auto c = static_cast<unsigned char>(json[i]);
    const auto next = i + 1 < json.size() ? static_cast<unsigned char>(json[i + 1]) : 0u;
    const auto third = i + 2 < json.size() ? static_cast<unsigned char>(json[i + 2]) : 0u;
    if (c == 0x7F) {
      escape(c);
    } else if (c == 0xC2 && next >= 0x80 && next <= 0x9F) {  // U+0080..U+009F
      escape(next);
      ++i;
    } else if (c == 0xE2 && next == 0x80 && third >= 0xAA && third <= 0xAE) {  // U+202A..U+202E
      escape(0x2000u + (third - 0x80u));
      i += 2;
    } else if (c == 0xE2 && next == 0x81 && third >= 0xA6 && third <= 0xA9) {  // U+2066..U+2069
      escape(0x2040u + (third - 0x80u));
      i += 2;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace dagent::cli
