#include "runtime/run_recorder.hpp"

#include <boost/json/value_from.hpp>

#include "runtime/approval_replay.hpp"

namespace dagent::runtime {

namespace json = boost::json;

json::object to_json(const ToolError& error) {
  return json::object{{"code", std::string(error.code.category().name()) + ":" + std::to_string(error.code.value())},
                      {"message", error.message}};
}

ToolError tool_error_from_json(const json::object& error) {
  ToolError out;
  const auto* message = error.if_contains("message");
  out.message = message && message->is_string() ? std::string(message->get_string()) : "failed";
  out.code = make_error_code(ToolErrc::failed);
  const auto* code = error.if_contains("code");
  if (code && code->is_string()) {
    const std::string_view text = code->get_string();
    const auto colon = text.rfind(':');
    if (colon != std::string_view::npos && text.substr(0, colon) == tool_category().name()) {
      const int value = std::atoi(std::string(text.substr(colon + 1)).c_str());
      if (value >= static_cast<int>(ToolErrc::invalid_parameters) && value <= static_cast<int>(ToolErrc::unavailable))
        out.code = make_error_code(static_cast<ToolErrc>(value));
    }
  }
  return out;
}

void RunRecorder::header(json::object fields) {
  json::object header{{"type", "header"}, {"format", record::k_format_version}};
  for (auto& [key, value] : fields) header[key] = std::move(value);
  writer_.write(header);
}

void RunRecorder::plan(const json::array& steps) { writer_.write(json::object{{"type", "plan"}, {"steps", steps}}); }

void RunRecorder::recall(const std::vector<std::string>& memories) {
  json::array list;
  for (const auto& m : memories) list.emplace_back(m);
  writer_.write(json::object{{"type", "recall"}, {"memories", std::move(list)}});
}

void RunRecorder::step(const executor::StepEvent& e) {
  json::object event{{"type", "step"},
                     {"step", e.step_id},
                     {"action", e.action},
                     {"status", to_string(e.status)},
                     {"verification", to_string(e.verification)},
                     {"attempt", e.attempt},
                     {"at_ms", e.at_ms}};
  if (!e.message.empty()) event["message"] = e.message;
  if (e.item >= 0) event["item"] = e.item;
  if (e.items >= 0 && e.item < 0) event["items"] = e.items;
  writer_.write(event);
}

void RunRecorder::called(executor::CallId call, std::string_view action, const json::object& params,
                         const ToolResult& result) {
  json::object event{{"type", "tool"}, {"step", call.step_id}, {"action", action}, {"params", params}};
  if (call.item >= 0) event["item"] = call.item;
  if (result) {
    event["output"] = *result;
  } else {
    event["error"] = to_json(result.error());
  }
  writer_.write(event);
}

void RunRecorder::approval(const executor::ApprovalRecord& r) {
  json::object event{{"type", "approval"},
                     {"step", r.step_id},
                     {"action", r.tool},
                     {"params_sha256", r.parameters ? params_digest(*r.parameters) : std::string()},
                     {"pattern", r.pattern},
                     {"decision", to_string(r.answer)},
                     {"by", r.given_by}};
  if (!r.reason.empty()) event["reason"] = r.reason;
  writer_.write(event);
}

void RunRecorder::end(const executor::RunResult& result) {
  json::object event{{"type", "end"}, {"status", to_string(result.status)}};
  if (!result.answer.empty()) event["answer"] = result.answer;
  if (!result.error.empty()) event["error"] = result.error;
  writer_.write(event);
}

}  // namespace dagent::runtime
