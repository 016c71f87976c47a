#include "runtime/trace_writer.hpp"

#include <algorithm>
#include <fstream>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace dagent::runtime {

namespace json = boost::json;

boost::system::result<void, std::string> write_trace(const RunResult& result, const std::filesystem::path& path) {
  json::array events;
  int slots = 0;
  for (const auto& s : result.steps) slots = std::max(slots, s.slot + 1);
  events.push_back(json::object{{"name", "process_name"}, {"ph", "M"}, {"pid", 1},
                                {"args", json::object{{"name", "dagent " + result.task}}}});
  for (int slot = 0; slot < slots; ++slot)
    events.push_back(json::object{{"name", "thread_name"}, {"ph", "M"}, {"pid", 1}, {"tid", slot + 1},
                                  {"args", json::object{{"name", "slot " + std::to_string(slot)}}}});
  for (const auto& s : result.steps) {
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
  auto tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return "cannot write trace file '" + path.string() + "'";
    out << json::serialize(doc) << '\n';
    if (!out.flush()) return "cannot write trace file '" + path.string() + "'";
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return "cannot write trace file '" + path.string() + "': " + ec.message();
  return {};
}

}  // namespace dagent::runtime
