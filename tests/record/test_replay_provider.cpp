#include "record/replay_provider.hpp"

#include <catch2/catch.hpp>

#include <algorithm>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "net/net_error.hpp"
#include "net/openai_client.hpp"
#include "record/recording_provider.hpp"
#include "support/process.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent::net;
using namespace dagent::record;
using dagent::test::run_on;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;
using Clock = std::chrono::steady_clock;

constexpr const char* k_api_key = "sk-record-secret-4711";

ChatRequest ask(std::string text) {
  ChatRequest r;
  r.model = "gpt-test";
  r.messages = {{"system", "You are terse."}, {"user", std::move(text)}};
  r.max_tokens = 50;
  r.temperature = 0.2;
  return r;
}

EmbedRequest embedding() { return EmbedRequest{"text-embedding-test", {"alpha beta", "gamma", "delta epsilon"}, 24}; }

OpenAiOptions options_for(const TestServer& server) {
  OpenAiOptions o;
  o.base_url = *parse_base_url(server.base_url());
  o.api_key = k_api_key;
  o.http.connect_timeout = std::chrono::milliseconds(2000);
  o.http.request_timeout = std::chrono::milliseconds(5000);
  o.random01 = [] { return 0.0; };
  return o;
}

// Collects streamed deltas with their arrival offsets from `start`. Not a coroutine.
struct Deltas {
  Clock::time_point start = Clock::now();
  std::vector<std::string> texts;
  std::vector<double> at_ms;
  std::function<void(std::string_view)> sink() {
    return [this](std::string_view d) {
      texts.emplace_back(d);
      at_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    };
  }
};

void check_same(const ChatResponse& a, const ChatResponse& b) {
  CHECK(a.id == b.id);
  CHECK(a.model == b.model);
  CHECK(a.content == b.content);
  CHECK(a.finish_reason == b.finish_reason);
  CHECK(a.usage.prompt_tokens == b.usage.prompt_tokens);
  CHECK(a.usage.completion_tokens == b.usage.completion_tokens);
}

void check_same(const LlmError& a, const LlmError& b) {
  CHECK(a.code == b.code);
  CHECK(a.message == b.message);
  CHECK(a.status == b.status);
  CHECK(a.type == b.type);
  CHECK(a.api_code == b.api_code);
  CHECK(a.attempts == b.attempts);
}

// What the live calls returned, to compare the replay with.
struct Live {
  LlmResult<ChatResponse> hello = ChatResponse{};
  LlmResult<ChatResponse> first = ChatResponse{};
  LlmResult<ChatResponse> second = ChatResponse{};
  LlmResult<ChatResponse> summary = ChatResponse{};
  LlmResult<ChatResponse> streamed = ChatResponse{};
  std::vector<std::string> streamed_deltas;
  LlmResult<EmbedResponse> embedded = EmbedResponse{};
  LlmResult<ChatResponse> failed = ChatResponse{};
};

// Runs every call against a real test server through RecordingProvider into `path`; the server
// is gone when this returns.
Live record_live(const std::filesystem::path& path) {
  TestServer server(TestServerOptions{.script = json::parse(R"({"rules": [
      {"path": "/v1/chat/completions", "contains": "stream me", "stream_chunks": ["Hel", "lo, ", "world"], "stream_interval_ms": 40},
      {"path": "/v1/chat/completions", "contains": "fail me", "status": 400, "body": {"error": {"message": "bad model",
       "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}},
      {"path": "/v1/chat/completions", "contains": "twice", "nth": 1, "reply": "the first answer"},
      {"path": "/v1/chat/completions", "contains": "twice", "reply": "the second answer"}]})")});
  asio::io_context io;
  OpenAiClient client(io.get_executor(), nullptr, options_for(server));
  auto writer = RecordWriter::open(path, false);
  REQUIRE(writer.has_value());
  writer->write({{"type", "header"}, {"format", k_format_version}, {"run_id", "test"}, {"task", "record"}});
  RecordingProvider recorder(client, *writer);

  Live live;
  live.hello = run_on(io, recorder.chat(ask("hello")));
  live.first = run_on(io, recorder.chat(ask("say it twice")));
  live.second = run_on(io, recorder.chat(ask("say it twice")));
  live.summary = run_on(io, recorder.chat(ask("please summarize notes.md")));
  Deltas deltas;
  live.streamed = run_on(io, recorder.chat_stream(ask("stream me"), deltas.sink()));
  live.streamed_deltas = deltas.texts;
  live.embedded = run_on(io, recorder.embed(embedding()));
  live.failed = run_on(io, recorder.chat(ask("fail me")));
  CHECK_FALSE(writer->error());

  REQUIRE(live.hello.has_value());
  REQUIRE(live.first.has_value());
  REQUIRE(live.second.has_value());
  CHECK(live.first->content == "the first answer");
  CHECK(live.second->content == "the second answer");
  REQUIRE(live.streamed.has_value());
  CHECK(live.streamed_deltas == std::vector<std::string>{"Hel", "lo, ", "world"});
  REQUIRE(live.embedded.has_value());
  REQUIRE_FALSE(live.failed.has_value());
  CHECK(live.failed.error().status == 400);
  CHECK(server.stats().at("requests").at("total") == 7);
  return live;
}

}  // namespace

TEST_CASE("calls recorded against a live server replay identically without it", "[record][replay]") {
  TempDir dir;
  const auto path = dir.path() / "run.jsonl";
  const Live live = record_live(path);

  const std::string text = dagent::test::read_text(path);
  CHECK(text.find(k_api_key) == std::string::npos);
  CHECK(text.find("uthorization") == std::string::npos);
  CHECK(text.find("Bearer") == std::string::npos);
  CHECK(text.find("bearer") == std::string::npos);

  auto rec = read_recording(path);
  REQUIRE(rec.has_value());
  CHECK_FALSE(rec->torn_tail);
  REQUIRE(rec->events.size() == 7);
  for (const auto& event : rec->events) {
    CHECK(event.at("type") == "llm");
    CHECK(event.at("fingerprint").as_string() == fingerprint(event.at("request").as_object()));
    CHECK(event.at("ms").as_double() > 0);
  }
  const auto& stream_event = rec->events[4];
  CHECK(stream_event.at("kind") == "chat_stream");
  const auto& chunks = stream_event.at("chunks").as_array();
  REQUIRE(chunks.size() == 3);
  std::vector<double> recorded_at;
  for (const auto& c : chunks) recorded_at.push_back(c.at("at_ms").as_double());
  // Arrival offsets as the client saw them: in order (their spacing depends on the machine's load).
  CHECK(std::is_sorted(recorded_at.begin(), recorded_at.end()));
  CHECK(recorded_at[2] > recorded_at[0]);
  CHECK(rec->events[5].at("kind") == "embed");
  const auto& error = rec->events[6].at("error").as_object();
  CHECK(error.at("code") == "provider_refused");
  CHECK(error.at("status") == 400);
  CHECK(error.at("api_code") == "model_not_found");

  asio::io_context io;
  ReplayProvider replay(io.get_executor(), *rec, StreamTiming::recorded);

  SECTION("chat, embeddings and errors come back as recorded") {
    auto hello = run_on(io, replay.chat(ask("hello")));
    REQUIRE(hello.has_value());
    check_same(*hello, *live.hello);
    auto summary = run_on(io, replay.chat(ask("please summarize notes.md")));
    REQUIRE(summary.has_value());
    check_same(*summary, *live.summary);

    auto embedded = run_on(io, replay.embed(embedding()));
    REQUIRE(embedded.has_value());
    CHECK(embedded->dimension == live.embedded->dimension);
    CHECK(embedded->usage.prompt_tokens == live.embedded->usage.prompt_tokens);
    REQUIRE(embedded->vectors.size() == live.embedded->vectors.size());
    CHECK(std::memcmp(embedded->vectors.data(), live.embedded->vectors.data(), embedded->vectors.size() * sizeof(float)) == 0);

    auto failed = run_on(io, replay.chat(ask("fail me")));
    REQUIRE_FALSE(failed.has_value());
    CHECK(failed.error().code == NetErrc::provider_refused);
    check_same(failed.error(), live.failed.error());

    const auto m = replay.metrics();
    CHECK(m.llm_calls == 2);
    CHECK(m.embedding_calls == 1);
    CHECK(m.prompt_tokens ==
          live.hello->usage.prompt_tokens + live.summary->usage.prompt_tokens + live.embedded->usage.prompt_tokens);
    CHECK(m.completion_tokens == live.hello->usage.completion_tokens + live.summary->usage.completion_tokens);
    CHECK(m.retries == 0);
    CHECK(m.connections_opened == 0);
  }

  SECTION("identical requests are answered in recorded order, then the last repeats") {
    auto a = run_on(io, replay.chat(ask("say it twice")));
    auto b = run_on(io, replay.chat(ask("say it twice")));
    auto c = run_on(io, replay.chat(ask("say it twice")));
    REQUIRE((a && b && c));
    check_same(*a, *live.first);
    check_same(*b, *live.second);
    check_same(*c, *live.second);
  }

  SECTION("a stream replays its chunks no earlier than recorded") {
    Deltas deltas;
    auto streamed = run_on(io, replay.chat_stream(ask("stream me"), deltas.sink()));
    REQUIRE(streamed.has_value());
    check_same(*streamed, *live.streamed);
    CHECK(deltas.texts == live.streamed_deltas);
    CHECK(streamed->content == deltas.texts[0] + deltas.texts[1] + deltas.texts[2]);
    REQUIRE(deltas.at_ms.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      INFO("chunk " << i << " recorded at " << recorded_at[i] << " ms, replayed at " << deltas.at_ms[i] << " ms");
      CHECK(deltas.at_ms[i] >= recorded_at[i]);  // a timer never fires early
    }
  }

  SECTION("with instant timing a stream arrives at once") {
    // Recorded a minute apart: a replay that waited would take minutes, not finish in seconds.
    auto slow = *rec;
    double at = 0;
    for (auto& c : slow.events[4].at("chunks").as_array()) c.as_object()["at_ms"] = (at += 60000.0);
    ReplayProvider instant(io.get_executor(), slow, StreamTiming::instant);
    Deltas deltas;
    auto streamed = run_on(io, instant.chat_stream(ask("stream me"), deltas.sink()));
    REQUIRE(streamed.has_value());
    CHECK(deltas.texts == live.streamed_deltas);
    REQUIRE(deltas.at_ms.size() == 3);
    CHECK(deltas.at_ms[2] < 30000.0);
  }

  SECTION("replay_offset_overflows_clock: offsets far outside the clock's range are bounded") {
    // Before: start + a duration cast from -1e300 ms overflowed (undefined behaviour). A recording
    // is a file: its offsets are untrusted.
    auto odd = *rec;
    for (auto& c : odd.events[4].at("chunks").as_array()) c.as_object()["at_ms"] = -1e300;
    ReplayProvider bounded(io.get_executor(), odd, StreamTiming::recorded);
    Deltas deltas;
    auto streamed = run_on(io, bounded.chat_stream(ask("stream me"), deltas.sink()));
    REQUIRE(streamed.has_value());
    CHECK(deltas.texts == live.streamed_deltas);
  }

  SECTION("a request with one changed word names the difference") {
    auto changed = run_on(io, replay.chat(ask("please summarize plans.md")));
    REQUIRE_FALSE(changed.has_value());
    CHECK(changed.error().code == NetErrc::replay_mismatch);
    CHECK_FALSE(is_unreachable(changed.error()));
    const std::string& message = changed.error().message;
    CHECK_THAT(message, Catch::StartsWith("no recorded chat request matches this one (fingerprint "));
    CHECK_THAT(message, Catch::EndsWith(R"(the closest recorded request differs: messages[1].content: )"
                                        R"(recorded "please summarize notes.md" but got "please summarize plans.md")"));
  }

  SECTION("a plain chat does not match a recorded stream") {
    auto plain = run_on(io, replay.chat(ask("stream me")));
    REQUIRE_FALSE(plain.has_value());
    CHECK(plain.error().code == NetErrc::replay_mismatch);
    CHECK_THAT(plain.error().message, Catch::EndsWith(R"(kind: recorded "chat_stream" but got "chat")"));
  }
}

TEST_CASE("a recording without requests of a kind says so", "[record][replay]") {
  asio::io_context io;
  Recording empty;
  ReplayProvider replay(io.get_executor(), empty, StreamTiming::instant);
  auto embedded = run_on(io, replay.embed(embedding()));
  REQUIRE_FALSE(embedded.has_value());
  CHECK(embedded.error().code == NetErrc::replay_mismatch);
  CHECK_THAT(embedded.error().message, Catch::StartsWith("no recorded embed request matches this one (fingerprint "));
  CHECK_THAT(embedded.error().message, Catch::EndsWith("; the recording has no embed requests"));
  auto chatted = run_on(io, replay.chat(ask("hello")));
  REQUIRE_FALSE(chatted.has_value());
  CHECK_THAT(chatted.error().message, Catch::EndsWith("; the recording has no chat requests"));
  CHECK(replay.metrics().llm_calls == 0);
}
