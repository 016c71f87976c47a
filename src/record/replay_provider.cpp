#include "record/replay_provider.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/value.hpp>

#include "net/call_meter.hpp"
#include "net/net_error.hpp"
#include "record/llm_event.hpp"

namespace dagent::record {

namespace asio = boost::asio;
namespace json = boost::json;
using net::NetErrc;

namespace {

constexpr auto k_token = asio::as_tuple(asio::use_awaitable);

bool is_embed(const json::object& request) {
  const json::value* kind = request.if_contains("kind");
  return kind && kind->is_string() && kind->get_string() == to_string(CallKind::embed);
}

// The recorded outcome of a call: its error, or its response decoded by `decode`.
template <class T>
net::LlmResult<T> outcome(const json::object& event, net::LlmResult<T> (*decode)(const json::object&)) {
  if (const json::value* error = event.if_contains("error"); error && error->is_object())
    return error_from_json(error->get_object());
  if (const json::value* response = event.if_contains("response"); response && response->is_object())
    return decode(response->get_object());
  return net::LlmError{make_error_code(NetErrc::protocol_error),
                       "malformed recording: an llm event has neither a response nor an error", 0, {}, {}, 0};
}

// Counts a replayed chat call in `metrics` and in the call's `meter` (may be null).
void count_chat(net::ProviderMetrics& metrics, net::CallMeter* meter, const net::LlmResult<net::ChatResponse>& result) {
  if (!result) return;
  ++metrics.llm_calls;
  metrics.prompt_tokens += result->usage.prompt_tokens;
  metrics.completion_tokens += result->usage.completion_tokens;
  if (!meter) return;
  ++meter->llm_calls;
  meter->prompt_tokens += result->usage.prompt_tokens;
  meter->completion_tokens += result->usage.completion_tokens;
}

}  // namespace

ReplayProvider::ReplayProvider(asio::any_io_executor executor, const Recording& recording, StreamTiming timing)
    : executor_(std::move(executor)), timing_(timing) {
  for (const auto& event : recording.events) {
    const json::value* type = event.if_contains("type");
    const json::value* request = event.if_contains("request");
    if (!type || *type != "llm" || !request || !request->is_object()) continue;
    // Indexed by the fingerprint of the recorded request rather than the stored one: matching
    // then follows this build's normalization even if the recording came from another build.
    by_fingerprint_[fingerprint(request->get_object())].push_back(Recorded{request->get_object(), event});
  }
}

const json::object* ReplayProvider::next_event(const std::string& print) {
  auto it = by_fingerprint_.find(print);
  if (it == by_fingerprint_.end()) return nullptr;
  std::size_t& served = served_[print];
  const auto& answers = it->second;
  const Recorded& answer = answers[std::min(served, answers.size() - 1)];
  ++served;
  return &answer.event;
}

net::LlmError ReplayProvider::no_match(const json::object& wanted) const {
  const bool embed = is_embed(wanted);
  const json::value* kind = wanted.if_contains("kind");
  const std::string_view kind_name = kind && kind->is_string() ? std::string_view(kind->get_string()) : "";
  // The same request recorded as the other chat kind (streaming switched on or off) is the likely
  // story, so it wins over a request of the right kind with other content.
  json::object other_kind;
  if (!embed) {
    other_kind = wanted;
    other_kind["kind"] = to_string(kind_name == to_string(CallKind::chat_stream) ? CallKind::chat : CallKind::chat_stream);
  }
  const Recorded* closest = nullptr;
  std::size_t best = std::numeric_limits<std::size_t>::max();
  for (const auto& [print, answers] : by_fingerprint_) {
    const Recorded& candidate = answers.front();
    if (is_embed(candidate.request) != embed) continue;
    const auto d = !embed && candidate.request == other_kind ? 0 : request_distance(candidate.request, wanted);
    if (d < best) {
      best = d;
      closest = &candidate;
    }
  }
  std::string message = "no recorded " + std::string(kind_name) +
                        " request matches this one (fingerprint " + fingerprint(wanted).substr(0, 12) + "…); ";
  if (closest) message += "the closest recorded request differs: " + describe_difference(closest->request, wanted);
  else message += embed ? "the recording has no embed requests" : "the recording has no chat requests";
  return net::LlmError{make_error_code(NetErrc::replay_mismatch), std::move(message), 0, {}, {}, 0};
}

asio::awaitable<net::LlmResult<net::ChatResponse>> ReplayProvider::chat(net::ChatRequest request) {
  const auto wanted = normalize(request, CallKind::chat);
  const json::object* event = next_event(fingerprint(wanted));
  if (!event) co_return no_match(wanted);
  auto result = outcome(*event, &chat_response_from_json);
  count_chat(metrics_, request.meter.get(), result);
  co_return result;
}

asio::awaitable<net::LlmResult<net::ChatResponse>> ReplayProvider::chat_stream(
    net::ChatRequest request, std::function<void(std::string_view)> on_delta) {
  const auto start = std::chrono::steady_clock::now();
  const auto wanted = normalize(request, CallKind::chat_stream);
  const json::object* event = next_event(fingerprint(wanted));
  if (!event) co_return no_match(wanted);
  auto result = outcome(*event, &chat_response_from_json);
  // Copied out: nothing that points into the provider is held across the waits below.
  json::array chunks;
  if (const json::value* recorded = event->if_contains("chunks"); recorded && recorded->is_array())
    chunks = recorded->get_array();

  asio::steady_timer timer(executor_);
  for (const auto& chunk : chunks) {
    const json::object* c = chunk.if_object();
    const json::value* text = c ? c->if_contains("text") : nullptr;
    if (!text || !text->is_string()) continue;
    const json::value* at = c->if_contains("at_ms");
    if (timing_ == StreamTiming::recorded && at && at->is_number()) {
      // The offset comes from a file: bounded (0 .. a day) before it is turned into a deadline,
      // so a huge, negative or non-finite value cannot overflow the clock.
      constexpr double k_max_offset_ms = 24.0 * 3600 * 1000;
      const double ms = std::clamp(at->to_number<double>(), 0.0, k_max_offset_ms);
      const std::chrono::duration<double, std::milli> offset(ms == ms ? ms : 0.0);
      timer.expires_at(start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(offset));
      auto wait = timer.async_wait(k_token);
      auto [ec] = co_await std::move(wait);
      if (ec)
        co_return net::LlmError{make_error_code(NetErrc::cancelled), "cancelled: the replayed stream was cancelled", 0, {}, {}, 0};
    }
    if (on_delta) on_delta(text->get_string());
  }
  count_chat(metrics_, request.meter.get(), result);
  co_return result;
}

namespace {

std::string input_key(std::string_view model, const json::value* dimensions, std::string_view input) {
  std::string key(model);
  key += '\n';
  if (dimensions && dimensions->is_number()) key += std::to_string(dimensions->to_number<std::int64_t>());
  key += '\n';
  key += input;
  return key;
}

}  // namespace

void ReplayProvider::index_inputs() {
  indexed_inputs_ = true;
  for (const auto& [fp, recorded] : by_fingerprint_) {
    for (const auto& r : recorded) {
      if (!is_embed(r.request)) continue;
      const auto* response = r.event.if_contains("response");
      const auto* inputs = r.request.if_contains("input");
      const auto* model = r.request.if_contains("model");
      if (!response || !response->is_object() || !inputs || !inputs->is_array() || !model || !model->is_string()) continue;
      auto parsed = embed_response_from_json(response->get_object());
      if (!parsed || parsed->size() != inputs->get_array().size()) continue;
      const auto& list = inputs->get_array();
      for (std::size_t i = 0; i < list.size(); ++i) {
        if (!list[i].is_string()) continue;
        auto row = parsed->vector(i);
        inputs_.emplace(input_key(model->get_string(), r.request.if_contains("dimensions"), list[i].get_string()),
                        std::vector<float>(row.begin(), row.end()));
      }
    }
  }
}

asio::awaitable<net::LlmResult<net::EmbedResponse>> ReplayProvider::embed(net::EmbedRequest request) {
  const auto wanted = normalize(request);
  const json::object* event = next_event(fingerprint(wanted));
  if (!event) {
    // Batching groups concurrent inputs by timing, which a replay does not reproduce: answer
    // input by input from every recorded batch before calling it a mismatch.
    if (!indexed_inputs_) index_inputs();
    net::EmbedResponse assembled;
    const auto* dimensions = wanted.if_contains("dimensions");
    for (const auto& input : request.inputs) {
      const auto it = inputs_.find(input_key(request.model, dimensions, input));
      if (it == inputs_.end()) co_return no_match(wanted);
      if (assembled.dimension == 0) assembled.dimension = it->second.size();
      if (it->second.size() != assembled.dimension) co_return no_match(wanted);
      assembled.vectors.insert(assembled.vectors.end(), it->second.begin(), it->second.end());
    }
    ++metrics_.embedding_calls;
    if (request.meter) ++request.meter->embedding_calls;
    co_return assembled;
  }
  auto result = outcome(*event, &embed_response_from_json);
  if (result) {
    ++metrics_.embedding_calls;
    metrics_.prompt_tokens += result->usage.prompt_tokens;
    if (request.meter) ++request.meter->embedding_calls;
    if (request.meter) request.meter->prompt_tokens += result->usage.prompt_tokens;
  }
  co_return result;
}

}  // namespace dagent::record
