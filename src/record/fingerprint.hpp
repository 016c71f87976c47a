#pragma once
// The identity of an LLM or embedding request for replay: a normalized JSON form (model,
// messages, tools, response format, sampling parameters, embedding inputs and dimensions; never
// credentials) and a SHA-256 of its canonical serialization.

#include <string>

#include <boost/json/object.hpp>

#include "net/llm_provider.hpp"

namespace dagent::record {

enum class CallKind { chat, chat_stream, embed };

std::string_view to_string(CallKind kind) noexcept;

/// {"kind", "model", "messages":[{"role","content"}], "temperature"?, "max_tokens"?,
///  "response_format"?} for chat; {"kind", "model", "input":[…], "dimensions"?} for embeddings.
/// Keys in a fixed order, so equal requests serialize equally.
boost::json::object normalize(const net::ChatRequest& request, CallKind kind);
boost::json::object normalize(const net::EmbedRequest& request);

/// Hex SHA-256 of the canonical serialization of `normalized`.
std::string fingerprint(const boost::json::object& normalized);

/// How `wanted` differs from `recorded`, for the error of a request with no match: the first
/// differing fields by JSON path with both values clipped, e.g.
/// `messages[1].content: recorded "Summarize a.md" but got "Summarize b.md"`. At most `max_lines` lines.
std::string describe_difference(const boost::json::object& recorded, const boost::json::object& wanted,
                                std::size_t max_lines = 5);

/// A distance between two normalized requests (0 = equal) for choosing the closest recorded
/// request: differing kind or model count most, then the edit size of differing strings.
std::size_t request_distance(const boost::json::object& a, const boost::json::object& b);

}  // namespace dagent::record
