#pragma once
// The live OpenAI-compatible provider: pooled HTTPS, RPM/TPM limiter, the SDKs' retry policy
// within a retry budget, and a circuit breaker for its origin. A server that rejects structured
// output (a 400 to a request with response_format) is asked again with the schema in the prompt,
// and from then on always so.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "config/config.hpp"
#include "net/http_client.hpp"
#include "net/llm_provider.hpp"
#include "net/shared_budget.hpp"
#include "net/url.hpp"

namespace dagent::net {

class TlsContext;

struct OpenAiOptions {
  BaseUrl base_url;
  std::string api_key;                           ///< sent as a bearer token to base_url's origin only; masked in all
                                                 ///< text that comes back (see text/redact.hpp)
  HttpOptions http;
  int max_retries = 2;
  bool rate_limiting = true;
  std::int64_t rpm_limit = 10000;
  std::int64_t tpm_limit = 2000000;
  double safety_margin = 0.9;
  config::RateWindow rate_window = config::RateWindow::bucket;  ///< how the provider counts its limits
  /// The span rpm_limit/tpm_limit count over: a minute. Shorter only in benchmarks run in scaled time.
  std::chrono::nanoseconds rate_period = std::chrono::minutes(1);
  /// The rate budget shared with other processes (performance.rate_limiting.shared); null: none.
  std::shared_ptr<SharedBudget> shared_budget;
  int expected_processes = 1;  ///< while the shared budget is unreachable: limit / this
  bool circuit_breaker = true;
  int failure_threshold = 5;
  std::chrono::milliseconds open_for{30000};
  std::function<double()> random01;              ///< retry jitter; default a seeded engine
  std::chrono::milliseconds stream_timeout{600000};  ///< a whole streamed reply at most
  std::size_t stream_max_bytes = 16u << 20;          ///< a streamed reply's body at most
  double retry_budget = 0.2;                     ///< retries at most this fraction of the calls...
  int retry_budget_min = 5;                      ///< ...plus this many, since the last reset
};

class OpenAiClient final : public LlmProvider {
 public:
  OpenAiClient(boost::asio::any_io_executor executor, std::shared_ptr<TlsContext> tls, OpenAiOptions options);
  ~OpenAiClient() override;

  boost::asio::awaitable<LlmResult<ChatResponse>> chat(ChatRequest request) override;
  boost::asio::awaitable<LlmResult<ChatResponse>> chat_stream(ChatRequest request,
                                                              std::function<void(std::string_view)> on_delta) override;
  boost::asio::awaitable<LlmResult<EmbedResponse>> embed(EmbedRequest request) override;
  ProviderMetrics metrics() const override;
  /// Starts the client's own retry budget afresh (calls whose meter carries a budget use that).
  void reset_retry_budget();
  /// Warms base_url's origin in the HTTP client's pool (HttpClient::warm).
  boost::asio::awaitable<int> warm(int k, CallMeter* meter) override;

  struct Impl;

 private:
  boost::asio::awaitable<LlmResult<ChatResponse>> chat_unmasked(ChatRequest request);
  boost::asio::awaitable<LlmResult<ChatResponse>> chat_stream_unmasked(ChatRequest request,
                                                                       std::function<void(std::string_view)> on_delta);
  boost::asio::awaitable<LlmResult<EmbedResponse>> embed_unmasked(EmbedRequest request);

  std::unique_ptr<Impl> impl_;
};

}  // namespace dagent::net
