#include "support/pty_process.hpp"
#include "support/process.hpp"

#include <pty.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string_view>

extern char** environ;

namespace dagent::test {

PtyResult run_on_pty(const std::vector<std::string>& argv, const std::filesystem::path& cwd,
                     const std::vector<std::string>& env) {
  // Everything the child needs is made before the fork: after it, only async-signal-safe calls.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings = environment_with(env);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string dir = cwd.string();

  winsize size{};
  size.ws_col = 120;
  size.ws_row = 40;
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, &size);
  if (pid < 0) throw std::runtime_error("forkpty failed");
  if (pid == 0) {
    termios t{};
    if (tcgetattr(STDOUT_FILENO, &t) == 0) {
      t.c_oflag &= ~static_cast<tcflag_t>(OPOST);
      tcsetattr(STDOUT_FILENO, TCSANOW, &t);
    }
    if (chdir(dir.c_str()) != 0) _exit(126);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  PtyResult r;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n > 0) {
      r.bytes.append(buf, static_cast<std::size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // EIO: every slave descriptor is closed (the program is done)
    }
  }
  ::close(master);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

}  // namespace dagent::test
