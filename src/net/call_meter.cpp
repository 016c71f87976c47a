#include "net/call_meter.hpp"

namespace dagent::net {

ProviderMetrics CallMeter::metrics() const noexcept {
  ProviderMetrics m;
  m.llm_calls = llm_calls;
  m.prompt_tokens = prompt_tokens;
  m.completion_tokens = completion_tokens;
  m.embedding_calls = embedding_calls;
  m.retries = retries;
  m.retries_refused = retries_refused;
  m.rate_limit_wait_ms = std::chrono::duration<double, std::milli>(rate_limit_wait).count();
  m.cache_hits = cache_hits;
  m.cache_l2_hits = cache_l2_hits;
  m.cache_l2_errors = cache_l2_errors;
  m.connections_opened = connections_opened;
  m.rate_limit_fallback_calls = rate_limit_fallback_calls;
  return m;
}

CallMeter& CallMeter::operator+=(const CallMeter& o) noexcept {
  llm_calls += o.llm_calls;
  prompt_tokens += o.prompt_tokens;
  completion_tokens += o.completion_tokens;
  embedding_calls += o.embedding_calls;
  retries += o.retries;
  retries_refused += o.retries_refused;
  rate_limit_wait += o.rate_limit_wait;
  cache_hits += o.cache_hits;
  cache_l2_hits += o.cache_l2_hits;
  cache_l2_errors += o.cache_l2_errors;
  connections_opened += o.connections_opened;
  rate_limit_fallback_calls += o.rate_limit_fallback_calls;
  return *this;
}

}  // namespace dagent::net
