#include "runtime/lazy_provider.hpp"

#include <cstdlib>

#include "net/net_error.hpp"
#include "net/openai_client.hpp"
#include "net/secret.hpp"
#include "net/tls_context.hpp"
#include "net/url.hpp"
#include "redis/redis_budget.hpp"
#include "text/redact.hpp"

namespace dagent::runtime {

namespace {

net::LlmError unavailable(const std::string& why) {
  return net::LlmError{make_error_code(net::NetErrc::invalid_url), why, 0, {}, {}, 0};
}

const char* base_url_variable() {
  const char* env_url = std::getenv("OPENAI_BASE_URL");
  return env_url && *env_url ? env_url : nullptr;
}

}  // namespace

LazyProvider::LazyProvider(boost::asio::any_io_executor executor, const config::Config& cfg)
    : executor_(std::move(executor)), cfg_(cfg) {
  // The key is masked in every tool output and server text from the start, whether or not the
  // model is ever called (a workspace file may hold it).
  if (!net::api_key_env_problem(cfg_.llm.api_key_env))
    if (const char* key = std::getenv(cfg_.llm.api_key_env.c_str())) text::register_secret(key);
}

LazyProvider::~LazyProvider() = default;

std::string LazyProvider::base_url() const {
  const char* env_url = base_url_variable();
  return env_url ? env_url : cfg_.llm.base_url;
}

std::optional<std::string> LazyProvider::prepare() {
  if (client_ || failure_) return failure_;
  auto url = net::parse_base_url(base_url());
  if (!url) return failure_ = url.error();
  const char* from = base_url_variable() ? "OPENAI_BASE_URL" : "llm.base_url";
  if (auto problem = net::plain_http_problem(*url)) return failure_ = std::string(from) + ": " + *problem;
  if (auto problem = net::api_key_env_problem(cfg_.llm.api_key_env)) return failure_ = "llm.api_key_env: " + *problem;
  const char* key = std::getenv(cfg_.llm.api_key_env.c_str());
  std::string api_key = key ? key : "";
  if (api_key.empty() && !net::is_loopback_host(url->origin.host))
    return failure_ = cfg_.llm.api_key_env + " is not set: the LLM provider at " + url->origin.key() + " needs an API key";

  if (api_key.find_first_of("\r\n") != std::string::npos)
    return failure_ = cfg_.llm.api_key_env + " contains a line break; it cannot be sent as a header";
  text::register_secret(api_key);
  std::shared_ptr<net::TlsContext> tls;
  if (url->origin.tls) {
    auto made = net::TlsContext::create(cfg_.llm.ca_file.empty() ? "" : (cfg_.base_dir / cfg_.llm.ca_file).string());
    if (!made) return failure_ = made.error();
    tls = std::move(*made);
  }
  const auto& perf = cfg_.performance;
  net::OpenAiOptions o;
  o.base_url = std::move(*url);
  o.api_key = std::move(api_key);
  o.http.connect_timeout = std::chrono::milliseconds(cfg_.llm.connect_timeout_ms);
  o.http.request_timeout = std::chrono::milliseconds(cfg_.llm.timeout_ms);
  o.http.pooling = perf.connection_pooling.enabled;
  o.http.max_connections = perf.connection_pooling.max_connections;
  o.http.max_keepalive = perf.connection_pooling.max_keepalive;
  o.http.idle_timeout = std::chrono::milliseconds(perf.connection_pooling.idle_timeout_ms);
  o.max_retries = cfg_.llm.max_retries;
  o.stream_timeout = std::chrono::milliseconds(cfg_.llm.stream_timeout_ms);
  o.stream_max_bytes = static_cast<std::size_t>(cfg_.llm.stream_max_bytes);
  o.retry_budget = cfg_.llm.retry_budget;
  o.retry_budget_min = cfg_.llm.retry_budget_min;
  o.rate_limiting = perf.rate_limiting.enabled;
  o.rpm_limit = perf.rate_limiting.rpm_limit;
  o.tpm_limit = perf.rate_limiting.tpm_limit;
  o.safety_margin = perf.rate_limiting.safety_margin;
  o.rate_window = perf.rate_limiting.window;
  if (perf.rate_limiting.enabled && perf.rate_limiting.shared) {
    auto redis_options = redis::RedisOptions::from(cfg_.redis, cfg_.base_dir);
    if (!redis_options) return failure_ = redis_options.error().message;
    if (!redis_options->password.empty()) text::register_secret(redis_options->password);
    // One budget per API origin, as the local limiter keeps one per client.
    o.shared_budget = std::make_shared<redis::RedisBudget>(redis::RedisClient(executor_, std::move(*redis_options)),
                                                           o.base_url.origin.key(), redis::RedisBudget::process_member());
    o.expected_processes = perf.rate_limiting.expected_processes;
  }
  o.circuit_breaker = perf.circuit_breaker.enabled;
  o.failure_threshold = perf.circuit_breaker.failure_threshold;
  o.open_for = std::chrono::milliseconds(perf.circuit_breaker.open_ms);
  client_ = std::make_unique<net::OpenAiClient>(executor_, std::move(tls), std::move(o));
  return std::nullopt;
}

boost::asio::awaitable<net::LlmResult<net::ChatResponse>> LazyProvider::chat(net::ChatRequest request) {
  if (auto why = prepare()) co_return unavailable(*why);
  co_return co_await client_->chat(std::move(request));
}

boost::asio::awaitable<net::LlmResult<net::ChatResponse>> LazyProvider::chat_stream(
    net::ChatRequest request, std::function<void(std::string_view)> on_delta) {
  if (auto why = prepare()) co_return unavailable(*why);
  co_return co_await client_->chat_stream(std::move(request), std::move(on_delta));
}

boost::asio::awaitable<net::LlmResult<net::EmbedResponse>> LazyProvider::embed(net::EmbedRequest request) {
  if (auto why = prepare()) co_return unavailable(*why);
  co_return co_await client_->embed(std::move(request));
}

net::ProviderMetrics LazyProvider::metrics() const { return client_ ? client_->metrics() : net::ProviderMetrics{}; }

boost::asio::awaitable<int> LazyProvider::warm(int k, net::CallMeter* meter) {
  if (!client_) co_return 0;  // a run that may call the model prepared it; never create it for this
  co_return co_await client_->warm(k, meter);
}

}  // namespace dagent::runtime
