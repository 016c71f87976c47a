#pragma once
// The LLM as an interface: chat, streamed chat and embeddings as awaitables. The live client,
// the response cache, and (later) recording and replay implement or decorate it.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace dagent::net {

struct CallMeter;

struct ChatMessage {
  std::string role;  ///< system, user or assistant
  std::string content;
};

struct ChatRequest {
  std::string model;
  std::vector<ChatMessage> messages;
  std::optional<double> temperature;
  std::optional<std::int64_t> max_tokens;
  std::optional<boost::json::object> json_schema;  ///< asks for response_format json_schema
  std::string schema_name = "response";
  bool strict = true;  ///< json_schema strict mode (needs every property required, none free-form)
  /// Where the call's cost is counted besides the provider's metrics; null: nowhere. Not part of
  /// the request's identity: never in its fingerprint, cache key or recording.
  std::shared_ptr<CallMeter> meter;
};

struct Usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
};

struct ChatResponse {
  std::string id;
  std::string model;
  std::string content;
  std::string finish_reason;
  Usage usage;
};

struct EmbedRequest {
  std::string model;
  std::vector<std::string> inputs;
  std::optional<int> dimensions;
  std::shared_ptr<CallMeter> meter;  ///< as ChatRequest::meter
};

/// Vectors in input order, row-major: vector i is floats [i·dimension, (i+1)·dimension).
struct EmbedResponse {
  std::size_t dimension = 0;
  std::vector<float> vectors;
  Usage usage;

  std::size_t size() const noexcept { return dimension ? vectors.size() / dimension : 0; }
  std::span<const float> vector(std::size_t i) const { return {vectors.data() + i * dimension, dimension}; }
};

/// A failed call. API errors keep the HTTP status and OpenAI's error type, code and message. A
/// 4xx is NetErrc::provider_refused ("provider refused the request (400): <its message>"), a
/// 5xx NetErrc::api_error.
struct LlmError {
  boost::system::error_code code;  ///< a NetErrc
  std::string message;
  int status = 0;
  std::string type;
  std::string api_code;
  int attempts = 0;
};
[[noreturn]] void throw_exception_from_error(const LlmError& e, const boost::source_location& loc);

/// Whether `e` means the provider cannot be reached or refuses us (network, TLS, auth, open
/// breaker, bad URL) rather than failing this one request: the run exits 3 (SPEC §1).
bool is_unreachable(const LlmError& e) noexcept;

template <class T>
using LlmResult = boost::system::result<T, LlmError>;

/// Counters for the run's metrics (SPEC §5).
struct ProviderMetrics {
  std::int64_t llm_calls = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t embedding_calls = 0;
  std::int64_t retries = 0;          ///< retries made (a try the breaker blocked is not one)
  std::int64_t retries_refused = 0;  ///< retries not made because the retry budget was spent
  double rate_limit_wait_ms = 0;     ///< in the limiter's queue, plus 429 retry-after pauses
  std::int64_t cache_hits = 0;       ///< calls answered by the response cache, either level
  std::int64_t cache_l2_hits = 0;    ///< of those, answered by the shared level (caching.backend: redis)
  std::int64_t cache_l2_errors = 0;  ///< shared-level reads or writes that failed, and values it held that could not be read
  std::int64_t connections_opened = 0;
  /// Shared rate limiting: calls admitted from this process's share while Redis did not answer.
  std::int64_t rate_limit_fallback_calls = 0;
};

class LlmProvider {
 public:
  virtual ~LlmProvider() = default;

  virtual boost::asio::awaitable<LlmResult<ChatResponse>> chat(ChatRequest request) = 0;
  /// Streams the reply; `on_delta` receives each piece of text as it arrives, on the loop.
  virtual boost::asio::awaitable<LlmResult<ChatResponse>> chat_stream(ChatRequest request,
                                                                      std::function<void(std::string_view)> on_delta) = 0;
  virtual boost::asio::awaitable<LlmResult<EmbedResponse>> embed(EmbedRequest request) = 0;
  virtual ProviderMetrics metrics() const = 0;
  /// Opens connections for `k` concurrent calls ahead of them (connection_pooling.warm_connections),
  /// counting those open already; returns how many it added. Never fails: a connection that cannot
  /// be opened is left to the call that needs it. Cancellable. Decorators forward it; providers
  /// without connections (replay) add none. The connections it opens count to `meter` (may be null).
  virtual boost::asio::awaitable<int> warm(int k, CallMeter* meter);
};

/// The OpenAI request body of a chat call.
boost::json::object to_json(const ChatRequest& request, bool stream);
/// text::serialize_valid(to_json(request, stream)), byte for byte, written without building the
/// object: what OpenAiClient sends.
std::string chat_body(const ChatRequest& request, bool stream);

}  // namespace dagent::net
