#pragma once
// An owned POSIX file descriptor, for the file tools that open what the Workspace resolved.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

#include <boost/system/result.hpp>

#include "dagent/tool.hpp"

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

  /// Opens the regular file at the real path `path` for reading. The last component is opened
  /// with O_NOFOLLOW, so a symlink swapped in after the workspace check is refused; anything but
  /// a regular file (folder, FIFO, device) is refused too. `shown` names the file in errors.
  static boost::system::result<FileHandle, ToolError> open_regular(const std::filesystem::path& path,
                                                                   std::string_view shown);

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

/// The error for a system call on `shown` that failed with errno `err`:
/// "cannot <action> '<shown>': <reason>". ELOOP (a symlink met under O_NOFOLLOW) is
/// outside_workspace, ENOENT/ENOTDIR not_found, anything else io_error.
ToolError file_error(int err, std::string_view action, std::string_view shown);

}  // namespace dagent::tools
