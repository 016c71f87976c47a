#pragma once
// The identity of an LLM or embedding request: a normalized JSON form (model, messages, response
// format, sampling parameters, embedding inputs and dimensions; never credentials) and a SHA-256
// of its canonical serialization. Replay matches recorded calls by it, and the response cache
// keys its entries by it.

#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "net/llm_provider.hpp"

namespace dagent::net {

enum class CallKind { chat, chat_stream, embed };

std::string_view to_string(CallKind kind) noexcept;

/// {"kind", "model", "messages":[{"role","content"}], "temperature"?, "max_tokens"?,
///  "response_format"?} for chat; {"kind", "model", "input":[…], "dimensions"?} for embeddings.
/// Keys in a fixed order, so equal requests serialize equally.
boost::json::object normalize(const ChatRequest& request, CallKind kind);
boost::json::object normalize(const EmbedRequest& request);

/// Hex SHA-256 of the canonical serialization of `normalized` (object keys sorted at every level).
std::string fingerprint(const boost::json::object& normalized);

}  // namespace dagent::net
