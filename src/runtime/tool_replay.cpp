#include "runtime/tool_replay.hpp"

#include <boost/json/serialize.hpp>

#include "runtime/run_recorder.hpp"

namespace dagent::runtime {

namespace json = boost::json;

namespace {

std::string key_of(executor::CallId call, std::string_view action, const json::object& params) {
  return std::to_string(call.step_id) + "#" + std::to_string(call.item) + "\n" + std::string(action) + "\n" +
         json::serialize(params);
}

}  // namespace

ToolReplay::ToolReplay(const record::Recording& recording, executor::ToolObserver* next, bool memory_only)
    : next_(next), memory_only_(memory_only) {
  for (const auto& event : recording.events) {
    const auto* type = event.if_contains("type");
    if (!type || *type != "tool") continue;
    const auto* step = event.if_contains("step");
    const auto* action = event.if_contains("action");
    const auto* params = event.if_contains("params");
    if (!step || !step->is_int64() || !action || !action->is_string() || !params || !params->is_object()) continue;
    executor::CallId call{static_cast<int>(step->get_int64()), -1};
    if (const auto* item = event.if_contains("item")) {
      if (!item->is_int64() || item->get_int64() < 0 || item->get_int64() > INT32_MAX) continue;
      call.item = static_cast<int>(item->get_int64());
    }
    auto& queue = calls_[key_of(call, action->get_string(), params->get_object())];
    if (const auto* output = event.if_contains("output")) {
      queue.emplace_back(*output);
    } else if (const auto* error = event.if_contains("error"); error && error->is_object()) {
      queue.emplace_back(tool_error_from_json(error->get_object()));
    }
  }
}

std::optional<ToolResult> ToolReplay::answer(executor::CallId call, std::string_view action, const json::object& params) {
  if (memory_only_ && action != "memory_add" && action != "memory_search") return std::nullopt;
  auto it = calls_.find(key_of(call, action, params));
  if (it == calls_.end() || it->second.empty()) {
    const std::string which = std::to_string(call.step_id) + (call.item >= 0 ? " item " + std::to_string(call.item) : "");
    return tool_error(ToolErrc::failed, "--replay-tools: the recording has no call of step " + which +
                                            " (" + std::string(action) + ") with these parameters: " +
                                            json::serialize(params));
  }
  ToolResult result = it->second.front();
  if (it->second.size() > 1) it->second.pop_front();  // the last answer repeats
  return result;
}

void ToolReplay::called(executor::CallId call, std::string_view action, const json::object& params,
                        const ToolResult& result) {
  if (next_) next_->called(call, action, params, result);
}

}  // namespace dagent::runtime
