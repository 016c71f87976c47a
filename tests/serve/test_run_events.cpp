#include "serve/run_events.hpp"

#include <catch2/catch.hpp>

#include <boost/json/parse.hpp>

#include "net/sse_parser.hpp"

namespace {

namespace json = boost::json;
using dagent::serve::RunEvents;

std::vector<dagent::net::SseEvent> parse(const std::string& frames) {
  dagent::net::SseParser parser;
  std::vector<dagent::net::SseEvent> out;
  REQUIRE(parser.feed(frames, out));
  CHECK_FALSE(parser.mid_event());
  return out;
}

}  // namespace

TEST_CASE("RunEvents frames events in order with ids and a timestamp", "[serve]") {
  RunEvents events(1 << 20);
  events.add("start", json::object{{"steps", 2}});
  events.add("step", json::object{{"step", 1}, {"message", "line one\nline two"}});
  events.close(json::object{{"status", "succeeded"}});
  CHECK(events.closed());
  std::uint64_t last = 0;
  const auto parsed = parse(events.frames_after(0, 1 << 20, &last));
  CHECK(last == 3);
  REQUIRE(parsed.size() == 3);
  CHECK(parsed[0].event == "start");
  CHECK(parsed[0].id == "1");
  CHECK(parsed[1].event == "step");
  CHECK(json::parse(parsed[1].data).at("message") == "line one\nline two");
  CHECK(parsed[2].event == "end");
  CHECK(parsed[2].id == "3");
  const auto end = json::parse(parsed[2].data);
  CHECK(end.at("status") == "succeeded");
  CHECK(end.at("dropped") == 0);
  CHECK(end.at("at").as_int64() > 1700000000000);
  events.add("step", json::object{});  // after close: nothing
  CHECK(events.last_id() == 3);
}

TEST_CASE("RunEvents gives a late reader the events after its Last-Event-ID", "[serve]") {
  RunEvents events(1 << 20);
  for (int i = 0; i < 5; ++i) events.add("step", json::object{{"step", i}});
  std::uint64_t last = 2;
  const auto parsed = parse(events.frames_after(2, 1 << 20, &last));
  REQUIRE(parsed.size() == 3);
  CHECK(parsed.front().id == "3");
  CHECK(last == 5);
  std::uint64_t unchanged = 5;
  CHECK(events.frames_after(5, 1 << 20, &unchanged).empty());
  CHECK(unchanged == 5);
  std::uint64_t first_only = 0;
  parse(events.frames_after(0, 1, &first_only));  // at least one frame, however small the cap
  CHECK(first_only == 1);
}

TEST_CASE("RunEvents drops answer deltas beyond its bound but keeps the end", "[serve]") {
  RunEvents events(8192);
  const std::string delta(1000, 'x');
  for (int i = 0; i < 50; ++i) events.add("answer", json::object{{"delta", delta}});
  CHECK(events.dropped() > 0);
  CHECK(events.bytes() < 8192);
  events.add("step", json::object{{"step", 1}});  // other events still fit below the whole bound
  events.close(json::object{{"status", "succeeded"}});
  std::uint64_t last = 0;
  const auto parsed = parse(events.frames_after(0, 1 << 20, &last));
  int dropped_notes = 0;
  for (const auto& e : parsed) dropped_notes += e.event == "dropped";
  CHECK(dropped_notes == 1);
  CHECK(parsed[parsed.size() - 2].event == "step");
  CHECK(parsed.back().event == "end");
  CHECK(json::parse(parsed.back().data).at("dropped").as_int64() == static_cast<std::int64_t>(events.dropped()));
}

TEST_CASE("RunEvents wakes its subscribers until they unsubscribe", "[serve]") {
  RunEvents events(1 << 20);
  int woken = 0;
  struct Count {
    int* n;
    void operator()() const { ++*n; }
  };
  const auto token = events.subscribe(Count{&woken});
  events.add("step", json::object{});
  CHECK(woken == 1);
  events.unsubscribe(token);
  events.add("step", json::object{});
  CHECK(woken == 1);
  CHECK(events.subscribers() == 0);
}

TEST_CASE("RunEvents makes invalid UTF-8 valid before it enters JSON", "[serve]") {
  RunEvents events(1 << 20);
  events.add("answer", json::object{{"delta", std::string("ok \xff\xfe")}});
  std::uint64_t last = 0;
  const auto parsed = parse(events.frames_after(0, 1 << 20, &last));
  REQUIRE(parsed.size() == 1);
  CHECK_NOTHROW(json::parse(parsed[0].data));
}
