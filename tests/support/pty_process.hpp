#pragma once
// Runs a program on a real pseudo-terminal and captures every byte it writes to it, for tests of
// what reaches a user's terminal. Self-contained (forkpty from <pty.h>, in glibc's libc).

#include <filesystem>
#include <string>
#include <vector>

namespace dagent::test {

struct PtyResult {
  int exit_code = -1;  ///< 128 + signal when killed
  std::string bytes;   ///< everything written to the terminal (stdout and stderr), in order
};

/// Runs `argv` in `cwd` with stdin, stdout and stderr on the slave side of a new pseudo-terminal
/// (120 columns, 40 rows; output post-processing off, so "\n" is not turned into "\r\n" and every
/// byte is the program's own), with this process's environment plus `env` ("NAME=value", which
/// win). Reads the master side until the program and everything it started closed the terminal,
/// then returns the exit code and the bytes. Throws std::runtime_error if it cannot start.
PtyResult run_on_pty(const std::vector<std::string>& argv, const std::filesystem::path& cwd,
                     const std::vector<std::string>& env = {});

}  // namespace dagent::test
