// OpenAiClient: request bodies with Boost.JSON, responses parsed with simdjson at the edge,
// every attempt through the breaker, the limiter and the retry policy.

#include "net/openai_client.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <random>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <simdjson.h>

#include "net/call_meter.hpp"
#include "net/circuit_breaker.hpp"
#include "net/net_error.hpp"
#include "net/rate_limiter.hpp"
#include "net/retry_budget.hpp"
#include "net/retry_policy.hpp"
#include "text/json_utf8.hpp"
#include "text/redact.hpp"
#include "text/utf8.hpp"
#include "net/sse_parser.hpp"
#include "observe/metrics.hpp"
#include "net/tls_context.hpp"

namespace dagent::net {

namespace asio = boost::asio;
namespace json = boost::json;
namespace od = simdjson::ondemand;

boost::asio::awaitable<int> LlmProvider::warm(int, CallMeter*) { co_return 0; }

bool is_unreachable(const LlmError& e) noexcept {
  return e.code == NetErrc::resolve_failed || e.code == NetErrc::connect_failed ||
         e.code == NetErrc::tls_handshake_failed || e.code == NetErrc::connect_timeout ||
         e.code == NetErrc::circuit_open || e.code == NetErrc::no_ca_certificates || e.code == NetErrc::invalid_url ||
         ((e.code == NetErrc::provider_refused || e.code == NetErrc::api_error) && (e.status == 401 || e.status == 403));
}

void throw_exception_from_error(const LlmError& e, const boost::source_location&) {
  throw boost::system::system_error(e.code, e.message);
}

json::object to_json(const ChatRequest& request, bool stream) {
  json::array messages;
  for (const auto& m : request.messages) messages.push_back(json::object{{"role", m.role}, {"content", m.content}});
  json::object body{{"model", request.model}, {"messages", std::move(messages)}};
  if (request.temperature) body["temperature"] = *request.temperature;
  if (request.max_tokens) body["max_tokens"] = *request.max_tokens;
  if (request.json_schema) {
    body["response_format"] = json::object{
        {"type", "json_schema"},
        {"json_schema", json::object{{"name", request.schema_name}, {"schema", *request.json_schema}, {"strict", request.strict}}}};
  }
  if (stream) {
    body["stream"] = true;
    body["stream_options"] = json::object{{"include_usage", true}};
  }
  return body;
}

namespace {

// `text` as a JSON string, escaped exactly as Boost.JSON's serializer does (so chat_body and
// serialize(to_json()) agree byte for byte); UTF-8 is repaired afterwards, on the whole body.
void append_json_string(std::string& out, std::string_view text) {
  static constexpr char k_hex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;  // start of the bytes not yet copied
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.data() + run, i - run);
    run = i + 1;
    out.push_back('\\');
    switch (c) {
      case '"': out.push_back('"'); break;
      case '\\': out.push_back('\\'); break;
      case '\b': out.push_back('b'); break;
      case '\t': out.push_back('t'); break;
      case '\n': out.push_back('n'); break;
      case '\f': out.push_back('f'); break;
      case '\r': out.push_back('r'); break;
      default:
        out.append("u00");
        out.push_back(k_hex[c >> 4]);
        out.push_back(k_hex[c & 15]);
    }
  }
  out.append(text.data() + run, text.size() - run);
  out.push_back('"');
}

}  // namespace

std::string chat_body(const ChatRequest& request, bool stream) {
  std::size_t size = request.model.size() + 64;
  for (const auto& m : request.messages) size += m.role.size() + m.content.size() + 32;
  std::string out;
  out.reserve(size);
  out.append("{\"model\":");
  append_json_string(out, request.model);
  out.append(",\"messages\":[");
  for (std::size_t i = 0; i < request.messages.size(); ++i) {
    out.append(i ? ",{\"role\":" : "{\"role\":");
    append_json_string(out, request.messages[i].role);
    out.append(",\"content\":");
    append_json_string(out, request.messages[i].content);
    out.push_back('}');
  }
  out.push_back(']');
  // Numbers and the schema are rare or small: Boost.JSON writes them, in its own number format.
  if (request.temperature) out.append(",\"temperature\":").append(json::serialize(json::value(*request.temperature)));
  if (request.max_tokens) {
    char digits[24];
    out.append(",\"max_tokens\":").append(digits, std::to_chars(digits, digits + sizeof digits, *request.max_tokens).ptr);
  }
  if (request.json_schema) {
    json::object format{
        {"type", "json_schema"},
        {"json_schema", json::object{{"name", request.schema_name}, {"schema", *request.json_schema}, {"strict", request.strict}}}};
    out.append(",\"response_format\":").append(json::serialize(format));
  }
  if (stream) out.append(",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
  out.push_back('}');
  text::make_valid_utf8(out);
  return out;
}

namespace {

constexpr auto k_token = asio::as_tuple(asio::use_awaitable);

LlmError llm_error(NetErrc code, std::string message, int attempts = 0) {
  return LlmError{make_error_code(code), std::move(message), 0, {}, {}, attempts};
}

// simdjson reads up to SIMDJSON_PADDING bytes past the end: give the body that room.
simdjson::padded_string_view padded(std::string& body) {
  body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  return simdjson::padded_string_view(body.data(), body.size(), body.capacity());
}

// A string field; an escaped lone surrogate ("\udc00") unescapes to bytes that are not UTF-8.
std::string text_of(od::value v) {
  std::string_view s;
  if (v.get_string().get(s) == simdjson::SUCCESS) return text::valid_utf8(s);
  return {};
}

std::int64_t int_of(od::value v) {
  std::int64_t n = 0;
  if (v.get_int64().get(n) == simdjson::SUCCESS) return n;
  return 0;
}

void read_usage(od::object usage, Usage& out) {
  for (auto field : usage) {
    std::string_view key;
    if (field.unescaped_key().get(key)) continue;
    if (key == "prompt_tokens") out.prompt_tokens = int_of(field.value());
    else if (key == "completion_tokens") out.completion_tokens = int_of(field.value());
  }
}

using text::excerpt;

// `text` with every occurrence of the API key masked, should a provider echo it.
std::string redacted(std::string text, const text::Redactor& secrets) {
  secrets.mask(text);
  return text;
}

// The fields of OpenAI's error object {"message", "type", "param", "code"}.
void read_error_object(od::object error, LlmError& e) {
  for (auto field : error) {
    std::string_view key;
    if (field.unescaped_key().get(key)) continue;
    if (key == "message") e.message = text_of(field.value());
    else if (key == "type") e.type = text_of(field.value());
    else if (key == "code") {
      auto v = field.value();
      std::string_view s;
      std::int64_t n;
      if (!v.get_string().get(s)) e.api_code = std::string(s);
      else if (!v.get_int64().get(n)) e.api_code = std::to_string(n);
    }
  }
}

// OpenAI's error body {"error": {...}} into an LlmError: a 4xx is the provider's refusal of this
// request, a 5xx its failure. The key is masked should the provider echo it.
LlmError api_error(int status, std::string& body, od::parser& parser, int attempts, const text::Redactor& api_key) {
  const bool refused = status >= 400 && status < 500;
  LlmError e = llm_error(refused ? NetErrc::provider_refused : NetErrc::api_error, "", attempts);
  e.status = status;
  od::document doc;
  od::object error;
  text::make_valid_utf8(body);  // simdjson refuses a document that is not UTF-8: the message would be lost
  if (!parser.iterate(padded(body)).get(doc) && !doc["error"].get_object().get(error)) read_error_object(error, e);
  const std::string said = excerpt(redacted(e.message.empty() ? body : e.message, api_key));
  std::string text = refused ? "provider refused the request (" + std::to_string(status) + ")"
                             : "API error " + std::to_string(status) +
                                   (e.type.empty() ? "" : " (" + e.type + (e.api_code.empty() ? "" : ", " + e.api_code) + ")");
  e.message = text + ": " + (said.empty() ? "no message" : said);
  return e;
}

// Where a redirect's Location points: its origin (scheme://host:port), or the same origin for a
// relative reference. Never the path or query, which may carry anything.
std::string location_origin(const std::string& location, const Origin& ours) {
  auto ref = boost::urls::parse_uri_reference(location);
  if (!ref) return "an unreadable location";
  if (!ref->has_scheme() && !ref->has_authority()) return ours.key() + " (a relative location)";
  std::string scheme = ref->has_scheme() ? std::string(ref->scheme()) : (ours.tls ? "https" : "http");
  std::string host = ref->encoded_host().decode();
  std::string port = ref->has_port() ? std::string(ref->port()) : scheme == "https" ? "443" : scheme == "http" ? "80" : "";
  return excerpt(scheme + "://" + host + (port.empty() ? "" : ":" + port), 200);
}

// A status below 400 that is not a reply to parse: informational, a redirect, no content. A
// redirect is never followed: the API key goes only to the configured origin.
std::optional<LlmError> unexpected_status(int status, const std::vector<Header>& headers, int attempts,
                                          const Origin& ours) {
  if (status >= 300 && status < 400) {
    const auto* to = find_header(headers, "location");
    return llm_error(NetErrc::protocol_error,
                     "the server answered HTTP " + std::to_string(status) +
                         (to ? " redirecting to " + location_origin(*to, ours) : std::string(" (a redirect without a location)")) +
                         "; redirects are not followed (the API key is sent only to " + ours.key() + ")",
                     attempts);
  }
  if (status < 200) return llm_error(NetErrc::protocol_error, "unexpected HTTP status " + std::to_string(status), attempts);
  if (status == 204 || status == 205)
    return llm_error(NetErrc::protocol_error, "empty reply (" + std::to_string(status) + ")", attempts);
  return std::nullopt;
}

// Why: usage is the provider's claim, and the limiter settles with it; a reply reporting 9.2e18
// completion tokens would leave the token bucket in debt for ages. Each count is clamped to what
// the request could have cost: the prompt to one token per request byte plus the chat template's
// overhead, the completion to max_tokens (or, unset, the largest output any model allows).
constexpr std::int64_t k_prompt_overhead_tokens = 1024;
constexpr std::int64_t k_max_completion_tokens = 1 << 17;

Usage plausible(Usage u, std::size_t request_bytes, std::optional<std::int64_t> max_tokens) {
  const std::int64_t prompt_cap = static_cast<std::int64_t>(request_bytes) + k_prompt_overhead_tokens;
  const std::int64_t completion_cap = max_tokens && *max_tokens >= 0 ? *max_tokens : k_max_completion_tokens;
  u.prompt_tokens = std::clamp<std::int64_t>(u.prompt_tokens, 0, prompt_cap);
  u.completion_tokens = std::clamp<std::int64_t>(u.completion_tokens, 0, completion_cap);
  return u;
}

// Calls `on_field(key, value)` for each field of choices[0] (the only choice dagent asks for).
template <class OnField>
void for_first_choice(od::value choices_value, OnField&& on_field) {
  od::array choices;
  if (choices_value.get_array().get(choices)) return;
  for (auto choice : choices) {
    od::object c;
    if (choice.get_object().get(c)) return;
    for (auto field : c) {
      std::string_view key;
      if (!field.unescaped_key().get(key)) on_field(key, field.value());
    }
    return;
  }
}

LlmResult<ChatResponse> parse_chat(std::string& body, od::parser& parser) {
  ChatResponse out;
  od::document doc;
  od::object root;
  // Model text enters dagent here: bytes that are not UTF-8 become U+FFFD (they are never ASCII,
  // so the JSON around them stands) rather than failing a reply whose text is otherwise fine.
  text::make_valid_utf8(body);
  if (parser.iterate(padded(body)).get(doc) || doc.get_object().get(root))
    return llm_error(NetErrc::protocol_error, "the chat response is not a JSON object");
  bool have_choice = false;
  for (auto field : root) {
    std::string_view key;
    if (field.unescaped_key().get(key)) continue;
    if (key == "id") out.id = text_of(field.value());
    else if (key == "model") out.model = text_of(field.value());
    else if (key == "usage") {
      od::object usage;
      if (!field.value().get_object().get(usage)) read_usage(usage, out.usage);
    } else if (key == "choices") {
      for_first_choice(field.value(), [&](std::string_view ck, od::value v) {
        if (ck == "finish_reason") {
          out.finish_reason = text_of(v);
        } else if (ck == "message") {
          od::object message;
          if (v.get_object().get(message)) return;
          for (auto mf : message) {
            std::string_view mk;
            if (!mf.unescaped_key().get(mk) && mk == "content") out.content = text_of(mf.value());
          }
          have_choice = true;
        }
      });
    }
  }
  if (!have_choice) return llm_error(NetErrc::protocol_error, "the chat response has no choices[0].message");
  return out;
}

LlmResult<EmbedResponse> parse_embeddings(std::string& body, od::parser& parser, std::size_t expected) {
  EmbedResponse out;
  od::document doc;
  od::object root;
  if (parser.iterate(padded(body)).get(doc) || doc.get_object().get(root))
    return llm_error(NetErrc::protocol_error, "the embeddings response is not a JSON object");
  std::vector<std::int64_t> order;
  auto& rows = out.vectors;  // filled in arrival order, straight from the parser
  rows.reserve(expected * 1536);
  for (auto field : root) {
    std::string_view key;
    if (field.unescaped_key().get(key)) continue;
    if (key == "usage") {
      od::object usage;
      if (!field.value().get_object().get(usage)) read_usage(usage, out.usage);
    } else if (key == "data") {
      od::array data;
      if (field.value().get_array().get(data)) return llm_error(NetErrc::protocol_error, "embeddings: data is not a list");
      for (auto item : data) {
        od::object obj;
        if (item.get_object().get(obj)) return llm_error(NetErrc::protocol_error, "embeddings: an item is not an object");
        std::int64_t index = static_cast<std::int64_t>(order.size());
        std::size_t count = 0;
        for (auto f : obj) {
          std::string_view k;
          if (f.unescaped_key().get(k)) continue;
          if (k == "index") index = int_of(f.value());
          else if (k == "embedding") {
            od::array values;
            if (f.value().get_array().get(values))
              return llm_error(NetErrc::protocol_error, "embeddings: the embedding is not a list of numbers");
            for (auto v : values) {
              double d;
              if (v.get_double().get(d)) return llm_error(NetErrc::protocol_error, "embeddings: a value is not a number");
              rows.push_back(static_cast<float>(d));
              ++count;
            }
          }
        }
        if (out.dimension == 0) out.dimension = count;
        if (count != out.dimension || count == 0)
          return llm_error(NetErrc::protocol_error, "embeddings: vectors of different or zero dimension");
        order.push_back(index);
      }
    }
  }
  if (order.size() != expected)
    return llm_error(NetErrc::protocol_error, "embeddings: expected " + std::to_string(expected) + " vectors, got " +
                                                  std::to_string(order.size()));
  bool in_order = true;
  std::vector<bool> seen(expected, false);
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (order[i] < 0 || static_cast<std::size_t>(order[i]) >= expected || seen[static_cast<std::size_t>(order[i])])
      return llm_error(NetErrc::protocol_error, "embeddings: an index is out of range or repeated");
    seen[static_cast<std::size_t>(order[i])] = true;
    in_order = in_order && order[i] == static_cast<std::int64_t>(i);
  }
  if (!in_order) {  // rare: the API may list items out of input order
    std::vector<float> sorted(rows.size());
    for (std::size_t i = 0; i < order.size(); ++i)
      std::copy_n(rows.begin() + static_cast<std::ptrdiff_t>(i * out.dimension), out.dimension,
                  sorted.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(order[i]) * out.dimension));
    rows = std::move(sorted);
  }
  return out;
}

// How long a 429 asks us to hold off (retry-after-ms, or retry-after in seconds), up to 60 s.
std::chrono::milliseconds hold_off(const std::vector<Header>& headers) {
  double ms = 0;
  auto parse = [](const std::string& v, double scale) {
    double x = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
    return ec == std::errc{} && end == v.data() + v.size() && x > 0 ? x * scale : 0.0;
  };
  if (const auto* v = find_header(headers, "retry-after-ms")) ms = parse(*v, 1.0);
  else if (const auto* s = find_header(headers, "retry-after")) ms = parse(*s, 1000.0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::min(ms, 60000.0)));
}

std::int64_t estimate_request_tokens(const std::string& body, std::int64_t max_tokens) {
  return estimate_tokens(body) + max_tokens;
}

}  // namespace

struct OpenAiClient::Impl {
  Impl(asio::any_io_executor ex, std::shared_ptr<TlsContext> tls, OpenAiOptions o)
      : options(std::move(o)),
        http(ex, std::move(tls), options.http),
        limiter(ex, RateLimiterOptions{options.rate_limiting, options.rpm_limit, options.tpm_limit, options.safety_margin,
                                       options.rate_window, options.rate_period, options.shared_budget,
                                       options.expected_processes}),
        retry(options.max_retries, options.random01 ? options.random01 : make_random()),
        budget(options.retry_budget, options.retry_budget_min),
        breaker(options.failure_threshold, options.open_for) {}

  static std::shared_ptr<const text::Redactor> make_secrets(const std::string& api_key) {
    auto all = text::secrets()->secrets();
    all.push_back(api_key);
    return std::make_shared<const text::Redactor>(std::move(all));
  }

  std::function<double()> make_random() {
    auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
    return [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
  }

  static std::vector<Header> make_headers(const std::string& api_key) {
    std::vector<Header> headers{{"content-type", "application/json"}, {"accept", "application/json"}};
    if (!api_key.empty()) headers.push_back({"authorization", "Bearer " + api_key});
    return headers;
  }

  HttpRequest make_request(std::string_view api_path, const std::string& body) const {
    HttpRequest req;
    req.target = options.base_url.target(api_path);
    req.headers = request_headers;
    req.body = body;
    return req;
  }

  StreamLimits stream_limits() const {
    return StreamLimits{options.http.request_timeout, options.stream_timeout, options.stream_max_bytes};
  }

  // The response's x-ratelimit-* headers, as of the call that `reservation` admitted.
  static void observe(RateLimiter::Reservation& reservation, const std::vector<Header>& headers) {
    reservation.observe(read_ratelimit_headers(headers));
  }

  AttemptOutcome outcome_of(int status, const std::vector<Header>& headers) const {
    AttemptOutcome o;
    o.kind = AttemptOutcome::Kind::response;
    o.status = status;
    if (const auto* v = find_header(headers, "x-should-retry")) o.x_should_retry = *v;
    if (const auto* v = find_header(headers, "retry-after-ms")) o.retry_after_ms = *v;
    if (const auto* v = find_header(headers, "retry-after")) o.retry_after = *v;
    return o;
  }

  static AttemptOutcome outcome_of(const HttpError& e) {
    AttemptOutcome o;
    const bool timeout = e.code == make_error_code(NetErrc::request_timeout) ||
                         e.code == make_error_code(NetErrc::connect_timeout) ||
                         e.code == make_error_code(NetErrc::idle_timeout);
    o.kind = timeout ? AttemptOutcome::Kind::timeout : AttemptOutcome::Kind::connection_error;
    return o;
  }

  // Deterministic failures a retry cannot fix: a certificate that does not verify, a bad URL, a
  // request the caller cancelled.
  static bool final_transport_error(const HttpError& e) {
    return e.code == make_error_code(NetErrc::tls_handshake_failed) || e.code == make_error_code(NetErrc::invalid_url) ||
           e.code == make_error_code(NetErrc::cancelled);
  }

  std::string origin_text() const { return options.base_url.origin.key(); }

  OpenAiOptions options;
  // The key (and the process's other known secrets), masked in all text that comes back.
  std::shared_ptr<const text::Redactor> secrets = make_secrets(options.api_key);
  std::vector<Header> request_headers = make_headers(options.api_key);  // the same on every request
  HttpClient http;
  RateLimiter limiter;
  RetryPolicy retry;
  RetryBudget budget;
  CircuitBreaker breaker;
  od::parser parser;
  ProviderMetrics metrics;
  std::chrono::steady_clock::duration rate_limited_pause{0};  // 429 retry-after pauses, summed
  bool schema_in_prompt = false;  // the origin rejected response_format: ask in the prompt instead
};

namespace {

// Reports a call the breaker let through exactly once; a call abandoned midway (cancelled)
// counts as a failure, so a half-open probe can never leave the origin blocked for good.
class BreakerTicket {
 public:
  explicit BreakerTicket(CircuitBreaker& breaker) : breaker_(&breaker) {}
  BreakerTicket(const BreakerTicket&) = delete;
  BreakerTicket& operator=(const BreakerTicket&) = delete;
  ~BreakerTicket() {
    if (breaker_) breaker_->on_failure();
  }
  void success() { std::exchange(breaker_, nullptr)->on_success(); }
  void failure() { std::exchange(breaker_, nullptr)->on_failure(); }

 private:
  CircuitBreaker* breaker_;
};

struct Sent {
  HttpResponse response;
  RateLimiter::Reservation reservation;
  int attempts = 0;
};

// Admits an attempt that holds `reservation`: the breaker's refusal (the reservation goes back
// unspent, since nothing is sent), or nothing. An admitted retry is counted here, so a try the
// breaker blocked is not a retry.
std::optional<LlmError> admit(OpenAiClient::Impl* impl, RateLimiter::Reservation& reservation, int retries,
                              CallMeter* meter) {
  if (impl->options.circuit_breaker && !impl->breaker.allow()) {
    reservation.release_unsent();
    return llm_error(NetErrc::circuit_open,
                     "circuit breaker open for " + impl->origin_text() + " after repeated failures; next try in " +
                         std::to_string(impl->breaker.retry_in().count()) + " ms",
                     retries);
  }
  if (retries > 0) ++impl->metrics.retries;
  if (retries > 0 && meter) ++meter->retries;
  if (retries > 0) observe::model_retry();
  return std::nullopt;
}

LlmError transport_error(const HttpError& e, int attempts) { return LlmError{e.code, e.message, 0, {}, {}, attempts}; }

// An attempt that failed before any response: reports it to the breaker.
AttemptOutcome judge_transport(BreakerTicket& ticket, const HttpError& e) {
  ticket.failure();
  return OpenAiClient::Impl::outcome_of(e);
}

// An error status: tightens the limiter on a 429; only 5xx count against the origin.
AttemptOutcome judge_status(OpenAiClient::Impl* impl, BreakerTicket& ticket, int status,
                            const std::vector<Header>& headers) {
  if (status == 429) impl->limiter.on_429(hold_off(headers));
  if (status >= 500) ticket.failure();
  else ticket.success();
  return impl->outcome_of(status, headers);
}

// Adds the time from construction to destruction (cancellation included) to `total`, and to
// `also` when set.
class PauseClock {
 public:
  PauseClock(std::chrono::steady_clock::duration* total, std::chrono::nanoseconds* also)
      : total_(total), also_(also), start_(std::chrono::steady_clock::now()) {}
  PauseClock(const PauseClock&) = delete;
  PauseClock& operator=(const PauseClock&) = delete;
  ~PauseClock() {
    if (!total_) return;
    const auto paused = std::chrono::steady_clock::now() - start_;
    *total_ += paused;
    if (also_) *also_ += paused;
  }

 private:
  std::chrono::steady_clock::duration* total_;
  std::chrono::nanoseconds* also_;
  std::chrono::steady_clock::time_point start_;
};

// The wait before a retry; after a 429 it counts as rate-limit wait, like the limiter's queue.
asio::awaitable<void> pause(OpenAiClient::Impl* impl, std::chrono::milliseconds delay, bool rate_limited,
                            CallMeter* meter) {
  PauseClock clock(rate_limited ? &impl->rate_limited_pause : nullptr, meter ? &meter->rate_limit_wait : nullptr);
  asio::steady_timer timer(co_await asio::this_coro::executor, delay);
  co_await timer.async_wait(k_token);
}

// The retry budget a call spends from: its caller's (a run's), or the client's own.
RetryBudget& retry_budget_of(OpenAiClient::Impl* impl, CallMeter* meter) {
  return meter && meter->retry_budget ? *meter->retry_budget : impl->budget;
}

// What follows a failed attempt: a retry (after its pause) when the policy wants one and the
// run's retry budget allows it. A retry the budget refuses is counted, and `refused` set so the
// error can say so.
asio::awaitable<bool> retry_after_pause(OpenAiClient::Impl* impl, int retries, AttemptOutcome outcome, bool* refused,
                                        CallMeter* meter) {
  const auto decision = impl->retry.decide(retries, outcome);
  if (!decision.retry) co_return false;
  if (!retry_budget_of(impl, meter).try_spend()) {
    ++impl->metrics.retries_refused;
    if (meter) ++meter->retries_refused;
    observe::model_retry_refused();
    *refused = true;
    co_return false;
  }
  co_await pause(impl, decision.delay, outcome.status == 429, meter);
  co_return true;
}

// Posts `body` with the breaker, the limiter and the retry policy; returns a 2xx response. What
// the attempts cost is counted to `meter` too (null: nowhere).
asio::awaitable<LlmResult<Sent>> post(OpenAiClient::Impl* impl, std::string api_path, std::string body,
                                      std::int64_t estimated_tokens, CallMeter* meter) {
  auto* waited = meter ? &meter->rate_limit_wait : nullptr;
  retry_budget_of(impl, meter).on_call();
  for (int retries = 0;; ++retries) {
    // The limiter first: a wait there that ends in cancellation must not count against the
    // origin, and a breaker probe must not sit in the limiter's queue.
    // Why try first: a call the limiter admits at once (always, when it is off) skips a
    // coroutine frame and its resumption.
    auto granted = impl->limiter.try_acquire(estimated_tokens);
    if (!granted) granted = co_await impl->limiter.acquire(estimated_tokens, waited);
    auto& reservation = *granted;
    if (meter && reservation.fallback()) ++meter->rate_limit_fallback_calls;
    if (auto refused = admit(impl, reservation, retries, meter)) co_return *refused;
    BreakerTicket ticket(impl->breaker);
    auto request = impl->make_request(api_path, body);
    auto sent = co_await impl->http.send(impl->options.base_url.origin, std::move(request), meter);
    observe::model_response(api_path, sent ? sent->status : 0);
    AttemptOutcome outcome;
    if (!sent) {
      if (OpenAiClient::Impl::final_transport_error(sent.error())) {
        ticket.failure();
        co_return transport_error(sent.error(), retries + 1);
      }
      outcome = judge_transport(ticket, sent.error());
    } else {
      impl->observe(reservation, sent->headers);
      if (sent->status < 400) {
        ticket.success();
        if (auto odd = unexpected_status(sent->status, sent->headers, retries + 1, impl->options.base_url.origin))
          co_return *odd;
        if (sent->body.empty())
          co_return llm_error(NetErrc::protocol_error, "empty reply (" + std::to_string(sent->status) + ")", retries + 1);
        co_return Sent{std::move(*sent), std::move(reservation), retries + 1};
      }
      outcome = judge_status(impl, ticket, sent->status, sent->headers);
    }
    bool refused = false;
    if (co_await retry_after_pause(impl, retries, outcome, &refused, meter)) continue;
    LlmError error = !sent ? transport_error(sent.error(), retries + 1)
                           : api_error(sent->status, sent->body, impl->parser, retries + 1, *impl->secrets);
    if (refused) error.message += " (not retried: retry budget exhausted)";
    co_return error;
  }
}

// The request asked in the prompt instead of with response_format: the schema and an
// instruction appended to the system message (or, without one, the last message).
ChatRequest schema_in_prompt(ChatRequest request) {
  if (!request.json_schema) return request;
  std::string instruction =
      "\n\nAnswer with a single JSON value and nothing else (no prose, no code fences). It must be valid against "
      "this JSON Schema:\n" +
      json::serialize(*request.json_schema);
  request.json_schema.reset();
  auto target = std::find_if(request.messages.rbegin(), request.messages.rend(),
                             [](const ChatMessage& m) { return m.role == "system"; });
  if (target != request.messages.rend()) target->content += instruction;
  else if (!request.messages.empty()) request.messages.back().content += instruction;
  else request.messages.push_back({"user", instruction.substr(2)});
  return request;
}

// Whether `e` is a server's refusal of response_format (llama.cpp answers 400 when its grammar
// sampler cannot take the schema), worth asking again in the prompt form.
bool refused_structured_output(const LlmError& e) {
  return e.code == NetErrc::provider_refused && (e.status == 400 || e.status == 422);
}

// The last line of defence: every text of a reply or an error that the server could have filled,
// with the key masked (the content may have been streamed: its deltas were masked as they went).
template <class T>
LlmResult<T> masked(LlmResult<T> r, const text::Redactor& secrets) {
  if (secrets.empty()) return r;
  if (!r) {
    LlmError e = r.error();
    for (auto* field : {&e.message, &e.type, &e.api_code}) secrets.mask(*field);
    return e;
  }
  if constexpr (std::is_same_v<T, ChatResponse>)
    for (auto* field : {&r->content, &r->id, &r->model, &r->finish_reason}) secrets.mask(*field);
  return r;
}

asio::awaitable<LlmResult<ChatResponse>> chat_once(OpenAiClient::Impl* impl, ChatRequest request) {
  std::string body = chat_body(request, false);
  const auto request_bytes = body.size();
  const auto estimate = estimate_request_tokens(body, request.max_tokens.value_or(1024));
  auto* meter = request.meter.get();
  auto sent = co_await post(impl, "/chat/completions", std::move(body), estimate, meter);
  if (!sent) co_return sent.error();
  ++impl->metrics.llm_calls;
  if (meter) ++meter->llm_calls;
  observe::chat_call();
  auto parsed = parse_chat(sent->response.body, impl->parser);
  if (!parsed) co_return parsed.error();
  parsed->usage = plausible(parsed->usage, request_bytes, request.max_tokens);
  impl->metrics.prompt_tokens += parsed->usage.prompt_tokens;
  impl->metrics.completion_tokens += parsed->usage.completion_tokens;
  if (meter) meter->prompt_tokens += parsed->usage.prompt_tokens;
  if (meter) meter->completion_tokens += parsed->usage.completion_tokens;
  observe::chat_tokens(parsed->usage.prompt_tokens, parsed->usage.completion_tokens);
  sent->reservation.reconcile(parsed->usage.prompt_tokens + parsed->usage.completion_tokens);
  co_return std::move(*parsed);
}

}  // namespace

OpenAiClient::OpenAiClient(asio::any_io_executor executor, std::shared_ptr<TlsContext> tls, OpenAiOptions options)
    : impl_(std::make_unique<Impl>(std::move(executor), std::move(tls), std::move(options))) {}

OpenAiClient::~OpenAiClient() = default;

ProviderMetrics OpenAiClient::metrics() const {
  auto m = impl_->metrics;
  m.connections_opened = impl_->http.connections_opened();
  m.rate_limit_fallback_calls = impl_->limiter.shared_stats().fallback_grants;
  m.rate_limit_wait_ms = std::chrono::duration<double, std::milli>(impl_->limiter.total_wait() + impl_->rate_limited_pause).count();
  return m;
}

void OpenAiClient::reset_retry_budget() { impl_->budget.reset(); }

asio::awaitable<int> OpenAiClient::warm(int k, CallMeter* meter) {
  return impl_->http.warm(impl_->options.base_url.origin, k, meter);
}

asio::awaitable<LlmResult<ChatResponse>> OpenAiClient::chat(ChatRequest request) {
  auto result = co_await chat_unmasked(std::move(request));
  co_return masked(std::move(result), *impl_->secrets);
}

asio::awaitable<LlmResult<ChatResponse>> OpenAiClient::chat_unmasked(ChatRequest request) {
  auto* impl = impl_.get();
  if (impl->schema_in_prompt) co_return co_await chat_once(impl, schema_in_prompt(std::move(request)));
  auto result = co_await chat_once(impl, request);
  if (result || !request.json_schema || !refused_structured_output(result.error())) co_return result;
  auto fallback = co_await chat_once(impl, schema_in_prompt(std::move(request)));
  if (fallback) impl->schema_in_prompt = true;
  // Refused in both forms: the request itself is refused; the first answer says why.
  if (!fallback && fallback.error().code == NetErrc::provider_refused) co_return result;
  co_return fallback;
}

asio::awaitable<LlmResult<EmbedResponse>> OpenAiClient::embed(EmbedRequest request) {
  auto result = co_await embed_unmasked(std::move(request));
  co_return masked(std::move(result), *impl_->secrets);
}

asio::awaitable<LlmResult<EmbedResponse>> OpenAiClient::embed_unmasked(EmbedRequest request) {
  auto* impl = impl_.get();
  json::array inputs;
  for (const auto& in : request.inputs) inputs.emplace_back(in);
  json::object payload{{"model", request.model}, {"input", std::move(inputs)}, {"encoding_format", "float"}};
  if (request.dimensions) payload["dimensions"] = *request.dimensions;
  std::string body = text::serialize_valid(payload);
  const auto request_bytes = body.size();
  const auto estimate = estimate_request_tokens(body, 0);
  auto* meter = request.meter.get();
  auto sent = co_await post(impl, "/embeddings", std::move(body), estimate, meter);
  if (!sent) co_return sent.error();
  ++impl->metrics.embedding_calls;
  if (meter) ++meter->embedding_calls;
  observe::embedding_call();
  auto parsed = parse_embeddings(sent->response.body, impl->parser, request.inputs.size());
  if (!parsed) co_return parsed.error();
  parsed->usage = plausible(parsed->usage, request_bytes, 0);
  impl->metrics.prompt_tokens += parsed->usage.prompt_tokens;
  if (meter) meter->prompt_tokens += parsed->usage.prompt_tokens;
  observe::embedding_tokens(parsed->usage.prompt_tokens);
  sent->reservation.reconcile(parsed->usage.prompt_tokens);
  co_return std::move(*parsed);
}

namespace {

// An `error` inside a stream (a JSON `{"error": {...}}` chunk, or an `event: error`) with the
// provider's message.
LlmError stream_error(LlmError e, const std::string& data, int attempts, const text::Redactor& api_key) {
  e.code = make_error_code(NetErrc::api_error);
  e.attempts = attempts;
  const std::string said = excerpt(redacted(e.message.empty() ? data : e.message, api_key));
  e.message = "the provider reported an error inside the stream: " + (said.empty() ? "no message" : said);
  return e;
}

// Reads SSE chunks of a chat stream into `out`, calling `on_delta` per piece of content.
asio::awaitable<LlmResult<ChatResponse>> read_chat_stream(OpenAiClient::Impl* impl, HttpStream& stream,
                                                          std::function<void(std::string_view)> on_delta,
                                                          int attempts) {
  SseParser sse;
  text::StreamRedactor masker(impl->secrets);  // a key split across two deltas is masked too
  std::vector<SseEvent> events;
  std::string bytes;
  ChatResponse out;
  bool done = false;
  while (!done) {
    bytes.clear();
    auto got = co_await stream.read_some(bytes);
    if (!got) co_return LlmError{got.error().code, got.error().message, 0, {}, {}, attempts};
    if (*got == 0) break;
    events.clear();
    if (auto fed = sse.feed(bytes, events); !fed)
      co_return LlmError{fed.error(), "invalid event stream: " + fed.error().message(), 0, {}, {}, attempts};
    for (auto& ev : events) {
      if (is_done_marker(ev)) {
        done = true;
        break;
      }
      od::document doc;
      od::object root;
      // As parse_chat: each chunk is repaired whole, so a character split across two chunks (a
      // server bug) becomes U+FFFD twice rather than failing the stream.
      text::make_valid_utf8(ev.data);
      const bool is_object = !impl->parser.iterate(padded(ev.data)).get(doc) && !doc.get_object().get(root);
      // Some servers name the event instead: `event: error` with {"message": ...} or plain text.
      const bool error_event = ev.event == "error";
      if (error_event && !is_object) co_return stream_error(LlmError{}, ev.data, attempts, *impl->secrets);
      if (!is_object) co_return llm_error(NetErrc::protocol_error, "a stream chunk is not a JSON object", attempts);
      LlmError named;
      for (auto field : root) {
        std::string_view key;
        if (field.unescaped_key().get(key)) continue;
        if (error_event && key == "message") named.message = text_of(field.value());
        else if (key == "id" && out.id.empty()) out.id = text_of(field.value());
        else if (key == "model" && out.model.empty()) out.model = text_of(field.value());
        else if (key == "usage") {
          od::object usage;
          if (!field.value().get_object().get(usage)) read_usage(usage, out.usage);
        } else if (key == "error") {
          LlmError e;
          od::object error;
          if (!field.value().get_object().get(error)) read_error_object(error, e);
          else e.message = text_of(field.value());
          co_return stream_error(std::move(e), ev.data, attempts, *impl->secrets);
        } else if (key == "choices") {
          for_first_choice(field.value(), [&](std::string_view ck, od::value v) {
            if (ck == "finish_reason") {
              auto reason = text_of(v);
              if (!reason.empty()) out.finish_reason = std::move(reason);
            } else if (ck == "delta") {
              od::object delta;
              if (v.get_object().get(delta)) return;
              for (auto df : delta) {
                std::string_view dk;
                if (df.unescaped_key().get(dk) || dk != "content") continue;
                std::string_view piece;
                if (df.value().get_string().get(piece) || piece.empty()) continue;
                std::string repaired;  // see text_of; a valid piece is not copied
                if (!text::is_valid_utf8(piece)) piece = repaired = text::valid_utf8(piece);
                out.content.append(piece);
                if (on_delta)
                  if (const auto shown = masker.feed(piece); !shown.empty()) on_delta(shown);
              }
            }
          });
        }
      }
      if (error_event) co_return stream_error(std::move(named), ev.data, attempts, *impl->secrets);
    }
  }
  // Why: a stream cut short must never pass for a complete answer.
  if (!done) co_return llm_error(NetErrc::truncated, "the stream ended before [DONE]", attempts);
  if (on_delta)
    if (const auto rest = masker.finish(); !rest.empty()) on_delta(rest);
  co_return out;
}

asio::awaitable<LlmResult<ChatResponse>> chat_stream_once(OpenAiClient::Impl* impl, ChatRequest request,
                                                          std::function<void(std::string_view)> on_delta) {
  const std::string body = chat_body(request, true);
  const auto estimate = estimate_request_tokens(body, request.max_tokens.value_or(1024));
  auto* meter = request.meter.get();
  auto* waited = meter ? &meter->rate_limit_wait : nullptr;
  retry_budget_of(impl, meter).on_call();
  for (int retries = 0;; ++retries) {
    auto granted = impl->limiter.try_acquire(estimate);  // as in post()
    if (!granted) granted = co_await impl->limiter.acquire(estimate, waited);
    auto& reservation = *granted;
    if (meter && reservation.fallback()) ++meter->rate_limit_fallback_calls;
    if (auto refused = admit(impl, reservation, retries, meter)) co_return *refused;
    BreakerTicket ticket(impl->breaker);
    auto http_request = impl->make_request("/chat/completions", body);
    auto opened = co_await impl->http.open_stream(impl->options.base_url.origin, std::move(http_request),
                                                  impl->stream_limits(), meter);
    observe::model_response("/chat/completions", opened ? opened->status() : 0);
    AttemptOutcome outcome;
    std::string error_body;
    if (!opened) {
      if (OpenAiClient::Impl::final_transport_error(opened.error())) {
        ticket.failure();
        co_return transport_error(opened.error(), retries + 1);
      }
      outcome = judge_transport(ticket, opened.error());
    } else {
      impl->observe(reservation, opened->headers());
      if (opened->status() < 400) {
        ticket.success();
        if (auto odd = unexpected_status(opened->status(), opened->headers(), retries + 1, impl->options.base_url.origin))
          co_return *odd;
        ++impl->metrics.llm_calls;
        if (meter) ++meter->llm_calls;
        observe::chat_call();
        // From here on the stream has started: it is never retried.
        auto result = co_await read_chat_stream(impl, *opened, std::move(on_delta), retries + 1);
        if (result) {
          result->usage = plausible(result->usage, body.size(), request.max_tokens);
          impl->metrics.prompt_tokens += result->usage.prompt_tokens;
          impl->metrics.completion_tokens += result->usage.completion_tokens;
          if (meter) meter->prompt_tokens += result->usage.prompt_tokens;
          if (meter) meter->completion_tokens += result->usage.completion_tokens;
          observe::chat_tokens(result->usage.prompt_tokens, result->usage.completion_tokens);
          reservation.reconcile(result->usage.prompt_tokens + result->usage.completion_tokens);
        }
        co_return result;
      }
      auto rest = co_await opened->read_all(1u << 20);
      if (rest) error_body = std::move(*rest);
      outcome = judge_status(impl, ticket, opened->status(), opened->headers());
    }
    bool refused = false;
    if (co_await retry_after_pause(impl, retries, outcome, &refused, meter)) continue;
    LlmError error = !opened ? transport_error(opened.error(), retries + 1)
                             : api_error(opened->status(), error_body, impl->parser, retries + 1, *impl->secrets);
    if (refused) error.message += " (not retried: retry budget exhausted)";
    co_return error;
  }
}

}  // namespace

asio::awaitable<LlmResult<ChatResponse>> OpenAiClient::chat_stream(ChatRequest request,
                                                                   std::function<void(std::string_view)> on_delta) {
  auto result = co_await chat_stream_unmasked(std::move(request), std::move(on_delta));
  co_return masked(std::move(result), *impl_->secrets);
}

asio::awaitable<LlmResult<ChatResponse>> OpenAiClient::chat_stream_unmasked(ChatRequest request,
                                                                            std::function<void(std::string_view)> on_delta) {
  auto* impl = impl_.get();
  if (impl->schema_in_prompt)
    co_return co_await chat_stream_once(impl, schema_in_prompt(std::move(request)), std::move(on_delta));
  // A refusal arrives before any delta, so the fallback below never repeats one.
  auto result = co_await chat_stream_once(impl, request, on_delta);
  if (result || !request.json_schema || !refused_structured_output(result.error())) co_return result;
  auto fallback = co_await chat_stream_once(impl, schema_in_prompt(std::move(request)), std::move(on_delta));
  if (fallback) impl->schema_in_prompt = true;
  if (!fallback && fallback.error().code == NetErrc::provider_refused) co_return result;
  co_return fallback;
}

}  // namespace dagent::net
