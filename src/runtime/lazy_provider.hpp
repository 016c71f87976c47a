#pragma once
// The runtime's LLM provider: the live OpenAI-compatible client, created from the config on
// first use so runs that never call the model never load a CA store or read the API key.

#include <memory>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "config/config.hpp"
#include "net/llm_provider.hpp"

namespace dagent::runtime {

class LazyProvider final : public net::LlmProvider {
 public:
  /// `cfg` must outlive the provider.
  LazyProvider(boost::asio::any_io_executor executor, const config::Config& cfg);
  ~LazyProvider() override;

  /// Creates the client now; the reason when it cannot be (bad base URL, no API key for a
  /// remote host, no trusted CA certificates).
  std::optional<std::string> prepare();
  /// The base URL calls go to: OPENAI_BASE_URL when set, else llm.base_url (unchecked).
  std::string base_url() const;

  boost::asio::awaitable<net::LlmResult<net::ChatResponse>> chat(net::ChatRequest request) override;
  boost::asio::awaitable<net::LlmResult<net::ChatResponse>> chat_stream(
      net::ChatRequest request, std::function<void(std::string_view)> on_delta) override;
  boost::asio::awaitable<net::LlmResult<net::EmbedResponse>> embed(net::EmbedRequest request) override;
  net::ProviderMetrics metrics() const override;
  /// Forwarded once the client exists (prepare() succeeded); none before.
  boost::asio::awaitable<int> warm(int k, net::CallMeter* meter) override;

 private:
  boost::asio::any_io_executor executor_;
  const config::Config& cfg_;
  std::unique_ptr<net::LlmProvider> client_;
  std::optional<std::string> failure_;
};

}  // namespace dagent::runtime
