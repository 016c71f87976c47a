#pragma once
// The sandbox that confines every path a tool touches to one folder.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

#include "dagent/tool.hpp"

namespace dagent {

/// An owned POSIX file descriptor, closed when it goes away. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

/// What tools must never write (config `tools.protected`, plus what a run always protects).
struct Protection {
  /// A file or folder protected with everything below it. `path` may be relative to the current
  /// folder; Workspace::open makes it absolute and real. `rule` names it in messages.
  struct Path {
    std::filesystem::path path;
    std::string rule;  ///< e.g. "the config file", "'secrets/'"
  };
  /// Folder names protected at any depth (".git" for the entry `.git/`); the rule is `'<name>/'`.
  std::vector<std::string> names;
  std::vector<Path> paths;
};

/// A folder that tools may read and write inside, and nowhere else.
///
/// The workspace holds an open descriptor of its folder and every access resolves beneath it in
/// the kernel (openat2 with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), so a symlink swapped into
/// the path while a tool runs cannot lead outside. Refuses absolute paths, `..` that leaves the
/// root, symlinks that lead outside (absolute symlinks always do), NUL bytes, files with more
/// than one hard link, and writes of protected paths. Copies share the descriptor.
class Workspace {
 public:
  /// Opens `root` (made canonical; it must exist and be a directory). `protection` lists what
  /// tools may not write; its paths are made absolute and real here.
  static boost::system::result<Workspace, ToolError> open(const std::filesystem::path& root,
                                                          Protection protection = {});

  const std::filesystem::path& root() const noexcept;
  /// The root's descriptor (O_PATH | O_DIRECTORY), valid while any copy of the workspace lives.
  int fd() const noexcept;

  /// An open file or folder inside the workspace and where it really is.
  struct Opened {
    UniqueFd fd;
    std::filesystem::path real;  ///< its real path (display() names it)
  };

  /// Opens the existing file or folder named by `user_path` (relative to the root) with `flags`
  /// (O_RDONLY, O_PATH, O_DIRECTORY...; O_CLOEXEC is added). Symlinks inside are followed.
  boost::system::result<Opened, ToolError> open_existing(std::string_view user_path, int flags) const;

  /// Where a file may be written: its folder, open, and its name in that folder.
  struct WriteTarget {
    UniqueFd dir;                ///< the folder, opened beneath the root
    std::string name;            ///< the file's name in `dir` (no `/`)
    std::filesystem::path real;  ///< the file's real path (display() names it)
  };

  /// Opens the folder where `user_path` may be written, creating missing folders one at a time
  /// beneath the root when `create_parents` is true. A symlink in the last component is followed
  /// when it stays inside. Refuses protected paths (before creating anything) with a message
  /// "'<shown>' is protected (tools.protected: <rule>)".
  boost::system::result<WriteTarget, ToolError> open_for_write(std::string_view user_path,
                                                               bool create_parents) const;

  /// Opens the folder `relative` (names read from the workspace's own folders, joined by `/`)
  /// beneath the root without following any symlink; for walks that must not be redirected.
  boost::system::result<UniqueFd, ToolError> open_folder_nofollow(const std::string& relative) const;

  /// The rule that protects `real` (an absolute real path), if one does.
  std::optional<std::string> protecting_rule(const std::filesystem::path& real) const;

  /// `abs` relative to the root, with `/` separators, for outputs and messages.
  std::string display(const std::filesystem::path& abs) const;

  /// Whether the kernel's openat2 is used (false: the userspace fallback, for kernels before 5.6).
  static bool kernel_beneath() noexcept;

 private:
  struct State;
  explicit Workspace(std::shared_ptr<const State> state) : state_(std::move(state)) {}
  std::shared_ptr<const State> state_;
};

}  // namespace dagent
