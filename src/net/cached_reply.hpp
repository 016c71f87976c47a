#pragma once
// The bytes of a cached reply in the shared cache: a versioned, compact encoding of a
// ChatResponse or EmbedResponse, zlib-compressed when large, bound to the key it is stored under.
// Bytes read back are untrusted (another process, another version, anyone with access to the
// store wrote them): decoding checks everything and bounds what it inflates.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <boost/system/result.hpp>

#include "net/llm_provider.hpp"

namespace dagent::net {

using CachedReply = std::variant<ChatResponse, EmbedResponse>;

enum class ReplyKind { chat, embed };

/// Layout: byte 0 the format version (k_reply_format), byte 1 the body's encoding (0: JSON as
/// is; 1: zlib, then bytes 2..5 the inflated size, big-endian, then the zlib stream). The JSON
/// holds the kind, `key` and the reply's fields.
inline constexpr std::uint8_t k_reply_format = 1;
/// Bodies larger than this are compressed.
inline constexpr std::size_t k_compress_above = 1024;
/// A body inflates to at most this; a value claiming more is refused before inflating.
inline constexpr std::size_t k_max_reply_body = 32u << 20;

ReplyKind kind_of(const CachedReply& reply) noexcept;

/// The bytes for `reply` stored under `key`; "" when the reply cannot be stored (its body would
/// exceed k_max_reply_body, or an embedding holds a value that is not finite).
std::string encode_reply(const CachedReply& reply, std::string_view key, std::size_t compress_above = k_compress_above);

/// The reply in `bytes`, which must be a `kind` stored under `key`; otherwise a message saying
/// what is wrong (unknown version or encoding, truncated, corrupt or oversized body, another
/// kind or key, a field missing or of the wrong type).
boost::system::result<CachedReply, std::string> decode_reply(std::string_view bytes, std::string_view key, ReplyKind kind);

}  // namespace dagent::net
