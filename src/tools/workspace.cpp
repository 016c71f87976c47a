// Workspace: confines the paths tools touch to one folder.
//
// Paths are checked in two passes. The text first: no NUL byte, not absolute, and no `..` that
// climbs above the root when read lexically. Then the file system: the path is walked from the
// root one component at a time like realpath(3), following every symlink (dangling ones too, so
// a link to a missing file outside cannot be used to create that file), and after each component
// the real location must still be the root or below it.
//
// A window remains between this check and the caller's open(): a component checked here can be
// replaced by a symlink before the file is opened. The tools narrow it by opening the real path
// with O_NOFOLLOW on the last component (and openat on the checked parent when writing), but a
// swapped intermediate folder is not detected; the workspace must not be shared with an
// adversary who can write into it concurrently.

#include "dagent/workspace.hpp"

#include <algorithm>
#include <deque>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace dagent {
namespace {

namespace fs = std::filesystem;

constexpr int k_max_symlinks = 40;  // Linux's MAXSYMLINKS

std::string in_quotes(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '\'';
  out += text;
  out += '\'';
  return out;
}

// Component-wise, so /ws2 is not inside /ws.
bool is_within(const fs::path& path, const fs::path& root) {
  return std::mismatch(root.begin(), root.end(), path.begin(), path.end()).first == root.end();
}

// The components of a relative user path, after the textual checks.
boost::system::result<std::vector<std::string>, ToolError> split_user_path(std::string_view user_path) {
  if (user_path.find('\0') != std::string_view::npos) {
    return ToolError{ToolErrc::outside_workspace, "path contains a NUL byte"};
  }
  if (user_path.empty()) return ToolError{ToolErrc::invalid_parameters, "path is empty"};
  const fs::path path{std::string(user_path)};
  if (path.has_root_directory() || path.has_root_name()) {
    return ToolError{ToolErrc::outside_workspace, "absolute path " + in_quotes(user_path) + " is not allowed"};
  }
  std::vector<std::string> components;
  int depth = 0;
  for (const auto& element : path) {
    const std::string& name = element.native();
    if (name.empty() || name == ".") continue;
    if (name == "..") {
      if (depth == 0) {
        return ToolError{ToolErrc::outside_workspace, "path " + in_quotes(user_path) + " leaves the workspace"};
      }
      --depth;
    } else {
      ++depth;
    }
    components.push_back(name);
  }
  return components;
}

// Whether the path ends in `/` or `/.`, which makes its last component a folder for the OS.
bool names_folder(std::string_view user_path) {
  return user_path.ends_with('/') || user_path.ends_with("/.") || user_path == ".";
}

struct Walked {
  fs::path real;  // symlinks resolved; the missing tail, if any, appended as written
  bool exists = false;
};

// Resolves `components` below `root` like realpath(3) without requiring the tail to exist.
boost::system::result<Walked, ToolError> walk(const fs::path& root, const std::vector<std::string>& components,
                                              std::string_view user_path) {
  fs::path current = root;
  int links_followed = 0;
  for (const auto& component : components) {
    std::deque<std::string> pending{component};
    while (!pending.empty()) {
      std::string name = std::move(pending.front());
      pending.pop_front();
      if (name.empty() || name == ".") continue;
      if (name == "..") {
        // As realpath(3): `missing/..` and `file.txt/..` name nothing, so they cannot be climbed
        // out of to reach a file that does exist.
        std::error_code dir_ec;
        if (!fs::is_directory(current, dir_ec)) {
          return ToolError{ToolErrc::not_found, "path " + in_quotes(user_path) + " goes through " +
                                                    in_quotes(current.filename().string()) +
                                                    ", which is not an existing folder"};
        }
        current = current.parent_path();
        continue;
      }
      fs::path next = current / name;
      std::error_code ec;
      const fs::file_status status = fs::symlink_status(next, ec);
      if (status.type() == fs::file_type::not_found) {
        current = std::move(next);
        continue;
      }
      if (ec) {
        return ToolError{ToolErrc::io_error, "cannot inspect " + in_quotes(user_path) + ": " + ec.message()};
      }
      if (!fs::is_symlink(status)) {
        current = std::move(next);
        continue;
      }
      if (++links_followed > k_max_symlinks) {
        return ToolError{ToolErrc::io_error, in_quotes(user_path) + ": too many levels of symbolic links"};
      }
      const fs::path target = fs::read_symlink(next, ec);
      if (ec) {
        return ToolError{ToolErrc::io_error, "cannot read symlink in " + in_quotes(user_path) + ": " + ec.message()};
      }
      if (target.has_root_directory()) current = target.root_path();
      std::vector<std::string> target_names;
      for (const auto& element : target.relative_path()) target_names.push_back(element.native());
      pending.insert(pending.begin(), target_names.begin(), target_names.end());
    }
    if (!is_within(current, root)) {
      return ToolError{ToolErrc::outside_workspace,
                       "path " + in_quotes(user_path) + " leads outside the workspace through a symlink"};
    }
  }
  std::error_code ec;
  const bool exists = fs::symlink_status(current, ec).type() != fs::file_type::not_found;
  return Walked{std::move(current), exists && !ec};
}

}  // namespace

boost::system::result<Workspace, ToolError> Workspace::open(const std::filesystem::path& root) {
  if (root.empty()) return ToolError{ToolErrc::invalid_parameters, "workspace path is empty"};
  std::error_code ec;
  fs::path real = fs::canonical(root, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) {
      return ToolError{ToolErrc::not_found, "workspace " + in_quotes(root.string()) + " does not exist"};
    }
    return ToolError{ToolErrc::io_error, "cannot open workspace " + in_quotes(root.string()) + ": " + ec.message()};
  }
  if (!fs::is_directory(real, ec)) {
    return ToolError{ToolErrc::invalid_parameters, "workspace " + in_quotes(root.string()) + " is not a folder"};
  }
  return Workspace(std::move(real));
}

boost::system::result<std::filesystem::path, ToolError> Workspace::resolve_existing(std::string_view user_path) const {
  auto components = split_user_path(user_path);
  if (!components) return components.error();
  auto walked = walk(root_, *components, user_path);
  if (!walked) return walked.error();
  if (!walked->exists) return ToolError{ToolErrc::not_found, in_quotes(user_path) + " does not exist"};
  std::error_code ec;
  if (names_folder(user_path) && !fs::is_directory(walked->real, ec)) {
    return ToolError{ToolErrc::invalid_parameters, in_quotes(display(walked->real)) + " is not a folder"};
  }
  return std::move(walked->real);
}

boost::system::result<std::filesystem::path, ToolError> Workspace::resolve_for_write(std::string_view user_path,
                                                                                     bool create_parents) const {
  auto components = split_user_path(user_path);
  if (!components) return components.error();
  auto walked = walk(root_, *components, user_path);
  if (!walked) return walked.error();
  fs::path& real = walked->real;
  if (real == root_) {
    return ToolError{ToolErrc::invalid_parameters,
                     "path " + in_quotes(user_path) + " names the workspace folder itself"};
  }
  const fs::path parent = real.parent_path();
  std::error_code ec;
  const fs::file_status parent_status = fs::status(parent, ec);
  if (parent_status.type() == fs::file_type::not_found) {
    if (!create_parents) {
      return ToolError{ToolErrc::not_found, "the folder of " + in_quotes(user_path) + " does not exist"};
    }
    // `parent` is a real path inside the root whose existing part holds no symlink, so
    // create_directories only adds folders inside the root.
    fs::create_directories(parent, ec);
    if (ec) {
      return ToolError{ToolErrc::io_error, "cannot create the folder of " + in_quotes(user_path) + ": " + ec.message()};
    }
    const fs::path created = fs::canonical(parent, ec);
    if (ec || !is_within(created, root_)) {
      return ToolError{ToolErrc::outside_workspace,
                       "the folder of " + in_quotes(user_path) + " changed while it was being created"};
    }
  } else if (ec) {
    return ToolError{ToolErrc::io_error, "cannot inspect the folder of " + in_quotes(user_path) + ": " + ec.message()};
  } else if (!fs::is_directory(parent_status)) {
    return ToolError{ToolErrc::invalid_parameters, in_quotes(display(parent)) + " is not a folder"};
  }
  return std::move(real);
}

std::string Workspace::display(const std::filesystem::path& abs) const {
  const fs::path relative = abs.lexically_relative(root_);
  if (relative.empty()) return abs.generic_string();
  std::string text = relative.generic_string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  if (text.empty() || text == ".") return ".";
  return text;
}

}  // namespace dagent
