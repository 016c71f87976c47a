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

}  // namespace dagent::cli
