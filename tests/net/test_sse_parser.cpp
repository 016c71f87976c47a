#include "net/sse_parser.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "net/net_error.hpp"

using namespace std::string_view_literals;
using dagent::net::NetErrc;
using dagent::net::SseEvent;
using dagent::net::SseParser;

namespace {

struct Parsed {
  std::vector<SseEvent> events;
  bool failed = false;
  bool mid_event = false;

  friend bool operator==(const Parsed&, const Parsed&) = default;
};

std::string describe(const Parsed& parsed) {
  std::ostringstream text;
  for (const auto& e : parsed.events) {
    text << "{event=" << e.event << " data=" << e.data << " id=" << e.id
         << " retry=" << (e.retry_ms ? std::to_string(*e.retry_ms) : "-") << "} ";
  }
  text << (parsed.failed ? "failed " : "") << (parsed.mid_event ? "mid_event" : "");
  return text.str();
}

Parsed parse_chunks(const std::vector<std::string_view>& chunks, std::size_t max_event_bytes) {
  SseParser parser(max_event_bytes);
  Parsed parsed;
  for (const auto chunk : chunks) {
    if (!parser.feed(chunk, parsed.events)) {
      parsed.failed = true;
      break;
    }
  }
  parsed.mid_event = parser.mid_event();
  return parsed;
}

std::vector<std::string_view> split_at(std::string_view input, const std::vector<std::size_t>& cuts) {
  std::vector<std::string_view> chunks;
  std::size_t start = 0;
  for (const auto cut : cuts) {
    chunks.push_back(input.substr(start, cut - start));
    start = cut;
  }
  chunks.push_back(input.substr(start));
  return chunks;
}

// Parses `input` whole, byte by byte, in every 2-way split (every 3-way split for short
// inputs) and in random chunkings with empty chunks, requires the same result every time, and
// returns it.
Parsed parse_every_split(std::string_view input, std::size_t max_event_bytes = 4 << 20) {
  const Parsed whole = parse_chunks({input}, max_event_bytes);
  const auto require_same = [&](const std::vector<std::string_view>& chunks, const char* how) {
    const Parsed parsed = parse_chunks(chunks, max_event_bytes);
    if (parsed == whole) return;
    INFO(how << ": whole gives " << describe(whole) << "; chunked gives " << describe(parsed));
    REQUIRE(parsed == whole);
  };

  std::vector<std::string_view> bytes;
  for (std::size_t i = 0; i < input.size(); ++i) bytes.push_back(input.substr(i, 1));
  require_same(bytes, "byte by byte");

  for (std::size_t i = 0; i <= input.size(); ++i) require_same(split_at(input, {i}), "2-way split");

  if (input.size() <= 64) {
    for (std::size_t i = 0; i <= input.size(); ++i) {
      for (std::size_t j = i; j <= input.size(); ++j) require_same(split_at(input, {i, j}), "3-way split");
    }
  }

  std::mt19937 random(12345);
  std::uniform_int_distribution<std::size_t> chunk_size(0, 9);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::size_t> cuts;
    std::size_t at = 0;
    while (true) {
      at += chunk_size(random);
      if (at >= input.size()) break;
      cuts.push_back(at);
    }
    require_same(split_at(input, cuts), "random chunks");
  }
  return whole;
}

SseEvent message(std::string data, std::string id = {}, std::optional<std::int64_t> retry_ms = {}) {
  return {"message", std::move(data), std::move(id), retry_ms};
}

SseEvent typed(std::string event, std::string data) { return {std::move(event), std::move(data), {}, {}}; }

std::vector<SseEvent> events_of(std::string_view input) {
  const Parsed parsed = parse_every_split(input);
  REQUIRE_FALSE(parsed.failed);
  return parsed.events;
}

}  // namespace

TEST_CASE("SseParser dispatches an event at a blank line", "[net]") {
  CHECK(events_of("data: hello\n\n") == std::vector{message("hello")});
  CHECK(events_of("data: a\n\ndata: b\n\n") == std::vector{message("a"), message("b")});
  CHECK(events_of("data: hello\n").empty());
  CHECK(events_of("").empty());
  SECTION("multi-line data is joined with LF") {
    CHECK(events_of("data: a\ndata: b\ndata: c\n\n") == std::vector{message("a\nb\nc")});
  }
  SECTION("the event field names the event, for that event only") {
    CHECK(events_of("event: delta\ndata: 1\n\ndata: 2\n\n") == std::vector{typed("delta", "1"), message("2")});
    CHECK(events_of("event: a\nevent: b\ndata: x\n\n") == std::vector{typed("b", "x")});
    CHECK(events_of("event\ndata: x\n\n") == std::vector{message("x")});
  }
  SECTION("appends to out without clearing it") {
    SseParser parser;
    std::vector<SseEvent> out{message("earlier")};
    REQUIRE(parser.feed("data: x\n\n", out));
    CHECK(out == std::vector{message("earlier"), message("x")});
  }
}

TEST_CASE("SseParser line ends: LF, CRLF and lone CR", "[net]") {
  CHECK(events_of("data: a\r\ndata: b\rdata: c\n\r\n") == std::vector{message("a\nb\nc")});
  CHECK(events_of("data: x\r\r") == std::vector{message("x")});
  CHECK(events_of("data: x\r\n\r\n") == std::vector{message("x")});
  CHECK(events_of("data: x\n\r") == std::vector{message("x")});
  CHECK(events_of("data: x\r\n\rdata: y\r\r") == std::vector{message("x"), message("y")});
  SECTION("a CR ending one chunk and an LF starting the next are one line end") {
    SseParser parser;
    std::vector<SseEvent> out;
    REQUIRE(parser.feed("data: a\r", out));
    REQUIRE(parser.feed("\ndata: b\r", out));
    REQUIRE(parser.feed("\n", out));
    CHECK(out.empty());
    CHECK(parser.mid_event());
    REQUIRE(parser.feed("\r", out));
    REQUIRE(parser.feed("\n", out));
    CHECK(out == std::vector{message("a\nb")});
    CHECK_FALSE(parser.mid_event());
  }
  SECTION("an empty chunk between CR and LF does not separate them") {
    SseParser parser;
    std::vector<SseEvent> out;
    REQUIRE(parser.feed("data: a\r", out));
    REQUIRE(parser.feed("", out));
    REQUIRE(parser.feed("\ndata: b\n\n", out));
    CHECK(out == std::vector{message("a\nb")});
  }
}

TEST_CASE("SseParser skips one UTF-8 BOM at the start of the stream", "[net]") {
  CHECK(events_of("\xEF\xBB\xBF" "data: x\n\n") == std::vector{message("x")});
  SECTION("only one, only at the start") {
    CHECK(events_of("\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\ndata: y\n\n") == std::vector{message("y")});
    CHECK(events_of("data: a\n\n\xEF\xBB\xBF" "data: b\n\n") == std::vector{message("a")});
  }
  SECTION("a partial BOM is line content") {
    CHECK(events_of("\xEF\xBB" "data: x\n\ndata: y\n\n") == std::vector{message("y")});
    CHECK(events_of("\xEF\n" "data: y\n\n") == std::vector{message("y")});
  }
  SECTION("the BOM is checked again after reset") {
    SseParser parser;
    std::vector<SseEvent> out;
    REQUIRE(parser.feed("\xEF\xBB\xBF" "data: a\n\n", out));
    parser.reset();
    REQUIRE(parser.feed("\xEF\xBB", out));
    REQUIRE(parser.feed("\xBF" "data: b\n\n", out));
    CHECK(out == std::vector{message("a"), message("b")});
  }
  SECTION("bytes are passed through without UTF-8 checks") {
    CHECK(events_of("data: caf\xC3\xA9 \xFF\n\n") == std::vector{message("caf\xC3\xA9 \xFF")});
  }
}

TEST_CASE("SseParser fields", "[net]") {
  SECTION("comment lines are ignored") {
    CHECK(events_of(": keepalive\n\ndata: x\n: between\ndata: y\n\n") == std::vector{message("x\ny")});
    CHECK(events_of(":\n\n").empty());
    CHECK(events_of(":data: x\n\n").empty());
  }
  SECTION("a field without a colon has an empty value") {
    CHECK(events_of("data\n\n") == std::vector{message("")});
    CHECK(events_of("data\ndata\n\n") == std::vector{message("\n")});
    CHECK(events_of("data\ndata: x\n\n") == std::vector{message("\nx")});
  }
  SECTION("one space after the colon is stripped") {
    CHECK(events_of("data:x\n\n") == std::vector{message("x")});
    CHECK(events_of("data:  x\n\n") == std::vector{message(" x")});
    CHECK(events_of("data: x \n\n") == std::vector{message("x ")});
    CHECK(events_of("data:\tx\n\n") == std::vector{message("\tx")});
    CHECK(events_of("data: a: b\n\n") == std::vector{message("a: b")});
    CHECK(events_of("data: \n\n") == std::vector{message("")});
  }
  SECTION("unknown fields are ignored; names are case-sensitive") {
    CHECK(events_of("foo: bar\ndata: x\nDATA: y\nData: z\n data: w\n\n") == std::vector{message("x")});
    CHECK(events_of("foo: bar\n\n").empty());
  }
  SECTION("an event without data is not dispatched, and its type does not leak") {
    CHECK(events_of("event: ping\n\n").empty());
    CHECK(events_of("event: ping\n\ndata: x\n\n") == std::vector{message("x")});
    CHECK(events_of("id: 1\n\n").empty());
  }
}

TEST_CASE("SseParser id", "[net]") {
  SECTION("the last event ID persists across events") {
    CHECK(events_of("id: 1\ndata: a\n\ndata: b\n\n") == std::vector{message("a", "1"), message("b", "1")});
    CHECK(events_of("id: 7\n\ndata: x\n\n") == std::vector{message("x", "7")});
  }
  SECTION("an empty id resets it") {
    CHECK(events_of("id: 1\ndata: a\n\nid\ndata: b\n\n") == std::vector{message("a", "1"), message("b", "")});
    CHECK(events_of("id: 1\ndata: a\n\nid:\ndata: b\n\n") == std::vector{message("a", "1"), message("b", "")});
  }
  SECTION("an id containing NUL is ignored") {
    CHECK(events_of("id: 1\n\nid: a\0b\ndata: x\n\n"sv) == std::vector{message("x", "1")});
    CHECK(events_of("id: \0\ndata: x\n\n"sv) == std::vector{message("x", "")});
  }
}

TEST_CASE("SseParser retry", "[net]") {
  CHECK(events_of("retry: 1500\ndata: x\n\n") == std::vector{message("x", "", 1500)});
  CHECK(events_of("retry: 0\ndata: x\n\n") == std::vector{message("x", "", 0)});
  CHECK(events_of("retry: 10\nretry: 20\ndata: x\n\n") == std::vector{message("x", "", 20)});
  SECTION("only when all digits") {
    for (const auto value : {"15a", "-1", "+1", "", "1.5", " 15", "15 ", "99999999999999999999"}) {
      INFO("retry: '" << value << "'");
      CHECK(events_of("retry: " + std::string(value) + "\ndata: x\n\n") == std::vector{message("x")});
    }
    CHECK(events_of("retry\ndata: x\n\n") == std::vector{message("x")});
    CHECK(events_of("retry: 5\nretry: x\ndata: x\n\n") == std::vector{message("x", "", 5)});
  }
  SECTION("carried to the next dispatched event only") {
    CHECK(events_of("retry: 300\n\ndata: x\n\ndata: y\n\n") == std::vector{message("x", "", 300), message("y")});
  }
}

TEST_CASE("is_done_marker", "[net]") {
  CHECK(dagent::net::is_done_marker(message("[DONE]")));
  CHECK(events_of("data: [DONE]\n\n") == std::vector{message("[DONE]")});
  CHECK_FALSE(dagent::net::is_done_marker(message("[DONE] ")));
  CHECK_FALSE(dagent::net::is_done_marker(message("{\"done\":true}")));
  CHECK_FALSE(dagent::net::is_done_marker(message("")));
}

TEST_CASE("SseParser::mid_event reports an unfinished line or event", "[net]") {
  const auto mid_event_after = [](std::string_view input) { return parse_every_split(input).mid_event; };
  CHECK_FALSE(mid_event_after(""));
  CHECK_FALSE(mid_event_after("\n"));
  CHECK_FALSE(mid_event_after("data: x\n\n"));
  CHECK_FALSE(mid_event_after("data: x\r\n\r"));
  CHECK_FALSE(mid_event_after("data: x\n\n: keepalive\n"));
  CHECK_FALSE(mid_event_after("\xEF\xBB\xBF"));
  CHECK(mid_event_after("data: x"));
  CHECK(mid_event_after("data: x\n"));
  CHECK(mid_event_after("data: x\r"));
  CHECK(mid_event_after("data: x\n\nd"));
  CHECK(mid_event_after("event: a\n"));
  CHECK(mid_event_after("id: 1\n"));
  CHECK(mid_event_after(": partial comm"));
  CHECK(mid_event_after("\xEF\xBB"));
  SECTION("reset forgets the unfinished event and the last id") {
    SseParser parser;
    std::vector<SseEvent> out;
    REQUIRE(parser.feed("id: 4\ndata: x\n\ndata: part", out));
    CHECK(parser.mid_event());
    parser.reset();
    CHECK_FALSE(parser.mid_event());
    REQUIRE(parser.feed("ial\n\ndata: y\n\n", out));
    CHECK(out == std::vector{message("x", "4"), message("y")});
  }
}

TEST_CASE("SseParser size cap", "[net]") {
  // "data: 0123456789" is 16 bytes; once buffered as data it is "0123456789\n", 11 bytes.
  SECTION("a line up to the cap passes") {
    const Parsed parsed = parse_every_split("data: 0123456789\n\ndata: 0123456789\n\n", 16);
    CHECK_FALSE(parsed.failed);
    CHECK(parsed.events == std::vector{message("0123456789"), message("0123456789")});
  }
  SECTION("one byte over fails, with the earlier events delivered") {
    const Parsed parsed = parse_every_split("data: a\n\ndata: 0123456789X\n\ndata: b\n\n", 16);
    CHECK(parsed.failed);
    CHECK(parsed.events == std::vector{message("a")});
    CHECK_FALSE(parsed.mid_event);
  }
  SECTION("the cap counts the line plus the data accumulated for the event") {
    const Parsed parsed = parse_every_split("data: 0123456789\ndata: x\n\n", 16);
    CHECK(parsed.failed);
    CHECK(parsed.events.empty());
    CHECK(parse_every_split("data: 0123\ndata: x\n\n", 16).events == std::vector{message("0123\nx")});
  }
  SECTION("other fields count while buffered") {
    CHECK(parse_every_split("event: 0123456789\n\n", 16).failed);
    CHECK(parse_every_split("x: 0123456789abcdef\n\n", 16).failed);
  }
  SECTION("comment lines are not buffered, so any length passes") {
    const Parsed parsed = parse_every_split(": " + std::string(100, 'c') + "\ndata: x\n\n", 16);
    CHECK_FALSE(parsed.failed);
    CHECK(parsed.events == std::vector{message("x")});
  }
  SECTION("the parser stays failed until reset") {
    SseParser parser(16);
    std::vector<SseEvent> out;
    const auto failed = parser.feed("data: a\n\ndata: 0123456789X\n\ndata: b\n\n", out);
    REQUIRE_FALSE(failed);
    CHECK(failed.error() == NetErrc::event_too_large);
    CHECK(out == std::vector{message("a")});
    const auto again = parser.feed("data: c\n\n", out);
    REQUIRE_FALSE(again);
    CHECK(again.error() == NetErrc::event_too_large);
    CHECK(out.size() == 1);
    CHECK_FALSE(parser.mid_event());
    parser.reset();
    REQUIRE(parser.feed("data: c\n\n", out));
    CHECK(out == std::vector{message("a"), message("c")});
  }
  SECTION("a large event within the default cap") {
    const std::string big(1 << 20, 'x');
    SseParser parser;
    std::vector<SseEvent> out;
    REQUIRE(parser.feed("data: " + big.substr(0, 1000), out));
    REQUIRE(parser.feed(big.substr(1000) + "\ndata: " + big + "\n\n", out));
    REQUIRE(out.size() == 1);
    CHECK(out[0].data == big + "\n" + big);
  }
}

TEST_CASE("SseParser gives the same events for every split of a mixed stream", "[net]") {
  const std::string input(
      "\xEF\xBB\xBF: stream start\r\n"
      "retry: 2000\r\n"
      "\r\n"
      "event: delta\rid: 1\rdata: {\"a\":1}\r\r"
      "data\n"
      "data:two\n"
      "unknown: field\n"
      ":comment\n"
      "\n"
      "id: 2\r\nevent: ping\r\n\r\n"
      "data:  spaced \r\n"
      "retry: 12x\r\n"
      "\n"
      "id: a\0b\n"sv
      "data: [DONE]\n\n"
      "data: unfinished");
  const Parsed parsed = parse_every_split(input);
  CHECK_FALSE(parsed.failed);
  CHECK(parsed.mid_event);
  CHECK(parsed.events == std::vector{SseEvent{"delta", "{\"a\":1}", "1", 2000}, message("\ntwo", "1"),
                                     message(" spaced ", "2"), message("[DONE]", "2")});
}
