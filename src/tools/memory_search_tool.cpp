#include "tools/memory_search_tool.hpp"

#include <boost/json/parse.hpp>

#include "memory/memory.hpp"
#include "tools/memory_add_tool.hpp"

namespace dagent::tools {

namespace json = boost::json;

std::string_view MemorySearchTool::description() const {
  return "Finds the stored memories (texts added with memory_add, ingested documents, earlier runs' "
         "answers) closest in meaning to a query. Returns hits with id, text, score and metadata, best first.";
}

const json::object& MemorySearchTool::parameters_schema() const {
  static const json::object schema = json::parse(R"({
    "type": "object",
    "properties": {
      "query": {"type": "string", "minLength": 1},
      "k": {"type": "integer", "minimum": 1, "maximum": 1000}
    },
    "required": ["query"],
    "additionalProperties": false
  })").as_object();
  return schema;
}

json::object to_json(const MemoryHit& hit) {
  json::object metadata = hit.metadata;
  if (!hit.source.empty()) {
    metadata["source"] = hit.source;
    metadata["begin"] = hit.begin;
    metadata["end"] = hit.end;
  }
  return json::object{{"id", hit.id}, {"text", hit.text}, {"score", hit.score}, {"metadata", std::move(metadata)}};
}

boost::asio::awaitable<ToolResult> MemorySearchTool::invoke(json::object params, ToolContext) {
  std::string query(params.at("query").as_string());
  const int k = params.contains("k") ? params.at("k").to_number<int>() : default_k_;
  auto hits = co_await memory_.search(std::move(query), k, meter_);
  if (!hits) co_return to_tool_error(hits.error());
  json::array out;
  out.reserve(hits->size());
  for (const auto& hit : *hits) out.push_back(to_json(hit));
  co_return json::value(json::object{{"hits", std::move(out)}});
}

}  // namespace dagent::tools
