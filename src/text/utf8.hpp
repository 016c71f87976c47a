#pragma once
// UTF-8 helpers shared by every module that takes text in (files, tools, inputs, model replies)
// or cuts text for a message, a prompt or a result.

#include <cstddef>
#include <string>
#include <string_view>

namespace dagent::text {

/// The largest cut at or below `max` (and at most `text.size()`) that does not split a UTF-8
/// sequence: `text.substr(0, cut)` keeps each multi-byte character whole or drops it whole. It
/// backs up at most 3 bytes, so bytes that are not UTF-8 are cut at `max` (repair them apart).
std::size_t utf8_cut(std::string_view text, std::size_t max) noexcept;

/// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF).
bool is_valid_utf8(std::string_view text) noexcept;

/// `text` with each maximal ill-formed subpart replaced by U+FFFD, as the Unicode standard
/// recommends (and as browsers decode): a Latin-1 byte, a truncated sequence, an overlong form or
/// an encoded surrogate each become one replacement character. Valid text comes back unchanged.
std::string valid_utf8(std::string_view text);

/// The same repair in place; allocates nothing when `text` is already valid. True when it changed.
bool make_valid_utf8(std::string& text);

/// Text from a server, fit for a one-line message: at most `limit` bytes of it, cut on a UTF-8
/// boundary, control characters (C0, DEL) as spaces, invalid UTF-8 as U+FFFD.
std::string excerpt(std::string_view text, std::size_t limit = 300);

/// The first `max` bytes of `text`, cut on a UTF-8 boundary and marked "…" when cut.
std::string clipped(std::string_view text, std::size_t max);

}  // namespace dagent::text
