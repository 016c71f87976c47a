#include "text/output_file.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace dagent::text {

namespace {

// Writes `content` to `path` (created or truncated); the error is the OS's reason.
boost::system::result<void, std::string> write_all(const std::filesystem::path& path, std::string_view content) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) return std::string(std::strerror(errno));
  const bool written = std::fwrite(content.data(), 1, content.size(), file) == content.size() && std::fflush(file) == 0;
  const int saved = errno;
  const bool closed = std::fclose(file) == 0;
  if (!written) return std::string(std::strerror(saved));
  if (!closed) return std::string(std::strerror(errno));
  return {};
}

}  // namespace

boost::system::result<void, std::string> write_output_file(const std::filesystem::path& path, std::string_view content) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status)) return write_all(path, content);
  auto target = path;
  target += ".tmp" + std::to_string(::getpid());
  std::error_code ignored;
  if (auto written = write_all(target, content); !written) {
    std::filesystem::remove(target, ignored);
    return written;
  }
  std::filesystem::rename(target, path, ec);
  if (ec) {
    std::filesystem::remove(target, ignored);
    return ec.message();
  }
  return {};
}

}  // namespace dagent::text
