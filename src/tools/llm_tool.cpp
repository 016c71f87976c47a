#include "tools/llm_tool.hpp"

#include <boost/json/parse.hpp>

#include "net/net_error.hpp"

namespace dagent::tools {

namespace json = boost::json;

ToolError to_tool_error(const net::LlmError& e) {
  using net::NetErrc;
  const bool unreachable = net::is_unreachable(e);
  ToolError out;
  out.code = make_error_code(unreachable ? ToolErrc::unavailable
                             : e.code == NetErrc::request_timeout || e.code == NetErrc::idle_timeout ? ToolErrc::timed_out
                                                                                                     : ToolErrc::failed);
  out.message = e.message;
  if (e.attempts > 1) out.message += " (after " + std::to_string(e.attempts) + " attempts)";
  return out;
}

std::string_view LlmTool::description() const {
  return "Asks the language model. Returns its reply as text; with json_schema, also the parsed JSON.";
}

const json::object& LlmTool::parameters_schema() const {
  static const json::object schema = json::parse(R"({
    "type": "object",
    "properties": {
      "prompt": {"type": "string", "minLength": 1},
      "system": {"type": "string"},
      "model": {"type": "string", "minLength": 1},
      "max_tokens": {"type": "integer", "minimum": 1},
      "temperature": {"type": "number", "minimum": 0, "maximum": 2},
      "json_schema": {"type": "object"}
    },
    "required": ["prompt"],
    "additionalProperties": false
  })").as_object();
  return schema;
}

boost::asio::awaitable<ToolResult> LlmTool::invoke(json::object params, ToolContext) {
  net::ChatRequest request;
  const auto* model = params.if_contains("model");
  request.model = model ? std::string(model->as_string()) : default_model_;
  if (const auto* system = params.if_contains("system"))
    request.messages.push_back({"system", std::string(system->as_string())});
  request.messages.push_back({"user", std::string(params.at("prompt").as_string())});
  if (const auto* v = params.if_contains("max_tokens")) request.max_tokens = v->to_number<std::int64_t>();
  if (const auto* v = params.if_contains("temperature")) request.temperature = v->to_number<double>();
  if (const auto* v = params.if_contains("json_schema")) request.json_schema = v->as_object();

  auto reply = co_await provider_.chat(std::move(request));
  if (!reply) co_return to_tool_error(reply.error());
  json::object out{{"text", reply->content},
                   {"usage", json::object{{"prompt_tokens", reply->usage.prompt_tokens},
                                          {"completion_tokens", reply->usage.completion_tokens}}}};
  if (params.contains("json_schema")) {
    boost::system::error_code ec;
    auto parsed = json::parse(reply->content, ec);
    if (ec) co_return tool_error(ToolErrc::failed, "the reply is not the JSON the schema asks for: " + ec.message());
    out["json"] = std::move(parsed);
  }
  co_return json::value(std::move(out));
}

}  // namespace dagent::tools
