// FileHandle: the POSIX calls behind the file tools, with EINTR handled once.

#include "tools/file_handle.hpp"

#include <cerrno>
#include <string>
#include <system_error>
#include <utility>

#include <dirent.h>
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

boost::system::result<FileHandle, ToolError> FileHandle::regular(UniqueFd fd, std::string_view shown) {
  FileHandle file(fd.release());
  struct stat info {};
  if (::fstat(file.fd_, &info) != 0) return file_error(errno, "inspect", shown);
  if (!S_ISREG(info.st_mode)) {
    return ToolError{ToolErrc::invalid_parameters, "'" + std::string(shown) + "' is not a regular file"};
  }
  if (info.st_nlink > 1) return hard_link_error(shown, static_cast<std::uint64_t>(info.st_nlink));
  file.size_ = static_cast<std::uint64_t>(info.st_size);
  return file;
}

boost::system::result<FileHandle, ToolError> FileHandle::open_regular(const Workspace& workspace,
                                                                      std::string_view user_path, std::string& shown) {
  // O_NONBLOCK so that opening a FIFO does not wait for a writer; regular() refuses it.
  auto opened = workspace.open_existing(user_path, O_RDONLY | O_NONBLOCK);
  if (!opened) return opened.error();
  shown = workspace.display(opened->real);
  return regular(std::move(opened->fd), shown);
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

boost::system::result<DirReader, ToolError> DirReader::open(const UniqueFd& folder, std::string_view shown) {
  int fd = -1;
  do {
    fd = ::openat(folder.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return file_error(errno, "list", shown);
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    const int err = errno;
    ::close(fd);
    return file_error(err, "list", shown);
  }
  return DirReader(dir);
}

DirReader::DirReader(DirReader&& other) noexcept : dir_(std::exchange(other.dir_, nullptr)) {}

DirReader::~DirReader() {
  if (dir_ != nullptr) ::closedir(static_cast<DIR*>(dir_));
}

int DirReader::fd() const noexcept { return ::dirfd(static_cast<DIR*>(dir_)); }

const char* DirReader::next(int& err) {
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(static_cast<DIR*>(dir_));
    if (entry == nullptr) {
      err = errno;
      return nullptr;
    }
    const char* name = entry->d_name;
    if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
    err = 0;
    return name;
  }
}

ToolError hard_link_error(std::string_view shown, std::uint64_t links) {
  return ToolError{ToolErrc::outside_workspace,
                   "'" + std::string(shown) + "' has " + std::to_string(links) +
                       " hard links; files with more than one are neither read nor written (another link "
                       "may be outside the workspace)"};
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

std::string join_relative(std::string_view folder, std::string_view name) {
  if (folder.empty() || folder == ".") return std::string(name);
  std::string out(folder);
  if (!out.ends_with('/')) out += '/';
  out += name;
  return out;
}

}  // namespace dagent::tools
