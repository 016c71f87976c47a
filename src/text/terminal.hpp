#pragma once
// Text from outside (model replies, tool output, file names, server messages) made safe to
// print on a terminal: escape sequences and control characters are removed, so untrusted text
// cannot move the cursor, rewrite earlier lines, set the window title, write the clipboard
// (OSC 52) or hide what it says.

#include <cstdint>
#include <string>
#include <string_view>

namespace dagent::text {

/// A streaming filter: feed it pieces in order (a sequence may be split between pieces) and it
/// appends what may reach a terminal. Kept: printable text, newline and tab. Removed whole:
/// ESC sequences (CSI `ESC [ … final`, OSC `ESC ] … BEL|ST`, DCS/SOS/PM/APC `ESC P|X|^|_ … ST`,
/// two- and three-byte escapes). Removed: every other C0 control (carriage return, backspace,
/// bell included), DEL, the C1 controls U+0080–U+009F, and the Unicode bidirectional overrides
/// and isolates (U+202A–U+202E, U+2066–U+2069) that make text display in another order than it
/// reads. The input is expected to be UTF-8; bytes that are not are passed through for the
/// caller's own repair (they are not controls).
class TerminalFilter {
 public:
  /// Appends the safe part of `piece` to `out`.
  void feed(std::string_view piece, std::string& out);
  /// The stream ended: appends a held partial character (its bytes are not a control) and
  /// forgets a sequence left open by the last piece.
  void finish(std::string& out);

 private:
  enum class State : std::uint8_t { text, escape, escape_intermediate, csi, string, string_escape };
  State state_ = State::text;
  std::string pending_;  // a UTF-8 lead byte and what followed it, split at the piece's end
};

/// `text` with escape sequences and control characters removed (a whole string; see
/// TerminalFilter for what is kept).
std::string for_terminal(std::string_view text);

}  // namespace dagent::text
