#include "observe/metrics.hpp"

#include <algorithm>

#include "executor/run_types.hpp"
#include "text/output_file.hpp"

namespace dagent::observe {

namespace {

// Seconds: from a quick tool call to a long model reply.
const std::vector<double> k_duration_buckets{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
// Seconds: most calls pass at once; a 429's retry-after holds them up to a minute.
const std::vector<double> k_wait_buckets{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
// Inputs per embeddings request (memory.embedding_batch_size and below).
const std::vector<double> k_batch_buckets{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048};

std::string_view status_class(int status) {
  switch (status / 100) {
    case 1: return "1xx";
    case 2: return "2xx";
    case 3: return "3xx";
    case 4: return "4xx";
    case 5: return "5xx";
  }
  return status == 0 ? "error" : "other";
}

// The class's counter for one endpoint, resolved once: the hot path takes no lock.
struct RequestCounters {
  explicit RequestCounters(Family& f, std::string_view endpoint)
      : by_class{f.counter({endpoint, "1xx"}), f.counter({endpoint, "2xx"}), f.counter({endpoint, "3xx"}),
                 f.counter({endpoint, "4xx"}), f.counter({endpoint, "5xx"}), f.counter({endpoint, "error"}),
                 f.counter({endpoint, "other"})} {}
  Counter by_class[7];
  Counter of(int status) const {
    const auto c = status_class(status);
    if (c == "error") return by_class[5];
    if (c == "other") return by_class[6];
    return by_class[c[0] - '1'];
  }
};

const RequestCounters& chat_requests() {
  static const RequestCounters* c = new RequestCounters(metrics().model_requests, "chat");
  return *c;
}

const RequestCounters& embedding_requests() {
  static const RequestCounters* c = new RequestCounters(metrics().model_requests, "embeddings");
  return *c;
}


}  // namespace

Metrics::Metrics(Registry& r)
    : model_requests(r.counter("dagent_model_requests_total",
                               "HTTP requests to the model provider by endpoint and reply status class "
                               "(error: no reply, a transport error); each retry is a request",
                               {"endpoint", "class"})),
      rate_limited(r.counter("dagent_model_rate_limited_total", "429 replies from the model provider").counter()),
      chat_calls(r.counter("dagent_model_calls_total",
                           "Model calls answered by the provider (metrics.llm_calls, metrics.embedding_calls); "
                           "not cache hits or replays",
                           {"endpoint"})
                     .counter({"chat"})),
      embedding_calls(r.counter("dagent_model_calls_total", "", {"endpoint"}).counter({"embeddings"})),
      prompt_tokens(r.counter("dagent_model_tokens_total",
                              "Tokens the provider reported by kind (prompt and completion of chat calls, "
                              "embedding inputs)",
                              {"kind"})
                        .counter({"prompt"})),
      completion_tokens(r.counter("dagent_model_tokens_total", "", {"kind"}).counter({"completion"})),
      embedding_tokens(r.counter("dagent_model_tokens_total", "", {"kind"}).counter({"embedding"})),
      model_retries(r.counter("dagent_model_retries_total", "Model requests sent again after a failed attempt").counter()),
      model_retries_refused(
          r.counter("dagent_model_retries_refused_total", "Retries not made: the retry budget was spent").counter()),
      step_retries(r.counter("dagent_step_retries_total", "Step (and for_each item) attempts after a failed one").counter()),
      rate_limiter_wait(r.histogram("dagent_rate_limiter_wait_seconds",
                                    "Time a model request waited in the rate limiter before it was let through",
                                    {}, k_wait_buckets)
                            .histogram()),
      connections_opened(r.counter("dagent_http_connections_opened_total",
                                   "HTTP connections opened, by peer (model: providers, mcp: MCP servers)", {"peer"})),
      connections_open(r.gauge("dagent_http_connections_open", "HTTP connections open now, in use or idle", {"peer"})),
      connections_idle(r.gauge("dagent_http_connections_idle", "Open HTTP connections idle in their pool", {"peer"})),
      cache_hits_memory(r.counter("dagent_cache_hits_total", "Model calls answered by the response cache, by level",
                                  {"level"})
                            .counter({"memory"})),
      cache_hits_redis(r.counter("dagent_cache_hits_total", "", {"level"}).counter({"redis"})),
      cache_misses(r.counter("dagent_cache_misses_total", "Model calls the response cache could not answer").counter()),
      embedding_batch(r.histogram("dagent_embedding_batch_inputs",
                                  "Texts per embeddings request the memory's batcher sent", {}, k_batch_buckets)
                          .histogram()),
      runs_succeeded(r.counter("dagent_runs_total", "Finished runs by status", {"status"}).counter({"succeeded"})),
      runs_failed(r.counter("dagent_runs_total", "", {"status"}).counter({"failed"})),
      runs_in_flight(r.gauge("dagent_runs_in_flight", "Runs executing now").gauge()),
      runs_queued(r.gauge("dagent_runs_queued", "Runs accepted and waiting to start").gauge()),
      step_duration(r.histogram("dagent_step_duration_seconds", "Duration of the steps that ran, by action and status",
                                {"action", "status"}, k_duration_buckets)),
      item_duration(r.histogram("dagent_for_each_item_duration_seconds",
                                "Duration of the for_each items that ran, by the step's action and the item's status",
                                {"action", "status"}, k_duration_buckets)) {
  // Every fixed label set from the start: a scrape shows 0 rather than nothing.
  for (std::string_view endpoint : {"chat", "embeddings"})
    for (std::string_view c : {"1xx", "2xx", "3xx", "4xx", "5xx", "error", "other"}) model_requests.counter({endpoint, c});
  for (std::string_view peer : {"model", "mcp"}) {
    connections_opened.counter({peer});
    connections_open.gauge({peer});
    connections_idle.gauge({peer});
  }
}

const Metrics& metrics() {
  static const Metrics* m = new Metrics(registry());  // never destroyed, as registry()
  return *m;
}

void model_response(std::string_view api_path, int status) noexcept {
  const auto& requests = api_path.ends_with("/embeddings") ? embedding_requests() : chat_requests();
  requests.of(status).inc();
  if (status == 429) metrics().rate_limited.inc();
}

void chat_tokens(std::int64_t prompt, std::int64_t completion) noexcept {
  const auto& m = metrics();
  m.prompt_tokens.inc(static_cast<std::uint64_t>(std::max<std::int64_t>(prompt, 0)));
  m.completion_tokens.inc(static_cast<std::uint64_t>(std::max<std::int64_t>(completion, 0)));
}

void embedding_tokens(std::int64_t prompt) noexcept {
  metrics().embedding_tokens.inc(static_cast<std::uint64_t>(std::max<std::int64_t>(prompt, 0)));
}

void rate_limiter_waited(std::chrono::nanoseconds wait) noexcept {
  metrics().rate_limiter_wait.observe(std::chrono::duration<double>(wait).count());
}

ConnectionMeters connection_meters(std::string_view peer) {
  const auto& m = metrics();
  return {m.connections_opened.counter({peer}), m.connections_open.gauge({peer}), m.connections_idle.gauge({peer})};
}

void connection_opened(const ConnectionMeters& meters, GaugeLease& open) noexcept {
  meters.opened.inc();
  open.take(meters.open);
}

void record_run(const executor::RunResult& result) {
  const auto& m = metrics();
  (result.status == RunStatus::succeeded ? m.runs_succeeded : m.runs_failed).inc();
  for (const auto& step : result.steps) {
    if (step.attempts > 0)
      m.step_duration.histogram({step.action, to_string(step.status)})
          .observe(std::max(0.0, step.finished_ms - step.started_ms) / 1000.0);
    for (const auto& item : step.items)
      if (item.attempts > 0)
        m.item_duration.histogram({step.action, to_string(item.status)})
            .observe(std::max(0.0, item.finished_ms - item.started_ms) / 1000.0);
  }
}

std::string render() {
  (void)metrics();  // every family listed, before anything was counted too
  return registry().render();
}

boost::system::result<void, std::string> write_metrics_file(const std::filesystem::path& path) {
  if (auto written = text::write_output_file(path, render()); !written)
    return "cannot write metrics file '" + path.string() + "': " + written.error();
  return {};
}

}  // namespace dagent::observe
