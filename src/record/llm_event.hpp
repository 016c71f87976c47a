#pragma once
// The payloads of an "llm" event (see recording.hpp): a chat or embedding response, or an error,
// to JSON and back. RecordingProvider writes them and ReplayProvider reads them.

#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "net/llm_provider.hpp"
#include "net/net_error.hpp"

namespace dagent::record {

/// {"id","model","content","finish_reason","usage":{"prompt_tokens","completion_tokens"}}
boost::json::object to_json(const net::ChatResponse& response);
/// {"dimension","vectors":[[…],…],"usage":{…}}; floats are written as doubles, which read back exactly.
boost::json::object to_json(const net::EmbedResponse& response);
/// {"code":"<NetErrc name>","message","status","type","api_code","attempts"}
boost::json::object to_json(const net::LlmError& error);

/// The inverse of the functions above; a field of the wrong shape is a NetErrc::protocol_error
/// naming the field.
net::LlmResult<net::ChatResponse> chat_response_from_json(const boost::json::object& response);
net::LlmResult<net::EmbedResponse> embed_response_from_json(const boost::json::object& response);
net::LlmError error_from_json(const boost::json::object& error);

/// The enumerator's name ("api_error"), as recordings spell error codes.
std::string_view errc_name(net::NetErrc code) noexcept;

}  // namespace dagent::record
