#include "runtime/trace_writer.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "text/json_utf8.hpp"

namespace dagent::runtime {

namespace json = boost::json;

namespace {

// Writes `text` to `path` (created or truncated); the error is the OS's reason. Every step that
// can report a full disk is checked: the write, the flush and the close.
boost::system::result<void, std::string> write_all(const std::filesystem::path& path, const std::string& text) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) return std::string(std::strerror(errno));
  const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size() && std::fflush(file) == 0;
  const int saved = errno;
  const bool closed = std::fclose(file) == 0;
  if (!written) return std::string(std::strerror(saved));
  if (!closed) return std::string(std::strerror(errno));
  return {};
}

}  // namespace

boost::system::result<void, std::string> write_trace(const RunResult& result, const std::filesystem::path& path) {
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
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  // A device, pipe or terminal (/dev/stdout, /dev/full) is written in place: renaming a temporary
  // file over it would replace the device node rather than write to it.
  const bool in_place = std::filesystem::exists(status) && !std::filesystem::is_regular_file(status);
  auto target = path;
  if (!in_place) target += ".tmp";
  if (auto written = write_all(target, text); !written) {
    if (!in_place) std::filesystem::remove(target, ec);
    return "cannot write trace file '" + path.string() + "': " + written.error();
  }
  if (in_place) return {};
  std::filesystem::rename(target, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(target, ignored);
    return "cannot write trace file '" + path.string() + "': " + ec.message();
  }
  return {};
}

}  // namespace dagent::runtime
