#pragma once
// What one caller's model calls cost (a run's, when several runs share one provider): the
// counters of ProviderMetrics, counted per call. A request names its meter (ChatRequest::meter,
// EmbedRequest::meter); every layer that counts the call in its own metrics adds it there too.

#include <chrono>
#include <cstdint>

#include "net/llm_provider.hpp"

#include <optional>

#include "net/retry_budget.hpp"

namespace dagent::net {

/// The counters of ProviderMetrics for the calls that named this meter. Lives on the loop. Held
/// by a shared_ptr: work a call leaves running (a write to the shared cache, an embedding batch
/// whose caller was cancelled) counts into it even after its owner stopped reading it.
struct CallMeter {
  std::int64_t llm_calls = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t embedding_calls = 0;
  std::int64_t retries = 0;
  std::int64_t retries_refused = 0;
  /// In the limiter's queue and in 429 retry-after pauses. Why nanoseconds: the meters of all
  /// callers then add up exactly to the provider's wait, which it sums in nanoseconds too.
  std::chrono::nanoseconds rate_limit_wait{0};
  std::int64_t cache_hits = 0;
  std::int64_t cache_l2_hits = 0;
  std::int64_t cache_l2_errors = 0;
  std::int64_t connections_opened = 0;
  std::int64_t rate_limit_fallback_calls = 0;
  /// The caller's own llm.retry_budget (a run's): when set, the client counts the calls and
  /// retries of this meter's calls against it instead of its own, so concurrent runs sharing one
  /// client each get the budget of a run.
  std::optional<RetryBudget> retry_budget;

  /// The counters as ProviderMetrics report them (the wait in milliseconds).
  ProviderMetrics metrics() const noexcept;
  CallMeter& operator+=(const CallMeter& other) noexcept;
};

}  // namespace dagent::net
