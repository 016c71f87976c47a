#pragma once
// The provider every part of the runtime holds (planner, llm tool, judge, memory): it forwards to
// the provider of the current run — live, cached, replayed, and recorded or not.

#include "net/llm_provider.hpp"

namespace dagent::runtime {

class RoutingProvider final : public net::LlmProvider {
 public:
  explicit RoutingProvider(net::LlmProvider& target) : target_(&target) {}

  /// Sends later calls to `target`, which must outlive them.
  void route_to(net::LlmProvider& target) noexcept { target_ = &target; }
  net::LlmProvider& target() const noexcept { return *target_; }

  boost::asio::awaitable<net::LlmResult<net::ChatResponse>> chat(net::ChatRequest request) override {
    return target_->chat(std::move(request));
  }
  boost::asio::awaitable<net::LlmResult<net::ChatResponse>> chat_stream(
      net::ChatRequest request, std::function<void(std::string_view)> on_delta) override {
    return target_->chat_stream(std::move(request), std::move(on_delta));
  }
  boost::asio::awaitable<net::LlmResult<net::EmbedResponse>> embed(net::EmbedRequest request) override {
    return target_->embed(std::move(request));
  }
  net::ProviderMetrics metrics() const override { return target_->metrics(); }

 private:
  net::LlmProvider* target_;
};

}  // namespace dagent::runtime
