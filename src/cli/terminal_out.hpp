#pragma once
// Everything the command line prints for people goes through here: text from outside (model
// replies, tool output and errors, file names, server messages) must not drive the terminal.

#include <cstdio>
#include <string>
#include <string_view>

namespace dagent::cli {

/// fprintf to `out` with escape sequences and control characters removed from the formatted
/// text (text::for_terminal; newlines and tabs stay). Our own cursor and colour codes are
/// written by LiveView directly, never through this.
[[gnu::format(printf, 2, 3)]] void print_safe(std::FILE* out, const char* format, ...);

/// Serialized JSON made inert on a terminal without changing its value: the characters JSON
/// leaves raw that a terminal may obey — DEL, the C1 controls U+0080–U+009F (U+009B is a CSI) and
/// the bidirectional overrides and isolates — are written as \uXXXX escapes. (They can only be
/// inside strings: JSON's own syntax is ASCII.) For every JSON result the command line prints.
std::string json_for_terminal(std::string_view json);

}  // namespace dagent::cli
