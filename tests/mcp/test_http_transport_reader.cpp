#include "mcp/http_transport_reader.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace {

namespace json = boost::json;
using dagent::mcp::http_body_kind;
using dagent::mcp::HttpBodyKind;
using dagent::mcp::HttpTransportReader;

struct Read {
  std::vector<json::object> messages;
  std::string error;  // of feed or finish, the first one
  bool answered = false;
};

// Feeds `body` in pieces of `step` bytes (0: whole), then finishes.
Read read(HttpBodyKind kind, std::optional<json::value> id, std::string_view body, std::size_t step,
          std::size_t max = 1 << 20) {
  HttpTransportReader reader(kind, std::move(id), max);
  Read out;
  for (std::size_t at = 0; at < body.size() && out.error.empty(); at += step ? step : body.size()) {
    auto fed = reader.feed(body.substr(at, step ? step : body.size()), out.messages);
    if (!fed) out.error = fed.error();
  }
  if (out.error.empty())
    if (auto done = reader.finish(out.messages); !done) out.error = done.error();
  out.answered = reader.answered();
  return out;
}

std::vector<std::string> texts(const std::vector<json::object>& messages) {
  std::vector<std::string> out;
  for (const auto& m : messages) out.push_back(json::serialize(m));
  return out;
}

// What server-everything sends for a tools/call with a progress token (protocol 2025-11-25): a
// priming event with an ID and empty data, progress notifications, the response.
constexpr std::string_view k_stream =
    "id: 465d8a40\ndata: \n\n"
    "event: message\nid: b6fb437e\n"
    "data: {\"method\":\"notifications/progress\",\"params\":{\"progress\":1,\"total\":2,\"progressToken\":\"p\"},\"jsonrpc\":\"2.0\"}\n\n"
    ": keepalive\n\n"
    "event: message\r\nid: 72b81621\r\n"
    "data: {\"method\":\"notifications/progress\",\"params\":{\"progress\":2,\"total\":2,\"progressToken\":\"p\"},\"jsonrpc\":\"2.0\"}\r\n\r\n"
    "event: message\nid: c403be1f\n"
    "data: {\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"done \\u00e9\"}],\"x\":0.1},\"jsonrpc\":\"2.0\",\"id\":4}\n\n";

// The kind, or nullopt on an error (boost::system::result has no value() for string errors).
std::optional<HttpBodyKind> kind_of(std::string_view content_type) {
  auto kind = http_body_kind(content_type);
  if (!kind) return std::nullopt;
  return *kind;
}

}  // namespace

TEST_CASE("http_body_kind names the two content types a server may answer with", "[mcp][http]") {
  CHECK(kind_of("application/json") == HttpBodyKind::json);
  CHECK(kind_of("Application/JSON ; charset=utf-8") == HttpBodyKind::json);
  CHECK(kind_of("text/event-stream") == HttpBodyKind::event_stream);
  CHECK(kind_of(" text/event-stream;charset=UTF-8") == HttpBodyKind::event_stream);
  CHECK(http_body_kind("text/html; charset=utf-8").error() ==
        "the answer's Content-Type is 'text/html; charset=utf-8', not application/json or text/event-stream");
  CHECK(http_body_kind("").error() == "the answer has no Content-Type");
  CHECK(http_body_kind("text/plain\x01").error().find("text/plain ") != std::string::npos);  // no control bytes
}

TEST_CASE("HttpTransportReader reads an event stream the same however it is split", "[mcp][http]") {
  const Read whole = read(HttpBodyKind::event_stream, json::value(4), k_stream, 0);
  REQUIRE(whole.error.empty());
  CHECK(whole.answered);
  REQUIRE(whole.messages.size() == 3);  // the priming event and the comment yield nothing
  CHECK(whole.messages[0].at("params").at("progress").as_int64() == 1);
  CHECK(whole.messages[1].at("params").at("progress").as_int64() == 2);
  CHECK(whole.messages[2].at("id").as_int64() == 4);
  CHECK(whole.messages[2].at("result").at("content").at(0).at("text").as_string() == "done \xC3\xA9");
  CHECK(whole.messages[2].at("result").at("x").as_double() == 0.1);  // bit for bit
  for (std::size_t step : {1u, 2u, 3u, 7u, 64u}) {
    INFO("pieces of " << step << " bytes");
    const Read split = read(HttpBodyKind::event_stream, json::value(4), k_stream, step);
    CHECK(split.error.empty());
    CHECK(split.answered);
    CHECK(texts(split.messages) == texts(whole.messages));
  }
}

TEST_CASE("HttpTransportReader: answered only by a response with the request's id", "[mcp][http]") {
  SECTION("a string id is not the number") {
    const Read r = read(HttpBodyKind::event_stream, json::value("4"), k_stream, 0);
    CHECK(r.error.empty());
    CHECK_FALSE(r.answered);
    CHECK(r.messages.size() == 3);
  }
  SECTION("a request from the server with the same id is not the response") {
    const Read r = read(HttpBodyKind::event_stream, json::value(7),
                        "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"roots/list\"}\n\n", 1);
    CHECK_FALSE(r.answered);
    CHECK(r.messages.size() == 1);
  }
  SECTION("an error response answers") {
    const Read r = read(HttpBodyKind::json, json::value("a"),
                        R"({"jsonrpc":"2.0","id":"a","error":{"code":-32601,"message":"no"}})", 5);
    CHECK(r.answered);
    CHECK(r.messages.size() == 1);
  }
  SECTION("nothing answers a POST without a request") {
    const Read r = read(HttpBodyKind::event_stream, std::nullopt, k_stream, 0);
    CHECK_FALSE(r.answered);
    CHECK(r.messages.size() == 3);
  }
}

TEST_CASE("HttpTransportReader reads a JSON body: one message or a batch", "[mcp][http]") {
  const std::string one = R"({"jsonrpc":"2.0","id":1,"result":{"tools":[]}})";
  const std::string batch = R"([{"jsonrpc":"2.0","method":"notifications/message","params":{}},)"
                            R"({"jsonrpc":"2.0","id":1,"result":{}}])";
  for (std::size_t step : {0u, 1u, 5u}) {
    INFO("pieces of " << step << " bytes");
    const Read r1 = read(HttpBodyKind::json, json::value(1), one, step);
    CHECK(r1.error.empty());
    CHECK(r1.answered);
    CHECK(texts(r1.messages) == std::vector<std::string>{one});
    const Read r2 = read(HttpBodyKind::json, json::value(1), batch, step);
    CHECK(r2.error.empty());
    CHECK(r2.answered);
    REQUIRE(r2.messages.size() == 2);
    CHECK(r2.messages[0].at("method").as_string() == "notifications/message");
  }
  SECTION("an empty body holds no message") {
    const Read r = read(HttpBodyKind::json, std::nullopt, " \r\n", 1);
    CHECK(r.error.empty());
    CHECK(r.messages.empty());
  }
}

TEST_CASE("HttpTransportReader refuses what is not a JSON-RPC message", "[mcp][http]") {
  SECTION("bad JSON in a body") {
    const Read r = read(HttpBodyKind::json, json::value(1), R"({"jsonrpc":"2.0","id":1,)", 1);
    CHECK(r.error.starts_with("a message is not valid JSON: "));
    CHECK_FALSE(r.answered);
  }
  SECTION("a JSON value that is not an object") {
    CHECK(read(HttpBodyKind::json, json::value(1), "[1]", 0).error == "a batch holds a value that is not a JSON object");
    CHECK(read(HttpBodyKind::json, json::value(1), "\"hi\"", 0).error == "a message is not a JSON object");
  }
  SECTION("bad JSON in an event keeps the messages before it, and fails the reader") {
    HttpTransportReader reader(HttpBodyKind::event_stream, json::value(2), 1 << 20);
    std::vector<json::object> out;
    auto fed = reader.feed("data: {\"jsonrpc\":\"2.0\",\"method\":\"a\"}\n\ndata: {oops\n\n", out);
    REQUIRE_FALSE(fed);
    CHECK(fed.error().starts_with("a message is not valid JSON"));
    CHECK(out.size() == 1);
    CHECK_FALSE(reader.feed("data: {}\n\n", out));
    CHECK(out.size() == 1);
  }
  SECTION("a body past the cap") {
    CHECK(read(HttpBodyKind::json, json::value(1), std::string(100, ' '), 10, 64).error ==
          "the JSON answer is larger than 64 bytes");
  }
  SECTION("an event past the cap") {
    const std::string big = "data: {\"jsonrpc\":\"2.0\",\"method\":\"" + std::string(100, 'x') + "\"}\n\n";
    CHECK(read(HttpBodyKind::event_stream, json::value(1), big, 7, 64).error == "an event is larger than 64 bytes");
  }
  SECTION("a stream cut in the middle of an event before the response") {
    const std::string cut(k_stream.substr(0, k_stream.size() - 10));
    const Read r = read(HttpBodyKind::event_stream, json::value(4), cut, 3);
    CHECK(r.error == "the event stream ended in the middle of an event");
    CHECK(r.messages.size() == 2);
  }
}

TEST_CASE("HttpTransportReader: events not named message and bytes that are not UTF-8", "[mcp][http]") {
  SECTION("other event names are skipped") {
    const Read r = read(HttpBodyKind::event_stream, std::nullopt,
                        "event: ping\ndata: {\"x\":1}\n\nevent: message\ndata: {\"y\":2}\n\n", 1);
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].contains("y"));
  }
  SECTION("a string that is not UTF-8 is repaired, not refused") {
    const Read r = read(HttpBodyKind::json, json::value(1), "{\"id\":1,\"result\":{\"t\":\"a\xFF" "b\"}}", 1);
    CHECK(r.error.empty());
    REQUIRE(r.messages.size() == 1);
    CHECK(r.messages[0].at("result").at("t").as_string() == "a\xEF\xBF\xBD" "b");
  }
}

TEST_CASE("HttpTransportReader keeps the last event ID and retry across a resumed stream", "[mcp][http]") {
  HttpTransportReader reader(HttpBodyKind::event_stream, json::value(9), 1 << 20);
  std::vector<json::object> out;
  CHECK(reader.last_event_id().empty());
  CHECK_FALSE(reader.retry_ms());
  // The priming event: an ID and a retry, no message.
  const std::string_view priming = "id: e0\nretry: 250\ndata: \n\n";
  for (char c : priming) REQUIRE(reader.feed(std::string_view(&c, 1), out));
  CHECK(reader.last_event_id() == "e0");
  CHECK(reader.retry_ms() == 250);
  CHECK(reader.messages_read() == 0);
  REQUIRE(reader.feed("id: e1\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"n\"}\n\ndata: {\"par", out));
  CHECK(reader.last_event_id() == "e1");
  CHECK(reader.messages_read() == 1);
  // The stream broke mid-event; the GET with Last-Event-ID: e1 answers on a new stream.
  reader.resume();
  REQUIRE(reader.feed("data: {\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}}\n\n", out));
  CHECK(reader.last_event_id() == "e1");  // an event without an ID keeps it
  CHECK(reader.retry_ms() == 250);
  CHECK(reader.answered());
  CHECK(reader.messages_read() == 2);
  REQUIRE(reader.finish(out));
  REQUIRE(out.size() == 2);
  CHECK(out[1].at("id").as_int64() == 9);
}
