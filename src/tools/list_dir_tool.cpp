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

#include <fcntl.h>
#include <sys/stat.h>

#include "dagent/workspace.hpp"
#include "text/utf8.hpp"
#include "tools/file_handle.hpp"
#include "tools/json_schema.hpp"

namespace dagent::tools {
namespace {

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

// What the symlink `relative` leads to: nothing when it is dangling or leads outside (the
// kernel decides, beneath the workspace).
std::optional<struct stat> symlink_target(const Workspace& workspace, const std::string& relative) {
  auto target = workspace.open_existing(relative, O_PATH);
  if (!target) return std::nullopt;
  struct stat info {};
  if (::fstat(target->fd.get(), &info) != 0) return std::nullopt;
  return info;
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

  // Every folder is read through a descriptor opened beneath the workspace: the one asked for
  // following symlinks inside, the ones below by their names without following any, so a folder
  // swapped for a symlink while the walk runs is skipped, never followed.
  auto top = workspace.open_existing(user_path, O_PATH);
  if (!top) return top.error();
  struct stat top_info {};
  if (::fstat(top->fd.get(), &top_info) != 0 || !S_ISDIR(top_info.st_mode)) {
    return tool_error(ToolErrc::invalid_parameters, "'" + std::string(user_path) + "' is not a folder");
  }

  std::vector<Entry> entries;
  struct Pending {
    UniqueFd fd;
    std::string relative;  // as shown, "." for the root
  };
  std::vector<Pending> folders;
  folders.push_back({std::move(top->fd), workspace.display(top->real)});
  bool first = true;
  while (!folders.empty()) {
    Pending folder = std::move(folders.back());
    folders.pop_back();
    if (!folder.fd) {
      auto opened = workspace.open_folder_nofollow(folder.relative);
      if (!opened) continue;  // gone or swapped since it was listed
      folder.fd = std::move(*opened);
    }
    auto reader = DirReader::open(folder.fd, first ? user_path : std::string_view(folder.relative));
    if (!reader) {
      // The folder asked for must be readable; an unreadable subfolder is left unexplored.
      if (first) return tool_error(ToolErrc::io_error, reader.error().message);
      continue;
    }
    first = false;
    int err = 0;
    while (const char* name = reader->next(err)) {
      if (ctx.is_cancelled()) return tool_error(ToolErrc::cancelled, "list_dir: cancelled");
      Entry entry{join_relative(folder.relative, name)};
      struct stat info {};
      if (::fstatat(reader->fd(), name, &info, AT_SYMLINK_NOFOLLOW) != 0) continue;
      mode_t type = info.st_mode & S_IFMT;
      bool descend = recursive;
      if (type == S_IFLNK) {
        auto target = symlink_target(workspace, entry.path);
        if (!target) continue;
        info = *target;
        type = info.st_mode & S_IFMT;
        descend = false;
      }
      if (type == S_IFDIR) {
        entry.is_dir = true;
        if (descend) folders.push_back({UniqueFd(), entry.path});
      } else if (type == S_IFREG) {
        entry.size = static_cast<std::uint64_t>(info.st_size);
      } else {
        continue;
      }
      // A name that is not UTF-8 is shown with U+FFFD: it names the entry for people, not for
      // another call (a JSON result cannot hold the raw bytes).
      text::make_valid_utf8(entry.path);
      entries.push_back(std::move(entry));
    }
    if (err != 0) {
      return tool_error(ToolErrc::io_error,
                        "cannot list '" + folder.relative + "': " + std::system_category().message(err));
    }
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
