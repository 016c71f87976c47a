#pragma once
// Deterministic OpenAI-shaped bodies: chat completions (whole and as SSE events), embeddings and
// errors. Pure functions of the request, so the tests can predict every byte that matters.

#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dagent::test_server {

/// Why a request is invalid: the message of an OpenAI-style 400.
struct BadRequest {
  std::string message;
};

/// What a chat completion request says about the reply it wants.
struct ChatRequest {
  std::string model;
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  std::string last_user_text;     // content of the last user message (text parts joined)
  std::size_t message_bytes = 0;  // bytes of every message's text content
  boost::json::value schema;      // response_format.json_schema.schema, null when absent
  bool json_object = false;       // response_format {"type": "json_object"}
};

/// Reads the fields above.
boost::system::result<ChatRequest, BadRequest> parse_chat_request(const boost::json::value& body);

/// `echo: ` + the last user text (at most 200 bytes, cut on a UTF-8 boundary), or a minimal JSON
/// value when a response format is requested.
std::string default_chat_content(const ChatRequest& request);

/// A minimal value valid for a simple JSON schema: required properties only, strings "x",
/// numbers 0, booleans false, arrays [], the first `enum`/`anyOf`/`oneOf` alternative.
boost::json::value minimal_value_for_schema(const boost::json::value& schema);

/// Identity of one generated completion.
struct CompletionId {
  std::string id;
  std::int64_t created = 0;  // Unix seconds
};

/// A `chat.completion` object with usage (ceil(bytes / 4) on both sides).
std::string chat_completion_body(const ChatRequest& request, std::string_view content,
                                 const CompletionId& id);

/// Splits content into stream pieces: each word with the spaces after it.
std::vector<std::string> split_into_pieces(std::string_view content);

/// Complete SSE events (`data: ...\n\n`): role chunk, one chunk per piece, the finish chunk,
/// the usage chunk when asked for, then `data: [DONE]`.
std::vector<std::string> chat_stream_events(const ChatRequest& request,
                                            const std::vector<std::string>& pieces,
                                            const CompletionId& id);

/// A unit vector from the hashed words of `text` (lower-cased runs of letters and digits), so
/// texts that share words have a higher cosine similarity. Empty text gives the first axis.
std::vector<double> embed_text(std::string_view text, std::size_t dimensions);

/// The body of an embeddings reply.
boost::system::result<std::string, BadRequest> embeddings_body(const boost::json::value& body);

/// OpenAI's error shape: {"error": {"message", "type", "param": null, "code"}}; empty code = null.
std::string error_body(std::string_view message, std::string_view type, std::string_view code);

/// ceil(bytes / 4): the server's token estimate.
std::int64_t estimate_tokens(std::size_t bytes);

/// The longest prefix of `text` of at most `max_bytes` that does not split a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes);

}  // namespace dagent::test_server
