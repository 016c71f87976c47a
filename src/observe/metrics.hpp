#pragma once
// dagent's own Prometheus metrics (README "Metrics (Prometheus)"), in the process-wide registry:
// one short call where each number is born, the run-level ones from a finished RunResult, and the
// exposition written to a file (--metrics-file) or served (GET /metrics).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>

#include "observe/registry.hpp"

namespace dagent::executor {
struct RunResult;
}  // namespace dagent::executor

namespace dagent::observe {

/// The handles of dagent's metrics; families with labels from outside (step actions) are looked
/// up per use through `step_duration` and `item_duration`.
struct Metrics {
  explicit Metrics(Registry& r);

  Family& model_requests;        ///< dagent_model_requests_total{endpoint, class}
  Counter rate_limited;          ///< dagent_model_rate_limited_total (429 replies)
  Counter chat_calls;            ///< dagent_model_calls_total{endpoint="chat"}: metrics.llm_calls
  Counter embedding_calls;       ///< dagent_model_calls_total{endpoint="embeddings"}: metrics.embedding_calls
  Counter prompt_tokens;         ///< dagent_model_tokens_total{kind="prompt"}
  Counter completion_tokens;     ///< dagent_model_tokens_total{kind="completion"}
  Counter embedding_tokens;      ///< dagent_model_tokens_total{kind="embedding"}
  Counter model_retries;         ///< dagent_model_retries_total
  Counter model_retries_refused; ///< dagent_model_retries_refused_total
  Counter step_retries;          ///< dagent_step_retries_total
  Histogram rate_limiter_wait;   ///< dagent_rate_limiter_wait_seconds
  Family& connections_opened;    ///< dagent_http_connections_opened_total{peer}
  Family& connections_open;      ///< dagent_http_connections_open{peer}
  Family& connections_idle;      ///< dagent_http_connections_idle{peer}
  Counter cache_hits_memory;     ///< dagent_cache_hits_total{level="memory"}
  Counter cache_hits_redis;      ///< dagent_cache_hits_total{level="redis"}
  Counter cache_misses;          ///< dagent_cache_misses_total
  Histogram embedding_batch;     ///< dagent_embedding_batch_inputs
  Counter runs_succeeded;        ///< dagent_runs_total{status="succeeded"}
  Counter runs_failed;           ///< dagent_runs_total{status="failed"}
  Gauge runs_in_flight;          ///< dagent_runs_in_flight: set by whoever runs runs (dagent serve)
  Gauge runs_queued;             ///< dagent_runs_queued: set by dagent serve
  Family& step_duration;         ///< dagent_step_duration_seconds{action, status}
  Family& item_duration;         ///< dagent_for_each_item_duration_seconds{action, status}
};

/// dagent's metrics in registry(), registered on first use.
const Metrics& metrics();

enum class CacheLevel { memory, redis };

/// The connection metrics of one kind of peer ("model": providers, "mcp": MCP servers over HTTP),
/// resolved once per HttpClient.
struct ConnectionMeters {
  Counter opened;
  Gauge open;
  Gauge idle;
};
ConnectionMeters connection_meters(std::string_view peer);

// The instrumentation, one call per site.

/// An HTTP reply (or none: `status` 0, a transport error) to a model request on `api_path`
/// ("/chat/completions", "/embeddings"); a 429 is counted in rate_limited too.
void model_response(std::string_view api_path, int status) noexcept;
inline void chat_call() noexcept { metrics().chat_calls.inc(); }
inline void embedding_call() noexcept { metrics().embedding_calls.inc(); }
/// A chat reply's usage, as counted in the run's metrics.
void chat_tokens(std::int64_t prompt, std::int64_t completion) noexcept;
void embedding_tokens(std::int64_t prompt) noexcept;
inline void model_retry() noexcept { metrics().model_retries.inc(); }
inline void model_retry_refused() noexcept { metrics().model_retries_refused.inc(); }
inline void step_retry() noexcept { metrics().step_retries.inc(); }
/// Time a model request spent in the rate limiter before it was let through (or gave up).
void rate_limiter_waited(std::chrono::nanoseconds wait) noexcept;
/// A new connection; `open` holds it in dagent_http_connections_open for as long as it lives.
void connection_opened(const ConnectionMeters& meters, GaugeLease& open) noexcept;
inline void cache_hit(CacheLevel level) noexcept {
  (level == CacheLevel::memory ? metrics().cache_hits_memory : metrics().cache_hits_redis).inc();
}
inline void cache_miss() noexcept { metrics().cache_misses.inc(); }
inline void embedding_batch(std::size_t inputs) noexcept { metrics().embedding_batch.observe(static_cast<double>(inputs)); }

/// A finished run: dagent_runs_total{status}, and the duration of each step (and for_each item)
/// that ran, by action and status. Steps not run (skipped, kept by --resume) are not observed.
void record_run(const executor::RunResult& result);

/// registry().render().
std::string render();

/// Writes render() to `path`: a temporary file beside it, renamed over it (a device or pipe is
/// written in place). The error names the path and the system's reason.
boost::system::result<void, std::string> write_metrics_file(const std::filesystem::path& path);

}  // namespace dagent::observe
