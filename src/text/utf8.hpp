#pragma once
// UTF-8 helpers shared by every module that cuts text for a message, a prompt or a result.

#include <cstddef>
#include <string_view>

namespace dagent::text {

/// The largest cut at or below `max` (and at most `text.size()`) that does not split a UTF-8
/// sequence: `text.substr(0, cut)` keeps each multi-byte character whole or drops it whole.
std::size_t utf8_cut(std::string_view text, std::size_t max) noexcept;

}  // namespace dagent::text
