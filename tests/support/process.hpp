#pragma once
// Runs a program for end-to-end tests and captures its exit code and output.

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace dagent::test {

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

/// This process's environment ("NAME=value" entries) with `env`'s entries added; they win over
/// the ones of the same name.
std::vector<std::string> environment_with(const std::vector<std::string>& env);

/// Runs `argv` in `cwd` with no stdin and this process's environment plus `env` ("NAME=value"
/// entries, which win); returns its exit code, stdout and stderr.
ProcessResult run_process(const std::vector<std::string>& argv, const std::filesystem::path& cwd,
                          const std::vector<std::string>& env = {});

/// A fresh empty folder under the system temp folder, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  /// Writes `content` to `relative` (parents created) and returns the full path.
  std::filesystem::path write(const std::string& relative, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

/// The first line written to `fd` (a child's stdout: "listening on ..."), or what was read when
/// it closed or `timeout` passed.
std::string read_line(int fd, std::chrono::milliseconds timeout);

std::string read_text(const std::filesystem::path& path);

/// A program started for a test and not yet waited for (to be killed in the middle of its work).
/// Killed with SIGKILL and reaped on destruction if still running.
class ChildProcess {
 public:
  /// Starts `argv` as run_process() does.
  ChildProcess(const std::vector<std::string>& argv, const std::filesystem::path& cwd,
               const std::vector<std::string>& env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  int pid() const { return pid_; }
  void kill(int signal) const;
  /// Waits for the exit; the exit code is 128 + signal when killed.
  ProcessResult wait();

 private:
  TempDir io_;  // its stdout and stderr files
  int pid_ = 0;
};

}  // namespace dagent::test
