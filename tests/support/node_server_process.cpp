#include "support/node_server_process.hpp"

#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>

namespace dagent::test {

namespace {

constexpr auto k_startup_timeout = std::chrono::seconds(20);  // Node under a loaded ASan run
constexpr int k_listen_fd = 3;

std::filesystem::path find_node() {
  const char* path = std::getenv("PATH");
  std::string_view rest = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    const auto colon = rest.find(':');
    const std::filesystem::path candidate = std::filesystem::path(rest.substr(0, colon)) / "node";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  throw std::runtime_error("node is not on the PATH (scripts/install-mcp-servers.sh installs it)");
}

}  // namespace

std::filesystem::path server_everything_script() {
  return std::filesystem::path(DAGENT_SOURCE_DIR) /
         "tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js";
}

NodeServer::NodeServer(const std::filesystem::path& script, const std::vector<std::string>& args,
                       const std::vector<std::string>& env) {
  if (!std::filesystem::exists(script))
    throw std::runtime_error(script.string() + " is missing: run scripts/install-mcp-servers.sh");
  // Everything the child needs is made before fork(): after it only async-signal-safe calls.
  std::vector<std::string> argv = {find_node().string(), "--require",
                                   std::string(DAGENT_SOURCE_DIR) + "/tests/mcp/loopback.cjs", script.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> extra = {"PORT=0", "DAGENT_LISTEN_FD=" + std::to_string(k_listen_fd)};
  extra.insert(extra.end(), env.begin(), env.end());
  std::vector<std::string> environment = environment_with(extra);
  std::vector<char*> argp, envp;
  for (auto& a : argv) argp.push_back(a.data());
  argp.push_back(nullptr);
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string log_path = (dir_.path() / "server.log").string();

  int listen_pipe[2];
  if (::pipe2(listen_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log_fd < 0) {
    ::close(listen_pipe[0]);
    ::close(listen_pipe[1]);
    throw std::runtime_error("cannot create " + log_path);
  }
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(log_fd, 1) < 0 || ::dup2(log_fd, 2) < 0 ||
        ::dup2(listen_pipe[1], k_listen_fd) < 0)
      ::_exit(127);
    ::execve(argp[0], argp.data(), envp.data());
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(listen_pipe[1]);
  if (pid_ < 0) {
    ::close(listen_pipe[0]);
    throw std::runtime_error("fork failed");
  }
  const std::string line = read_line(listen_pipe[0], k_startup_timeout);
  ::close(listen_pipe[0]);
  constexpr std::string_view k_prefix = "listening 127.0.0.1 ";
  const int port = line.starts_with(k_prefix) ? std::atoi(line.c_str() + k_prefix.size()) : 0;
  if (port <= 0 || port > 65535) {
    stop();
    throw std::runtime_error("the Node server did not start (\"" + line + "\"); its output:\n" + log());
  }
  port_ = static_cast<unsigned short>(port);
}

NodeServer::~NodeServer() { stop(); }

void NodeServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string NodeServer::log() const { return read_text(dir_.path() / "server.log"); }

}  // namespace dagent::test
