// Workspace: confines the paths tools touch to one folder.
//
// The workspace holds an open descriptor of its root. Every access resolves beneath it in the
// kernel: openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS refuses, at the moment of the
// open, any path whose resolution leaves the root (`..` above it, absolute symlinks, relative
// ones that climb out, /proc magic links), so a symlink swapped into the path between a check
// and the open cannot lead outside: there is no separate check. Folders are created one at a
// time with mkdirat(2) on descriptors opened beneath the root; files are replaced with
// renameat(2) inside their folder's descriptor.
//
// Before any path reaches the kernel its text is checked: no NUL byte, not absolute, and no `..`
// that climbs above the root when read lexically (for the messages).
//
// Kernels without openat2 (before 5.6; detected once) get the old userspace walk: the path is
// walked from the root one component at a time like realpath(3), following every symlink, and
// after each component the real location must still be the root or below it; the file is then
// opened by its real path with O_NOFOLLOW. A window remains there between the walk and the open.

#include "dagent/workspace.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tools/file_handle.hpp"

namespace dagent {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

namespace {

namespace fs = std::filesystem;

constexpr int k_max_symlinks = 40;  // Linux's MAXSYMLINKS
constexpr int k_eagain_retries = 64;

std::atomic<int> g_force_fallback{0};

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


bool detect_openat2() noexcept {
  struct open_how how {};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  const long fd = ::syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
  if (fd >= 0) {
    ::close(static_cast<int>(fd));
    return true;
  }
  // ENOSYS: a kernel before 5.6; EPERM: a seccomp filter (older container runtimes) that refuses
  // system calls it does not know. Opening "/" cannot fail otherwise.
  return errno != ENOSYS && errno != EPERM;
}

bool use_kernel() noexcept {
  static const bool available = detect_openat2();
  return available && g_force_fallback.load(std::memory_order_relaxed) == 0;
}

// The errno the fallback walk's refusal stands for.
int errno_of(const ToolError& error) {
  if (error.code == ToolErrc::outside_workspace) return EXDEV;
  if (error.code == ToolErrc::not_found) return ENOENT;
  if (error.message.ends_with("too many levels of symbolic links")) return ELOOP;
  return EIO;
}

int retry_open(int dir, const char* path, int flags, mode_t mode) {
  int fd = -1;
  do {
    fd = ::openat(dir, path, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

}  // namespace

// What the copies of a Workspace share.
struct Workspace::State {
  struct Guarded {
    fs::path path;  // absolute, real as far as it exists
    std::string rule;
    bool has_id = false;
    dev_t dev = 0;
    ino_t ino = 0;
  };
  fs::path root;
  UniqueFd fd;
  std::vector<std::string> names;
  std::vector<Guarded> paths;
};

namespace {

// A descriptor, or the errno of the failed open.
class FdOrErrno {
 public:
  FdOrErrno(UniqueFd fd) noexcept : fd_(std::move(fd)) {}  // NOLINT: implicit by design
  FdOrErrno(int err) noexcept : err_(err) {}               // NOLINT: implicit by design
  explicit operator bool() const noexcept { return err_ == 0; }
  UniqueFd& operator*() noexcept { return fd_; }
  UniqueFd* operator->() noexcept { return &fd_; }
  int error() const noexcept { return err_; }

 private:
  UniqueFd fd_;
  int err_ = 0;
};

// Opens `relative` beneath the workspace. Returns the descriptor or an errno: EXDEV when the
// resolution leaves the root.
FdOrErrno open_beneath(const fs::path& root, int root_fd, std::string_view relative,
                                                  int flags, mode_t mode, std::uint64_t extra_resolve = 0) {
  const std::string text = relative.empty() ? std::string(".") : std::string(relative);
  if (use_kernel()) {
    struct open_how how {};
    how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) != 0 ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | extra_resolve;
    for (int attempt = 0;; ++attempt) {
      const long fd = ::syscall(SYS_openat2, root_fd, text.c_str(), &how, sizeof how);
      if (fd >= 0) return UniqueFd(static_cast<int>(fd));
      if (errno == EINTR) continue;
      // The kernel could not rule out a `..` racing with a rename; it may be retried.
      if (errno == EAGAIN && attempt < k_eagain_retries) continue;
      return FdOrErrno(errno == EAGAIN ? EXDEV : errno);
    }
  }
  // Fallback: no symlink at all when asked, else the userspace walk and an open of the real path.
  if ((extra_resolve & RESOLVE_NO_SYMLINKS) != 0) {
    UniqueFd current(retry_open(root_fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0));
    if (!current) return errno;
    const fs::path path{text};
    std::vector<std::string> names;
    for (const auto& element : path) {
      const std::string& name = element.native();
      if (name.empty() || name == ".") continue;
      if (name == "..") return EXDEV;
      names.push_back(name);
    }
    if (names.empty()) return UniqueFd(retry_open(root_fd, ".", flags | O_CLOEXEC, mode));
    for (std::size_t i = 0; i < names.size(); ++i) {
      const bool last = i + 1 == names.size();
      const int f = last ? flags | O_NOFOLLOW | O_CLOEXEC : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
      UniqueFd next(retry_open(current.get(), names[i].c_str(), f, mode));
      if (!next) return errno;
      current = std::move(next);
    }
    return current;
  }
  auto components = split_user_path(text);
  if (!components) return errno_of(components.error());
  auto walked = walk(root, *components, text);
  if (!walked) return errno_of(walked.error());
  // The walk drops a trailing `/`; the open must still require a folder then, as the kernel does.
  const int folder = names_folder(text) ? O_DIRECTORY : 0;
  UniqueFd fd(retry_open(AT_FDCWD, walked->real.c_str(), flags | folder | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) return errno;
  return fd;
}

// The real path of an open descriptor; `fallback` when /proc cannot tell.
fs::path fd_path(int fd, const fs::path& fallback) {
  std::array<char, 32> link{};
  std::snprintf(link.data(), link.size(), "/proc/self/fd/%d", fd);
  std::error_code ec;
  fs::path real = fs::read_symlink(link.data(), ec);
  if (ec || !real.is_absolute()) return fallback;
  return real;
}

}  // namespace

namespace tools {
void force_workspace_fallback(bool on) noexcept { g_force_fallback.store(on ? 1 : 0, std::memory_order_relaxed); }
}  // namespace tools

bool Workspace::kernel_beneath() noexcept { return use_kernel(); }

boost::system::result<Workspace, ToolError> Workspace::open(const std::filesystem::path& root, Protection protection) {
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
  auto state = std::make_shared<State>();
  state->fd = UniqueFd(retry_open(AT_FDCWD, real.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC, 0));
  if (!state->fd) {
    return ToolError{ToolErrc::io_error,
                     "cannot open workspace " + in_quotes(root.string()) + ": " + std::strerror(errno)};
  }
  // The folder opened is the root from now on, wherever it is moved.
  state->root = fd_path(state->fd.get(), real);
  for (auto& name : protection.names) {
    if (!name.empty() && std::find(state->names.begin(), state->names.end(), name) == state->names.end())
      state->names.push_back(std::move(name));
  }
  for (auto& entry : protection.paths) {
    if (entry.path.empty()) continue;
    State::Guarded guarded;
    // Real as far as it exists, so that an alias of it (a symlink, `..`) compares equal.
    const fs::path absolute = fs::absolute(entry.path, ec).lexically_normal();
    guarded.path = fs::weakly_canonical(absolute, ec);
    if (ec) guarded.path = absolute;
    guarded.rule = std::move(entry.rule);
    struct stat info {};
    if (::stat(guarded.path.c_str(), &info) == 0) {
      guarded.has_id = true;
      guarded.dev = info.st_dev;
      guarded.ino = info.st_ino;
    }
    state->paths.push_back(std::move(guarded));
  }
  return Workspace(std::move(state));
}

const std::filesystem::path& Workspace::root() const noexcept { return state_->root; }

int Workspace::fd() const noexcept { return state_->fd.get(); }

boost::system::result<Workspace::Opened, ToolError> Workspace::open_existing(std::string_view user_path,
                                                                             int flags) const {
  auto components = split_user_path(user_path);
  if (!components) return components.error();
  auto fd = open_beneath(state_->root, state_->fd.get(), user_path, flags, 0);
  if (!fd) {
    const int err = fd.error();
    if (err == EXDEV) {
      return ToolError{ToolErrc::outside_workspace,
                       "path " + in_quotes(user_path) + " leads outside the workspace through a symlink"};
    }
    if (err == ELOOP) {
      return ToolError{ToolErrc::io_error, in_quotes(user_path) + ": too many levels of symbolic links"};
    }
    if (err == ENOTDIR && names_folder(user_path)) {
      // `file/` or `file/.`: the file exists but is not a folder.
      std::string_view trimmed = user_path;
      while (trimmed.ends_with('/') || trimmed.ends_with("/.")) trimmed.remove_suffix(trimmed.ends_with('/') ? 1 : 2);
      if (auto file = open_beneath(state_->root, state_->fd.get(), trimmed, O_PATH, 0)) {
        return ToolError{ToolErrc::invalid_parameters,
                         in_quotes(display(fd_path(file->get(), state_->root / trimmed))) + " is not a folder"};
      }
    }
    if (err == ENOENT || err == ENOTDIR) return ToolError{ToolErrc::not_found, in_quotes(user_path) + " does not exist"};
    return tools::file_error(err, "open", user_path);
  }
  fs::path real = fd_path(fd->get(), (state_->root / std::string(user_path)).lexically_normal());
  return Opened{std::move(*fd), std::move(real)};
}

boost::system::result<UniqueFd, ToolError> Workspace::open_folder_nofollow(const std::string& relative) const {
  auto fd = open_beneath(state_->root, state_->fd.get(), relative, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0,
                         RESOLVE_NO_SYMLINKS);
  if (!fd) {
    const int err = fd.error() == ELOOP ? EXDEV : fd.error();
    if (err == EXDEV) {
      return ToolError{ToolErrc::outside_workspace, "folder " + in_quotes(relative) + " changed while it was listed"};
    }
    return tools::file_error(err, "open", relative);
  }
  return std::move(*fd);
}

std::optional<std::string> Workspace::protecting_rule(const std::filesystem::path& real) const {
  for (const auto& name : state_->names) {
    for (const auto& element : real) {
      if (element.native() == name) return in_quotes(name + "/");
    }
  }
  for (const auto& guarded : state_->paths) {
    if (is_within(real, guarded.path)) return guarded.rule;
  }
  return std::nullopt;
}

boost::system::result<Workspace::WriteTarget, ToolError> Workspace::open_for_write(std::string_view user_path,
                                                                                   bool create_parents) const {
  auto components = split_user_path(user_path);
  if (!components) return components.error();
  const std::string original(user_path);
  std::string current(user_path);
  const int root_fd = state_->fd.get();
  const auto outside = [&] {
    return ToolError{ToolErrc::outside_workspace,
                     "path " + in_quotes(original) + " leads outside the workspace through a symlink"};
  };
  const auto refused = [&](const fs::path& real, const std::string& rule) {
    return ToolError{ToolErrc::outside_workspace,
                     in_quotes(display(real)) + " is protected (tools.protected: " + rule + ")"};
  };

  for (int links = 0;; ++links) {
    if (links > k_max_symlinks) {
      return ToolError{ToolErrc::io_error, in_quotes(original) + ": too many levels of symbolic links"};
    }
    // Split into the folder and the name written in it.
    std::string_view text = current;
    while (text.size() > 1 && text.ends_with('/')) text.remove_suffix(1);
    const std::size_t slash = text.rfind('/');
    const std::string name(slash == std::string_view::npos ? text : text.substr(slash + 1));
    const std::string parent(slash == std::string_view::npos ? std::string_view(".") : text.substr(0, slash + 1));
    if (name == "." || name == ".." || name.empty()) {
      auto folder = open_existing(current, O_PATH | O_DIRECTORY);
      if (!folder) return folder.error();
      if (folder->real == state_->root) {
        return ToolError{ToolErrc::invalid_parameters, "path " + in_quotes(original) + " names the workspace folder itself"};
      }
      return ToolError{ToolErrc::invalid_parameters, in_quotes(display(folder->real)) + " is a folder"};
    }

    auto dir = open_beneath(state_->root, root_fd, parent, O_PATH | O_DIRECTORY, 0);
    if (!dir && dir.error() == ENOENT) {
      const fs::path parent_path{parent};
      const bool climbs = std::any_of(parent_path.begin(), parent_path.end(),
                                      [](const fs::path& element) { return element.native() == ".."; });
      // `missing/..` names nothing, as for realpath: no folder is made for it.
      if (!create_parents || climbs) {
        return ToolError{ToolErrc::not_found, "the folder of " + in_quotes(original) + " does not exist"};
      }
      // One folder at a time, each opened beneath the root before the next is made in it.
      auto at = open_beneath(state_->root, root_fd, ".", O_PATH | O_DIRECTORY, 0);
      if (!at) return tools::file_error(at.error(), "open the workspace for", original);
      UniqueFd folder = std::move(*at);
      std::string so_far = ".";
      for (const auto& element : fs::path(parent)) {
        const std::string& part = element.native();
        if (part.empty() || part == ".") continue;
        const std::string next_text = tools::join_relative(so_far, part);
        auto next = open_beneath(state_->root, root_fd, next_text, O_PATH | O_DIRECTORY, 0);
        if (!next && next.error() == ENOENT && part != "..") {
          const fs::path would_be = fd_path(folder.get(), state_->root) / part;
          if (!is_within(would_be, state_->root)) return outside();
          if (auto rule = protecting_rule(would_be)) return refused(would_be, *rule);
          if (::mkdirat(folder.get(), part.c_str(), 0777) != 0 && errno != EEXIST) {
            return ToolError{ToolErrc::io_error, "cannot create the folder of " + in_quotes(original) + ": " +
                                                     std::system_category().message(errno)};
          }
          next = open_beneath(state_->root, root_fd, next_text, O_PATH | O_DIRECTORY, 0);
        }
        if (!next) {
          if (next.error() == EXDEV) return outside();
          if (next.error() == ENOENT && part == "..") {
            return ToolError{ToolErrc::not_found, "the folder of " + in_quotes(original) + " does not exist"};
          }
          if (next.error() == ENOTDIR) {
            return ToolError{ToolErrc::invalid_parameters,
                             in_quotes(display(fd_path(folder.get(), state_->root) / part)) + " is not a folder"};
          }
          return ToolError{ToolErrc::io_error, "cannot create the folder of " + in_quotes(original) + ": " +
                                                   std::system_category().message(next.error())};
        }
        folder = std::move(*next);
        so_far = next_text;
      }
      dir = std::move(folder);
    }
    if (!dir) {
      const int err = dir.error();
      if (err == EXDEV) return outside();
      if (err == ELOOP) return ToolError{ToolErrc::io_error, in_quotes(original) + ": too many levels of symbolic links"};
      if (err == ENOTDIR) {
        std::string_view folder_text = parent;
        while (folder_text.size() > 1 && folder_text.ends_with('/')) folder_text.remove_suffix(1);
        if (auto file = open_beneath(state_->root, root_fd, folder_text, O_PATH, 0)) {
          return ToolError{ToolErrc::invalid_parameters,
                           in_quotes(display(fd_path(file->get(), state_->root / std::string(folder_text)))) +
                               " is not a folder"};
        }
        return ToolError{ToolErrc::not_found, "the folder of " + in_quotes(original) + " does not exist"};
      }
      return tools::file_error(err, "open the folder of", original);
    }

    const fs::path dir_real = fd_path(dir->get(), (state_->root / parent).lexically_normal());
    if (!is_within(dir_real, state_->root)) return outside();
    struct stat info {};
    if (::fstatat(dir->get(), name.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(info.st_mode)) {
      // Write where the symlink leads, if that stays inside: an absolute target never does.
      std::array<char, 4096> target{};
      const ssize_t n = ::readlinkat(dir->get(), name.c_str(), target.data(), target.size() - 1);
      if (n < 0) return tools::file_error(errno, "read the symlink", original);
      const std::string_view link(target.data(), static_cast<std::size_t>(n));
      if (link.empty() || link.front() == '/') return outside();
      current = tools::join_relative(parent, link);
      continue;
    }
    const fs::path real = dir_real / name;
    if (auto rule = protecting_rule(real)) return refused(real, *rule);
    for (const auto& guarded : state_->paths) {
      if (guarded.has_id && info.st_ino == guarded.ino && info.st_dev == guarded.dev && info.st_nlink > 0) {
        return refused(real, guarded.rule);
      }
    }
    return WriteTarget{std::move(*dir), name, real};
  }
}

std::string Workspace::display(const std::filesystem::path& abs) const {
  const fs::path relative = abs.lexically_relative(state_->root);
  if (relative.empty()) return abs.generic_string();
  std::string text = relative.generic_string();
  while (text.size() > 1 && text.back() == '/') text.pop_back();
  if (text.empty() || text == ".") return ".";
  return text;
}

}  // namespace dagent
