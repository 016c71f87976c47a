#pragma once
// Everything the command line prints for people goes through here: text from outside (model
// replies, tool output and errors, file names, server messages) must not drive the terminal.

#include <cstdio>

namespace dagent::cli {

/// fprintf to `out` with escape sequences and control characters removed from the formatted
/// text (text::for_terminal; newlines and tabs stay). Our own cursor and colour codes are
/// written by LiveView directly, never through this.
[[gnu::format(printf, 2, 3)]] void print_safe(std::FILE* out, const char* format, ...);

}  // namespace dagent::cli
