#pragma once
// Helpers for the tools tests: a fresh workspace per test, with room beside it for "outside".

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>

#include "dagent/tool.hpp"
#include "dagent/workspace.hpp"

namespace dagent::tools::test {

namespace fs = std::filesystem;

/// A new empty folder under the system temp folder, removed with its contents at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "dagent-tools-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const noexcept { return path_; }

 private:
  fs::path path_;
};

/// Writes `content` to `path`, creating its folders.
inline void write_text(const fs::path& path, std::string_view content) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

/// The whole content of `path`.
inline std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// A workspace at <temp>/ws, with <temp>/outside/secret.txt and <temp>/ws2/secret.txt beside it.
class WorkspaceFixture {
 public:
  /// `protection` as Workspace::open takes it; relative paths are relative to the workspace here.
  explicit WorkspaceFixture(Protection protection = {})
      : root_(make_root(temp_)), workspace_(open(root_, absolute_in(root_, std::move(protection)))) {
    write_text(temp_.path() / "outside" / "secret.txt", "outside secret\n");
    write_text(temp_.path() / "ws2" / "secret.txt", "ws2 secret\n");
  }

  /// The folder holding ws, outside and ws2.
  const fs::path& base() const noexcept { return temp_.path(); }
  /// The canonical workspace root.
  const fs::path& root() const noexcept { return workspace_.root(); }
  const Workspace& workspace() const noexcept { return workspace_; }

  /// A context for tool calls in this workspace, without a worker pool.
  ToolContext context() const {
    ToolContext ctx;
    ctx.step_id = 1;
    ctx.workspace = &workspace_;
    ctx.cancelled = cancelled_;
    return ctx;
  }
  /// Sets the flag the contexts share.
  void cancel() const { cancelled_->store(true); }

  /// Writes a file below the root.
  void write(std::string_view relative, std::string_view content) const { write_text(root_ / relative, content); }

 private:
  static fs::path make_root(const TempDir& temp) {
    fs::create_directory(temp.path() / "ws");
    return temp.path() / "ws";
  }
  static Protection absolute_in(const fs::path& root, Protection protection) {
    for (auto& entry : protection.paths) {
      if (entry.path.is_relative()) entry.path = root / entry.path;
    }
    return protection;
  }
  static Workspace open(const fs::path& root, Protection protection) {
    auto ws = Workspace::open(root, std::move(protection));
    if (!ws) throw std::runtime_error(ws.error().message);
    return std::move(*ws);
  }

  TempDir temp_;
  fs::path root_;
  Workspace workspace_;
  std::shared_ptr<std::atomic<bool>> cancelled_ = std::make_shared<std::atomic<bool>>(false);
};

/// Parses a JSON object literal.
inline boost::json::object object(std::string_view text) { return boost::json::parse(text).as_object(); }

}  // namespace dagent::tools::test
