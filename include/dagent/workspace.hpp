#pragma once
// The sandbox that confines every path a tool touches to one folder.

#include <filesystem>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>

#include "dagent/tool.hpp"

namespace dagent {

/// A folder that tools may read and write inside, and nowhere else.
/// Refuses absolute paths, `..` that leaves the root, symlinks that lead outside, and NUL bytes.
class Workspace {
 public:
  /// Opens `root` (made canonical; it must exist and be a directory).
  static boost::system::result<Workspace, ToolError> open(const std::filesystem::path& root);

  const std::filesystem::path& root() const noexcept { return root_; }

  /// The real path of an existing file or folder named by `user_path` (relative to the root).
  boost::system::result<std::filesystem::path, ToolError> resolve_existing(std::string_view user_path) const;

  /// The real path where `user_path` may be written. Existing components (symlinks included)
  /// must stay inside; missing parent folders are created when `create_parents` is true.
  boost::system::result<std::filesystem::path, ToolError> resolve_for_write(std::string_view user_path,
                                                                            bool create_parents) const;

  /// `abs` relative to the root, with `/` separators, for outputs and messages.
  std::string display(const std::filesystem::path& abs) const;

 private:
  explicit Workspace(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path root_;
};

}  // namespace dagent
