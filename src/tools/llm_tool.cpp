#include "tools/llm_tool.hpp"

#include <algorithm>

#include <boost/json/parse.hpp>

#include "net/net_error.hpp"
#include "text/utf8.hpp"
#include "tools/json_schema.hpp"

namespace dagent::tools {

namespace json = boost::json;

namespace {

// The first few problems, joined; a long list says no more than its head.
std::string first_problems(const std::vector<std::string>& problems) {
  constexpr std::size_t k_shown = 3;
  std::string out;
  for (std::size_t i = 0; i < problems.size() && i < k_shown; ++i) out += (i ? "; " : "") + problems[i];
  if (problems.size() > k_shown) out += " (and " + std::to_string(problems.size() - k_shown) + " more)";
  return out;
}

}  // namespace

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

LlmToolOptions LlmTool::options_of(const config::Config& cfg) {
  return LlmToolOptions{
      .default_model = cfg.llm.model, .models = cfg.llm.models, .max_tokens_per_call = cfg.limits.max_tokens_per_call};
}

boost::asio::awaitable<ToolResult> LlmTool::invoke(json::object params, ToolContext) {
  net::ChatRequest request;
  const auto* model = params.if_contains("model");
  request.model = model ? std::string(model->as_string()) : options_.default_model;
  // A plan is the model's text: it must not pick a model the user did not configure (a dearer one,
  // or one another key pays for). Refused before any request.
  if (request.model != options_.default_model &&
      std::find(options_.models.begin(), options_.models.end(), request.model) == options_.models.end()) {
    std::string allowed = "'" + options_.default_model + "' (llm.model)";
    for (const auto& m : options_.models) allowed += ", '" + m + "'";
    if (!options_.models.empty()) allowed += " (llm.models)";
    co_return tool_error(ToolErrc::invalid_parameters, "model: '" + request.model.substr(0, text::utf8_cut(request.model, 80)) +
                                                           "' is not a configured model; allowed: " + allowed);
  }
  if (const auto* system = params.if_contains("system"))
    request.messages.push_back({"system", std::string(system->as_string())});
  request.messages.push_back({"user", std::string(params.at("prompt").as_string())});
  if (const auto* v = params.if_contains("max_tokens")) request.max_tokens = v->to_number<std::int64_t>();
  // limits.max_tokens_per_call: a larger request is clamped (the step still runs), none asks for it.
  if (const auto cap = options_.max_tokens_per_call; cap > 0 && (!request.max_tokens || *request.max_tokens > cap))
    request.max_tokens = cap;
  if (const auto* v = params.if_contains("temperature")) request.temperature = v->to_number<double>();
  std::shared_ptr<const CompiledSchema> schema;
  if (const auto* v = params.if_contains("json_schema")) {
    // Checked before the call: a schema no reply can be held to must not cost a request.
    auto compiled = compile_schema(v->as_object(), "json_schema");
    if (!compiled.schema)
      co_return tool_error(ToolErrc::invalid_parameters, "json_schema is not a valid schema: " + first_problems(compiled.problems));
    schema = std::move(compiled.schema);
    request.json_schema = v->as_object();
  }

  auto reply = co_await provider_.chat(std::move(request));
  if (!reply) co_return to_tool_error(reply.error());
  json::object out{{"text", reply->content},
                   {"usage", json::object{{"prompt_tokens", reply->usage.prompt_tokens},
                                          {"completion_tokens", reply->usage.completion_tokens}}}};
  if (params.contains("json_schema")) {
    boost::system::error_code ec;
    auto parsed = json::parse(reply->content, ec);
    if (ec) co_return tool_error(ToolErrc::failed, "the reply is not the JSON the schema asks for: " + ec.message());
    // Servers without structured output get the schema in the prompt only (and some with it
    // ignore it): the reply is held to the schema here, whichever path produced it.
    std::vector<std::string> problems;
    for (const auto& p : schema->validate(parsed, "$")) problems.push_back(p.to_string());
    if (!problems.empty())
      co_return tool_error(ToolErrc::failed, "the reply does not match json_schema: " + first_problems(problems));
    out["json"] = std::move(parsed);
  }
  co_return json::value(std::move(out));
}

}  // namespace dagent::tools
