#pragma once
// An owned POSIX file descriptor, for the file tools that open files beneath the Workspace.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>

#include "dagent/tool.hpp"
#include "dagent/workspace.hpp"

namespace dagent::tools {

/// One open file descriptor, closed when the handle goes away. Move-only.
class FileHandle {
 public:
  FileHandle() = default;
  explicit FileHandle(int fd) noexcept : fd_(fd) {}
  FileHandle(FileHandle&& other) noexcept;
  FileHandle& operator=(FileHandle&& other) noexcept;
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  ~FileHandle();

  /// Takes `fd` (opened beneath the workspace) if it is a regular file with one hard link:
  /// anything else (folder, FIFO, device) is refused, and so is a file with more than one hard
  /// link, which may be a file outside the workspace under a name inside. `shown` names it in errors.
  static boost::system::result<FileHandle, ToolError> regular(UniqueFd fd, std::string_view shown);

  /// Opens the existing regular file `user_path` beneath `workspace` for reading, as regular()
  /// takes it; `shown` receives its workspace-relative name.
  static boost::system::result<FileHandle, ToolError> open_regular(const Workspace& workspace,
                                                                   std::string_view user_path, std::string& shown);

  int get() const noexcept { return fd_; }
  /// The size fstat(2) reported when open_regular opened the file; 0 otherwise.
  std::uint64_t size() const noexcept { return size_; }

  /// Reads up to `buffer.size()` bytes; 0 at end of file.
  boost::system::result<std::size_t, ToolError> read_some(std::span<char> buffer, std::string_view shown) const;
  /// Writes all of `data`.
  boost::system::result<void, ToolError> write_all(std::string_view data, std::string_view shown) const;
  /// Closes now and reports what close(2) says (some file systems report write errors only there).
  boost::system::result<void, ToolError> close(std::string_view shown);

 private:
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

/// The entries of a folder read through its descriptor (fdopendir), `.` and `..` left out.
class DirReader {
 public:
  /// Takes `folder` (any descriptor of the folder, O_PATH included: it is reopened for reading).
  static boost::system::result<DirReader, ToolError> open(const UniqueFd& folder, std::string_view shown);
  DirReader(DirReader&& other) noexcept;
  DirReader& operator=(DirReader&&) = delete;
  DirReader(const DirReader&) = delete;
  DirReader& operator=(const DirReader&) = delete;
  ~DirReader();

  /// The folder's descriptor, for fstatat(2) and openat(2) relative to it.
  int fd() const noexcept;
  /// The next entry's name; nullptr at the end or on an error (then `err` is set, else 0).
  const char* next(int& err);

 private:
  explicit DirReader(void* dir) noexcept : dir_(dir) {}
  void* dir_ = nullptr;  // DIR*
};

/// The error for a system call on `shown` that failed with errno `err`:
/// "cannot <action> '<shown>': <reason>". ELOOP (a symlink met under O_NOFOLLOW) is
/// outside_workspace, ENOENT/ENOTDIR not_found, anything else io_error.
ToolError file_error(int err, std::string_view action, std::string_view shown);

/// The error for a file with more than one hard link: "'<shown>' has <n> hard links; ...".
ToolError hard_link_error(std::string_view shown, std::uint64_t links);

/// `folder/name` for names relative to the workspace root: just `name` when `folder` is empty
/// or ".", one `/` between them otherwise.
std::string join_relative(std::string_view folder, std::string_view name);

/// Tests only: makes every Workspace use the userspace walk as on kernels without openat2.
void force_workspace_fallback(bool on) noexcept;

}  // namespace dagent::tools
