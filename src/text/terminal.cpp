#include "text/terminal.hpp"

namespace dagent::text {
namespace {

constexpr char k_esc = '\x1b';
constexpr char k_bel = '\x07';

// Whether the code point encoded by the well-formed 2- or 3-byte sequence `s` is a C1 control
// or a bidirectional override/isolate.
bool is_hidden_code_point(std::string_view s) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  if (s.size() == 2) return b(0) == 0xC2 && b(1) >= 0x80 && b(1) <= 0x9F;  // U+0080–U+009F
  if (s.size() == 3 && b(0) == 0xE2) {
    if (b(1) == 0x80) return b(2) >= 0xAA && b(2) <= 0xAE;  // U+202A–U+202E
    if (b(1) == 0x81) return b(2) >= 0xA6 && b(2) <= 0xA9;  // U+2066–U+2069
  }
  return false;
}

// How many bytes the UTF-8 sequence led by `lead` has; 1 for ASCII and stray bytes.
std::size_t sequence_length(unsigned char lead) {
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 1;
}

}  // namespace

void TerminalFilter::feed(std::string_view piece, std::string& out) {
  out.reserve(out.size() + piece.size());
  std::size_t i = 0;
  while (i < piece.size()) {
    const char c = piece[i++];
    const auto u = static_cast<unsigned char>(c);
    switch (state_) {
      case State::text:
        break;
      case State::escape:
        // ESC [ : CSI. ESC ] P X ^ _ : a string ended by BEL or ST. ESC SP…/ : one more byte
        // follows (charset selection and the like). Anything else ends a two-byte escape.
        if (c == '[') {
          state_ = State::csi;
        } else if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_') {
          state_ = State::string;
        } else if (u >= 0x20 && u <= 0x2F) {
          state_ = State::escape_intermediate;
        } else if (c == k_esc) {
          state_ = State::escape;
        } else {
          state_ = State::text;
        }
        continue;
      case State::escape_intermediate:
        if (!(u >= 0x20 && u <= 0x2F)) state_ = State::text;
        continue;
      case State::csi:
        // Parameters and intermediates (0x20–0x3F) until a final byte (0x40–0x7E). A control
        // character inside aborts the sequence, as terminals do; ESC starts a new one.
        if (c == k_esc) {
          state_ = State::escape;
        } else if (u >= 0x40 && u <= 0x7E) {
          state_ = State::text;
        } else if (u < 0x20 || u >= 0x7F) {
          state_ = State::text;
        }
        continue;
      case State::string:
        if (c == k_bel) {
          state_ = State::text;
        } else if (c == k_esc) {
          state_ = State::string_escape;
        }
        continue;
      case State::string_escape:
        // ESC \ is ST and ends the string; ESC anything else aborts it and starts a new escape.
        if (c == '\\') {
          state_ = State::text;
        } else if (c == '[') {
          state_ = State::csi;
        } else {
          state_ = State::escape;
          --i;  // look at this byte again as the first of an escape
        }
        continue;
    }

    if (!pending_.empty()) {
      if ((u & 0xC0) != 0x80) {
        // Not a continuation: what was held is not a whole character; pass it on and look at
        // this byte afresh.
        out += pending_;
        pending_.clear();
        --i;
        continue;
      }
      pending_ += c;
      if (pending_.size() < sequence_length(static_cast<unsigned char>(pending_[0]))) continue;
      if (!is_hidden_code_point(pending_)) out += pending_;
      pending_.clear();
      continue;
    }
    if (c == k_esc) {
      state_ = State::escape;
    } else if (c == '\n' || c == '\t') {
      out += c;
    } else if (u < 0x20 || u == 0x7F) {
      // other C0 controls and DEL: dropped
    } else if (u == 0xC2 || u == 0xE2) {
      pending_ += c;  // may start a C1 control or a bidi control; decided when it is whole
    } else {
      out += c;
    }
  }
}

void TerminalFilter::finish(std::string& out) {
  out += pending_;
  pending_.clear();
  state_ = State::text;
}

std::string for_terminal(std::string_view text) {
  std::string out;
  TerminalFilter filter;
  filter.feed(text, out);
  filter.finish(out);
  return out;
}

}  // namespace dagent::text
