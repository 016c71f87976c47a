#pragma once
// --record: a decorator that passes every call to the inner provider and writes the exchange
// (fingerprint, normalized request, response or error, stream chunks with their arrival offsets).

#include <chrono>

#include "net/llm_provider.hpp"
#include "record/recording.hpp"

namespace dagent::record {

class RecordingProvider final : public net::LlmProvider {
 public:
  /// `inner` and `writer` must outlive this provider.
  RecordingProvider(net::LlmProvider& inner, RecordWriter& writer);

  boost::asio::awaitable<net::LlmResult<net::ChatResponse>> chat(net::ChatRequest request) override;
  boost::asio::awaitable<net::LlmResult<net::ChatResponse>> chat_stream(
      net::ChatRequest request, std::function<void(std::string_view)> on_delta) override;
  boost::asio::awaitable<net::LlmResult<net::EmbedResponse>> embed(net::EmbedRequest request) override;
  net::ProviderMetrics metrics() const override { return inner_.metrics(); }
  /// Forwarded, not recorded: a replay makes no connections.
  boost::asio::awaitable<int> warm(int k, net::CallMeter* meter) override { return inner_.warm(k, meter); }

 private:
  net::LlmProvider& inner_;
  RecordWriter& writer_;
};

}  // namespace dagent::record
