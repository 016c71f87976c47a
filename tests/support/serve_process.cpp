#include "support/serve_process.hpp"

#include "support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <stdexcept>

namespace dagent::test {

namespace {

constexpr auto k_startup_timeout = std::chrono::seconds(20);

}  // namespace

HttpRequest get(std::string target) {
  HttpRequest r;
  r.target = std::move(target);
  return r;
}

ServeProcess::ServeProcess(std::vector<std::string> args, const std::filesystem::path& cwd,
                           const std::vector<std::string>& env) {
  args.insert(args.begin(), {DAGENT_BINARY, "serve", "--listen", "127.0.0.1:0"});
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  const auto err_path = io_.path() / "stderr";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = environment_with(env);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    pid_ = -1;
    throw std::runtime_error("cannot start dagent serve");
  }
  const std::string line = read_line(out[0], k_startup_timeout);
  ::close(out[0]);  // it prints nothing else on stdout
  constexpr std::string_view k_prefix = "dagent serve: listening on http://127.0.0.1:";
  int port = 0;
  if (line.starts_with(k_prefix)) port = std::atoi(line.c_str() + k_prefix.size());
  if (port <= 0 || port > 65535) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    throw std::runtime_error("dagent serve did not start (first line: \"" + line + "\"): " + err());
  }
  port_ = static_cast<unsigned short>(port);
}

ServeProcess::~ServeProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

HttpReply ServeProcess::request(HttpRequest r, std::chrono::milliseconds timeout) const {
  return requests({std::move(r)}, timeout).front();
}

std::vector<HttpReply> ServeProcess::requests(std::vector<HttpRequest> list, std::chrono::milliseconds timeout) const {
  if (!token.empty())
    for (auto& r : list) r.headers.emplace_back("Authorization", "Bearer " + token);
  return http_requests(port_, list, timeout);
}

void ServeProcess::kill(int signal) const {
  if (pid_ > 0) ::kill(pid_, signal);
}

ProcessResult ServeProcess::wait() {
  ProcessResult r;
  int status = 0;
  if (pid_ > 0 && ::waitpid(pid_, &status, 0) == pid_)
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  pid_ = -1;
  r.err = err();
  return r;
}

std::string ServeProcess::err() const { return read_text(io_.path() / "stderr"); }

}  // namespace dagent::test
