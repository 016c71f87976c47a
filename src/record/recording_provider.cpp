#include "record/recording_provider.hpp"

#include <memory>
#include <utility>

#include <boost/json/value.hpp>

#include "record/fingerprint.hpp"
#include "record/llm_event.hpp"

namespace dagent::record {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// The event's head; the caller adds the outcome, then "ms" last.
json::object llm_event(CallKind kind, json::object request) {
  std::string print = fingerprint(request);
  return {{"type", "llm"}, {"kind", to_string(kind)}, {"fingerprint", std::move(print)}, {"request", std::move(request)}};
}

// Awaits `call` (not started yet) and writes `event` with its outcome; `chunks`, for a stream,
// were collected by a ChunkRecorder from the same `start`.
template <class T>
boost::asio::awaitable<net::LlmResult<T>> record_call(RecordWriter& writer, json::object event, Clock::time_point start,
                                                      std::shared_ptr<json::array> chunks,
                                                      boost::asio::awaitable<net::LlmResult<T>> call) {
  auto result = co_await std::move(call);
  if (result) event["response"] = to_json(*result);
  else event["error"] = to_json(result.error());
  if (chunks) event["chunks"] = std::move(*chunks);
  event["ms"] = ms_since(start);
  writer.write(event);
  co_return result;
}

// Passes each delta on and notes when it arrived. Not a coroutine, so capturing is safe.
struct ChunkRecorder {
  std::function<void(std::string_view)> on_delta;
  std::shared_ptr<json::array> chunks;
  Clock::time_point start;
  void operator()(std::string_view text) const {
    chunks->push_back(json::object{{"at_ms", ms_since(start)}, {"text", text}});
    if (on_delta) on_delta(text);
  }
};

}  // namespace

RecordingProvider::RecordingProvider(net::LlmProvider& inner, RecordWriter& writer) : inner_(inner), writer_(writer) {}

boost::asio::awaitable<net::LlmResult<net::ChatResponse>> RecordingProvider::chat(net::ChatRequest request) {
  auto event = llm_event(CallKind::chat, normalize(request, CallKind::chat));
  auto op = record_call(writer_, std::move(event), Clock::now(), nullptr, inner_.chat(std::move(request)));
  co_return co_await std::move(op);
}

boost::asio::awaitable<net::LlmResult<net::ChatResponse>> RecordingProvider::chat_stream(
    net::ChatRequest request, std::function<void(std::string_view)> on_delta) {
  auto event = llm_event(CallKind::chat_stream, normalize(request, CallKind::chat_stream));
  const auto start = Clock::now();
  // Shared: the inner provider may keep its copy of the callback a little longer than the call.
  auto chunks = std::make_shared<json::array>();
  std::function<void(std::string_view)> recorder = ChunkRecorder{std::move(on_delta), chunks, start};
  auto call = inner_.chat_stream(std::move(request), std::move(recorder));
  auto op = record_call(writer_, std::move(event), start, std::move(chunks), std::move(call));
  co_return co_await std::move(op);
}

boost::asio::awaitable<net::LlmResult<net::EmbedResponse>> RecordingProvider::embed(net::EmbedRequest request) {
  auto event = llm_event(CallKind::embed, normalize(request));
  auto op = record_call(writer_, std::move(event), Clock::now(), nullptr, inner_.embed(std::move(request)));
  co_return co_await std::move(op);
}

}  // namespace dagent::record
