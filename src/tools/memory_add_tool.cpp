#include "tools/memory_add_tool.hpp"

#include <boost/json/parse.hpp>

#include "memory/memory.hpp"

namespace dagent::tools {

namespace json = boost::json;

ToolError to_tool_error(const memory::MemoryError& e) {
  using memory::MemoryErrc;
  const auto code = e.code == MemoryErrc::unavailable        ? ToolErrc::unavailable
                    : e.code == MemoryErrc::invalid_argument ? ToolErrc::invalid_parameters
                                                             : ToolErrc::failed;
  return ToolError{make_error_code(code), e.message};
}

std::string_view MemoryAddTool::description() const {
  return "Stores a text (with optional metadata) in the long-term memory, searchable by meaning later. "
         "Returns its id.";
}

const json::object& MemoryAddTool::parameters_schema() const {
  static const json::object schema = json::parse(R"({
    "type": "object",
    "properties": {
      "text": {"type": "string", "minLength": 1},
      "metadata": {"type": "object"}
    },
    "required": ["text"],
    "additionalProperties": false
  })").as_object();
  return schema;
}

boost::asio::awaitable<ToolResult> MemoryAddTool::invoke(json::object params, ToolContext) {
  std::string text(params.at("text").as_string());
  json::object metadata;
  if (auto* m = params.if_contains("metadata")) metadata = std::move(m->as_object());
  auto id = co_await memory_.add(std::move(text), std::move(metadata), meter_);
  if (!id) co_return to_tool_error(id.error());
  co_return json::value(json::object{{"id", *id}});
}

}  // namespace dagent::tools
