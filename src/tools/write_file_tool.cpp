// write_file: writes a file inside the workspace, atomically unless appending.

#include "tools/write_file_tool.hpp"

#include <atomic>
#include <cerrno>
#include <string>

#include <boost/json/parse.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dagent/workspace.hpp"
#include "tools/file_handle.hpp"
#include "tools/json_schema.hpp"

namespace dagent::tools {
namespace {

namespace json = boost::json;

constexpr std::string_view k_name = "write_file";
constexpr int k_temp_name_attempts = 100;

constexpr std::string_view k_description =
    "Write text to a file inside the workspace, creating missing parent folders. Replaces the file "
    "(atomically) unless append is true, in which case the text is added at its end. Returns "
    "{\"path\", \"bytes\"} with the number of bytes written.";

constexpr std::string_view k_schema = R"({
  "type": "object",
  "properties": {
    "path": {"type": "string", "minLength": 1, "description": "file path relative to the workspace"},
    "content": {"type": "string", "description": "the text to write"},
    "append": {"type": "boolean", "default": false, "description": "add to the end instead of replacing"}
  },
  "required": ["path", "content"],
  "additionalProperties": false
})";

// A new temporary file beside the target; its name starts with '.' so globs skip it.
boost::system::result<FileHandle, ToolError> create_temp(int dir_fd, const std::string& name, std::string& temp_name,
                                                         std::string_view shown) {
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; attempt < k_temp_name_attempts; ++attempt) {
    temp_name = "." + name + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
    int fd = -1;
    do {
      fd = ::openat(dir_fd, temp_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    } while (fd < 0 && errno == EINTR);
    if (fd >= 0) return FileHandle(fd);
    if (errno != EEXIST) return file_error(errno, "create a temporary file for", shown);
  }
  return file_error(EEXIST, "create a temporary file for", shown);
}

// Fills the temporary file and renames it over the target.
boost::system::result<void, ToolError> commit(int dir_fd, FileHandle temp, const std::string& temp_name,
                                              const std::string& name, std::string_view content,
                                              const struct stat* existing, std::string_view shown) {
  // Keep the read and write permissions of the file being replaced, never an executable,
  // set-id or sticky bit: a plan must not be able to plant a program.
  if (existing != nullptr && ::fchmod(temp.get(), existing->st_mode & 0666) != 0) {
    return file_error(errno, "set the permissions of", shown);
  }
  if (auto w = temp.write_all(content, shown); !w) return w;
  if (auto c = temp.close(shown); !c) return c;
  if (::renameat(dir_fd, temp_name.c_str(), dir_fd, name.c_str()) != 0) return file_error(errno, "replace", shown);
  return {};
}

boost::system::result<void, ToolError> replace_file(int dir_fd, const std::string& name, std::string_view content,
                                                    const struct stat* existing, std::string_view shown) {
  std::string temp_name;
  auto temp = create_temp(dir_fd, name, temp_name, shown);
  if (!temp) return temp.error();
  auto committed = commit(dir_fd, std::move(*temp), temp_name, name, content, existing, shown);
  if (!committed) ::unlinkat(dir_fd, temp_name.c_str(), 0);
  return committed;
}

boost::system::result<void, ToolError> append_file(int dir_fd, const std::string& name, std::string_view content,
                                                   std::string_view shown) {
  int fd = -1;
  do {
    fd = ::openat(dir_fd, name.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0666);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return file_error(errno, "open", shown);
  FileHandle file(fd);
  // Checked again on the file opened: it may have been swapped since the folder was read.
  struct stat info {};
  if (::fstat(fd, &info) != 0) return file_error(errno, "inspect", shown);
  if (!S_ISREG(info.st_mode)) {
    return ToolError{ToolErrc::invalid_parameters, "'" + std::string(shown) + "' is not a regular file"};
  }
  if (info.st_nlink > 1) return hard_link_error(shown, static_cast<std::uint64_t>(info.st_nlink));
  if ((info.st_mode & 07111) != 0 && ::fchmod(fd, info.st_mode & 0666) != 0) {
    return file_error(errno, "set the permissions of", shown);
  }
  if (auto w = file.write_all(content, shown); !w) return w;
  return file.close(shown);
}

}  // namespace

std::string_view WriteFileTool::name() const { return k_name; }

std::string_view WriteFileTool::description() const { return k_description; }

const json::object& WriteFileTool::parameters_schema() const {
  static const json::object schema = json::parse(k_schema).as_object();
  return schema;
}

ToolResult WriteFileTool::run(const json::object& params, const ToolContext& ctx) {
  if (auto checked = check_parameters(params, parameters_schema()); !checked) return checked.error();
  if (ctx.workspace == nullptr) return tool_error(ToolErrc::failed, "write_file: no workspace is configured");
  const json::string& content = params.at("content").get_string();
  const auto* append = params.if_contains("append");
  const bool appending = append != nullptr && append->get_bool();

  // The folder is opened beneath the workspace's descriptor (missing ones made there one at a
  // time) and the file is written relative to it, so nothing swapped into the path leads outside.
  auto target = ctx.workspace->open_for_write(params.at("path").get_string(), true);
  if (!target) {
    // A refusal by tools.protected names the tool, as the issue's users read it in a step error.
    if (target.error().message.find(" is protected (tools.protected: ") != std::string::npos)
      return ToolError{target.error().code, "write_file: " + target.error().message};
    return target.error();
  }
  const std::string shown = ctx.workspace->display(target->real);
  if (ctx.is_cancelled()) return tool_error(ToolErrc::cancelled, "write_file: cancelled");
  const int dir_fd = target->dir.get();
  const std::string& name = target->name;

  struct stat existing {};
  const bool exists = ::fstatat(dir_fd, name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0;
  if (exists && S_ISDIR(existing.st_mode)) {
    return tool_error(ToolErrc::invalid_parameters, "'" + shown + "' is a folder");
  }
  if (exists && !S_ISREG(existing.st_mode)) {
    return tool_error(ToolErrc::invalid_parameters, "'" + shown + "' is not a regular file");
  }
  // Appending would change the other names' file; replacing would silently split them.
  if (exists && existing.st_nlink > 1) return hard_link_error(shown, static_cast<std::uint64_t>(existing.st_nlink));

  const std::string_view text(content.data(), content.size());
  auto written = appending ? append_file(dir_fd, name, text, shown)
                           : replace_file(dir_fd, name, text, exists ? &existing : nullptr, shown);
  if (!written) return written.error();

  json::object out;
  out["path"] = shown;
  out["bytes"] = content.size();
  return json::value(std::move(out));
}

}  // namespace dagent::tools
