// list_dir: lists a folder inside the workspace, optionally recursively.

#include "tools/list_dir_tool.hpp"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <boost/json/parse.hpp>

#include "dagent/workspace.hpp"
#include "text/utf8.hpp"
#include "tools/json_schema.hpp"

namespace dagent::tools {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr std::string_view k_name = "list_dir";

constexpr std::string_view k_description =
    "List a folder inside the workspace. Returns {\"entries\": [{\"path\", \"type\": \"file\" or "
    "\"dir\", \"size\"}]} sorted by path, with paths relative to the workspace and sizes in bytes "
    "(0 for folders). With recursive true, subfolders are listed too (symlinked folders are not "
    "entered).";

constexpr std::string_view k_schema = R"({
  "type": "object",
  "properties": {
    "path": {"type": "string", "minLength": 1, "default": ".", "description": "folder relative to the workspace"},
    "recursive": {"type": "boolean", "default": false, "description": "also list the contents of subfolders"}
  },
  "additionalProperties": false
})";

struct Entry {
  std::string path;
  bool is_dir = false;
  std::uint64_t size = 0;
};

// Where a symlink in the workspace leads: its target's status, or nothing when it is dangling or
// leads outside (the Workspace decides).
std::optional<fs::file_status> symlink_target_status(const Workspace& workspace, const std::string& shown) {
  auto target = workspace.resolve_existing(shown);
  if (!target) return std::nullopt;
  std::error_code ec;
  const fs::file_status status = fs::status(*target, ec);
  if (ec) return std::nullopt;
  return status;
}

std::uint64_t size_of(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? 0 : static_cast<std::uint64_t>(size);
}

}  // namespace

std::string_view ListDirTool::name() const { return k_name; }

std::string_view ListDirTool::description() const { return k_description; }

const json::object& ListDirTool::parameters_schema() const {
  static const json::object schema = json::parse(k_schema).as_object();
  return schema;
}

ToolResult ListDirTool::run(const json::object& params, const ToolContext& ctx) {
  if (auto checked = check_parameters(params, parameters_schema()); !checked) return checked.error();
  if (ctx.workspace == nullptr) return tool_error(ToolErrc::failed, "list_dir: no workspace is configured");
  const Workspace& workspace = *ctx.workspace;
  std::string_view user_path = ".";
  if (const auto* path = params.if_contains("path")) user_path = path->get_string();
  const auto* recursive_param = params.if_contains("recursive");
  const bool recursive = recursive_param != nullptr && recursive_param->get_bool();

  auto real = workspace.resolve_existing(user_path);
  if (!real) return real.error();
  std::error_code ec;
  if (!fs::is_directory(*real, ec)) {
    return tool_error(ToolErrc::invalid_parameters, "'" + std::string(user_path) + "' is not a folder");
  }

  std::vector<Entry> entries;
  std::vector<fs::path> folders{*real};
  bool top = true;
  while (!folders.empty()) {
    const fs::path folder = std::move(folders.back());
    folders.pop_back();
    fs::directory_iterator it(folder, ec);
    if (ec) {
      // The folder asked for must be readable; an unreadable subfolder is left unexplored.
      if (top) return tool_error(ToolErrc::io_error, "cannot list '" + std::string(user_path) + "': " + ec.message());
      continue;
    }
    top = false;
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      if (ctx.is_cancelled()) return tool_error(ToolErrc::cancelled, "list_dir: cancelled");
      const fs::path& path = it->path();
      Entry entry{workspace.display(path)};
      fs::file_status status = it->symlink_status(ec);
      bool descend = recursive;
      if (fs::is_symlink(status)) {
        auto target = symlink_target_status(workspace, entry.path);
        if (!target) continue;
        status = *target;
        descend = false;
      }
      if (fs::is_directory(status)) {
        entry.is_dir = true;
        if (descend) folders.push_back(path);
      } else if (fs::is_regular_file(status)) {
        entry.size = size_of(path);
      } else {
        continue;
      }
      // A name that is not UTF-8 is shown with U+FFFD: it names the entry for people, not for
      // another call (a JSON result cannot hold the raw bytes).
      text::make_valid_utf8(entry.path);
      entries.push_back(std::move(entry));
    }
    if (ec) return tool_error(ToolErrc::io_error, "cannot list '" + workspace.display(folder) + "': " + ec.message());
  }

  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.path < b.path; });
  json::array listed;
  listed.reserve(entries.size());
  for (auto& entry : entries) {
    json::object item;
    item["path"] = std::move(entry.path);
    item["type"] = entry.is_dir ? "dir" : "file";
    item["size"] = entry.size;
    listed.push_back(std::move(item));
  }
  json::object out;
  out["entries"] = std::move(listed);
  return json::value(std::move(out));
}

}  // namespace dagent::tools
