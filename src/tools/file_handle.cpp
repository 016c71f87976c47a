// FileHandle: the POSIX calls behind the file tools, with EINTR handled once.

#include "tools/file_handle.hpp"

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace dagent::tools {

FileHandle::FileHandle(FileHandle&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), size_(std::exchange(other.size_, 0)) {}

FileHandle& FileHandle::operator=(FileHandle&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

FileHandle::~FileHandle() {
  if (fd_ >= 0) ::close(fd_);
}

boost::system::result<FileHandle, ToolError> FileHandle::open_regular(const std::filesystem::path& path,
                                                                      std::string_view shown) {
  // O_NONBLOCK so that opening a FIFO does not wait for a writer; it is refused just below.
  int fd = -1;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return file_error(errno, "open", shown);
  FileHandle file(fd);
  struct stat info {};
  if (::fstat(fd, &info) != 0) return file_error(errno, "inspect", shown);
  if (!S_ISREG(info.st_mode)) {
    return ToolError{ToolErrc::invalid_parameters, "'" + std::string(shown) + "' is not a regular file"};
  }
  file.size_ = static_cast<std::uint64_t>(info.st_size);
  return file;
}

boost::system::result<std::size_t, ToolError> FileHandle::read_some(std::span<char> buffer,
                                                                    std::string_view shown) const {
  for (;;) {
    const ssize_t n = ::read(fd_, buffer.data(), buffer.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return file_error(errno, "read", shown);
  }
}

boost::system::result<void, ToolError> FileHandle::write_all(std::string_view data, std::string_view shown) const {
  while (!data.empty()) {
    const ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return file_error(errno, "write", shown);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

boost::system::result<void, ToolError> FileHandle::close(std::string_view shown) {
  const int fd = std::exchange(fd_, -1);
  // Linux closes the descriptor even when close(2) fails, so it is never retried.
  if (fd >= 0 && ::close(fd) != 0 && errno != EINTR) return file_error(errno, "write", shown);
  return {};
}

ToolError file_error(int err, std::string_view action, std::string_view shown) {
  ToolErrc code = ToolErrc::io_error;
  if (err == ELOOP) code = ToolErrc::outside_workspace;
  if (err == ENOENT || err == ENOTDIR) code = ToolErrc::not_found;
  std::string message = "cannot ";
  message += action;
  message += " '";
  message += shown;
  message += "': ";
  message += std::system_category().message(err);
  return ToolError{code, std::move(message)};
}

}  // namespace dagent::tools
