#pragma once
// A run's budget (limits.*): a decorating LlmProvider at the head of the run's provider chain, so
// every chat call of the run — planner (intent, plan, repair, replan, answer), llm steps, the
// judge — passes it. A call the budget cannot afford fails before it reaches the network; calls
// already running finish. Embedding calls are not counted (README "Budgets"). It also names the
// run's CallMeter on every request it forwards, so the run's metrics count its own calls only,
// however many runs share the provider.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "net/call_meter.hpp"
#include "net/llm_provider.hpp"

namespace dagent::runtime {

class Budget final : public net::LlmProvider {
 public:
  /// `inner` and `limits` must outlive the budget.
  Budget(net::LlmProvider& inner, const config::LimitsConfig& limits) : inner_(inner), limits_(limits) {}

  /// The run starts now: its wall time counts from `epoch`.
  void start(std::chrono::steady_clock::time_point epoch) noexcept { epoch_ = epoch; }

  /// The wall-time cap ran out (its timer fired): marks it and refuses every later call. False
  /// when the budget had already stopped the run.
  bool stop_wall();

  /// The budget error of the run ("budget exceeded: limits.max_tokens: 10234 of 10000 tokens"):
  /// set by the first cap that stopped a call or cut the run; nullopt while none did.
  const std::optional<std::string>& exceeded() const noexcept { return exceeded_; }
  /// Whether the wall-time cap cut the run (it was cancelled, not interrupted by the user).
  bool wall_stopped() const noexcept { return wall_stopped_; }

  std::int64_t calls() const noexcept { return calls_; }
  std::int64_t tokens() const noexcept { return tokens_; }  ///< settled: usage of finished calls

  /// The run's meter: what its calls cost (the run's metrics). Set on every request and warm-up
  /// forwarded without one.
  const std::shared_ptr<net::CallMeter>& meter() const noexcept { return meter_; }

  boost::asio::awaitable<net::LlmResult<net::ChatResponse>> chat(net::ChatRequest request) override;
  boost::asio::awaitable<net::LlmResult<net::ChatResponse>> chat_stream(
      net::ChatRequest request, std::function<void(std::string_view)> on_delta) override;
  /// Not counted; refused only once the wall-time cap ran out.
  boost::asio::awaitable<net::LlmResult<net::EmbedResponse>> embed(net::EmbedRequest request) override;
  net::ProviderMetrics metrics() const override { return inner_.metrics(); }
  /// Forwarded; opening a connection is no call. Without a meter of its own, its connections
  /// count to the run's.
  boost::asio::awaitable<int> warm(int k, net::CallMeter* meter) override {
    return inner_.warm(k, meter ? meter : meter_.get());
  }

  /// A call's reservation, settled with its usage when it ends (however it ends).
  struct Ticket;

 private:
  /// Admits a call (counts it, reserves its tokens) or says why not.
  std::optional<net::LlmError> admit(const net::ChatRequest& request, std::int64_t& reserved);
  net::LlmError refuse(std::string message);
  double elapsed_ms() const;

  net::LlmProvider& inner_;
  const config::LimitsConfig& limits_;
  std::chrono::steady_clock::time_point epoch_ = std::chrono::steady_clock::now();
  std::int64_t calls_ = 0;     ///< calls started
  std::int64_t tokens_ = 0;    ///< usage of the calls that ended
  std::int64_t reserved_ = 0;  ///< reservations of the calls in flight
  bool wall_stopped_ = false;
  std::optional<std::string> exceeded_;
  std::shared_ptr<net::CallMeter> meter_ = std::make_shared<net::CallMeter>();
};

}  // namespace dagent::runtime
