// read_file: reads a regular file inside the workspace.

#include "tools/read_file_tool.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <string>

#include <boost/json/parse.hpp>

#include "dagent/workspace.hpp"
#include "tools/file_handle.hpp"
#include "text/utf8.hpp"
#include "tools/json_schema.hpp"

namespace dagent::tools {
namespace {

namespace json = boost::json;

constexpr std::string_view k_name = "read_file";
constexpr std::size_t k_chunk_bytes = 64 * 1024;

// Unchanged by the cap: the description is part of every planning prompt, and recorded runs
// (examples/*/recording.jsonl) match prompts byte for byte.
constexpr std::string_view k_description =
    "Read a file inside the workspace. Returns {\"path\", \"content\", \"bytes\"}: the file's text "
    "(at most max_bytes bytes when given, with \"truncated\": true when the file is longer) and the "
    "number of bytes returned. Folders and other non-regular files are refused.";

constexpr std::string_view k_schema = R"({
  "type": "object",
  "properties": {
    "path": {"type": "string", "minLength": 1, "description": "file path relative to the workspace"},
    "max_bytes": {"type": "integer", "minimum": 0, "description": "read at most this many bytes"}
  },
  "required": ["path"],
  "additionalProperties": false
})";

}  // namespace

ReadFileTool::ReadFileTool(std::uint64_t max_bytes) : max_bytes_(max_bytes) {}

std::string_view ReadFileTool::name() const { return k_name; }

std::string_view ReadFileTool::description() const { return k_description; }

const json::object& ReadFileTool::parameters_schema() const {
  static const json::object schema = json::parse(k_schema).as_object();
  return schema;
}

ToolResult ReadFileTool::run(const json::object& params, const ToolContext& ctx) {
  if (auto checked = check_parameters(params, parameters_schema()); !checked) return checked.error();
  if (ctx.workspace == nullptr) return tool_error(ToolErrc::failed, "read_file: no workspace is configured");

  // Never unbounded: the whole content is held in memory and handed on as JSON.
  std::uint64_t limit = max_bytes_;
  if (const auto* max_bytes = params.if_contains("max_bytes"))
    limit = std::min(limit, max_bytes->to_number<std::uint64_t>());

  // Opened beneath the workspace's descriptor: nothing swapped into the path can lead outside.
  std::string shown;
  auto file = FileHandle::open_regular(*ctx.workspace, params.at("path").get_string(), shown);
  if (!file) return file.error();

  // Read one byte past the limit to learn whether the file is longer.
  const std::uint64_t wanted = limit + 1;
  std::string content;
  content.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(file->size(), wanted)));
  while (content.size() < wanted) {
    if (ctx.is_cancelled()) return tool_error(ToolErrc::cancelled, "read_file: cancelled");
    const std::size_t used = content.size();
    const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(k_chunk_bytes, wanted - used));
    content.resize(used + chunk);
    auto n = file->read_some(std::span<char>(content.data() + used, chunk), shown);
    if (!n) return n.error();
    content.resize(used + *n);
    if (*n == 0) break;
  }
  const bool truncated = content.size() > limit;
  // A cut inside a character drops the whole character: the file's next byte, read above, tells
  // whether the bytes before the limit end one.
  if (truncated) content.resize(text::utf8_cut(content, static_cast<std::size_t>(limit)));

  const std::size_t bytes = content.size();  // of the file: the repair below may change the length
  // The content enters JSON (results, prompts, recordings): bytes that are not UTF-8 (a Latin-1
  // file, a binary one) become U+FFFD here. Valid text is not copied.
  text::make_valid_utf8(content);
  json::object out;
  out["path"] = text::valid_utf8(shown);
  out["content"] = std::move(content);
  out["bytes"] = bytes;
  if (truncated) out["truncated"] = true;
  return json::value(std::move(out));
}

}  // namespace dagent::tools
