#include "runtime/trace_writer.hpp"

#include <algorithm>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "text/json_utf8.hpp"
#include "text/output_file.hpp"

namespace dagent::runtime {

namespace json = boost::json;

namespace {

}  // namespace

boost::system::result<void, std::string> write_trace(const executor::RunResult& result, const std::filesystem::path& path) {
  json::array events;
  int slots = 0;
  for (const auto& s : result.steps) {
    slots = std::max(slots, s.slot + 1);
    for (const auto& item : s.items) slots = std::max(slots, item.slot + 1);
  }
  events.push_back(json::object{{"name", "process_name"}, {"ph", "M"}, {"pid", 1},
                                {"args", json::object{{"name", "dagent " + result.task}}}});
  for (int slot = 0; slot < slots; ++slot)
    events.push_back(json::object{{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", slot + 1},
                                  {"args", json::object{{"name", "slot " + std::to_string(slot)}}}});
  for (const auto& s : result.steps) {
    // A for_each step holds no slot itself: each item is a span on the slot it ran in.
    for (const auto& item : s.items) {
      if (item.slot < 0) continue;
      json::object args{{"status", to_string(item.status)}, {"attempts", item.attempts}, {"item", item.index},
                        {"level", s.level}};
      if (!item.error.empty()) args["error"] = item.error;
      events.push_back(json::object{{"name", "step " + std::to_string(s.id) + " " + s.action + " [" +
                                                 std::to_string(item.index) + "]"},
                                    {"cat", "item"},
                                    {"ph", "X"},
                                    {"pid", 1},
                                    {"tid", item.slot + 1},
                                    {"ts", item.started_ms * 1000.0},
                                    {"dur", std::max(0.0, item.finished_ms - item.started_ms) * 1000.0},
                                    {"args", std::move(args)}});
    }
    if (s.slot < 0) continue;
    json::object args{{"status", to_string(s.status)}, {"attempts", s.attempts}, {"level", s.level}};
    if (!s.error.empty()) args["error"] = s.error;
    events.push_back(json::object{{"name", "step " + std::to_string(s.id) + " " + s.action},
                                  {"cat", "step"},
                                  {"ph", "X"},
                                  {"pid", 1},
                                  {"tid", s.slot + 1},
                                  {"ts", s.started_ms * 1000.0},
                                  {"dur", std::max(0.0, s.finished_ms - s.started_ms) * 1000.0},
                                  {"args", std::move(args)}});
  }
  json::object doc{{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
  // Step names and errors carry text from tools and models: valid UTF-8 whatever they held.
  const std::string text = text::serialize_valid(doc) + "\n";
  if (auto written = text::write_output_file(path, text); !written)
    return "cannot write trace file '" + path.string() + "': " + written.error();
  return {};
}

}  // namespace dagent::runtime
