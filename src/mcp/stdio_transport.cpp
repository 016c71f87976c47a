// StdioTransport: a child process spoken to over pipes, one JSON-RPC message per line.

#include "mcp/stdio_transport.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/serialize.hpp>
#include <simdjson.h>

#include "text/simdjson_boost.hpp"
#include "text/terminal.hpp"
#include "text/utf8.hpp"

extern char** environ;

namespace dagent::mcp {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using Descriptor = asio::as_tuple_t<asio::use_awaitable_t<>>::as_default_on_t<asio::posix::stream_descriptor>;
using Timer = asio::as_tuple_t<asio::use_awaitable_t<>>::as_default_on_t<asio::steady_timer>;
using Result = boost::system::result<void, std::string>;

constexpr std::size_t k_max_outbox_bytes = 64u << 20;
constexpr std::size_t k_max_log_bytes = 4u << 20;
constexpr auto k_exit_grace = std::chrono::seconds(2);  // after closing stdin, then after SIGTERM

// Everything the transport's coroutines share; they hold it by shared_ptr, so a transport
// destroyed while they are suspended leaves them nothing dangling.
struct State {
  explicit State(asio::any_io_executor ex, StdioCommand c)
      : executor(ex), command(std::move(c)), in(ex), out(ex), err(ex), exited(ex), wake(ex), idle(ex) {}

  asio::any_io_executor executor;
  StdioCommand command;
  TransportHandler handler;
  pid_t pid = -1;
  Descriptor in, out, err;  // the child's stdin, stdout, stderr
  Descriptor exited;        // a pidfd: readable once the child has exited
  std::string outbox;       // bytes queued for stdin
  Timer wake;               // wakes the writer when the outbox fills or the transport closes
  Timer idle;               // cancelled when the last coroutine ends
  int running = 0;
  bool closed = false;      // `closed` was reported (or close() called): nothing more is delivered
  bool closing = false;     // close() runs: the writer drains the outbox, then closes stdin
  bool reaped = false;
  int lifeline = -1;        // the write end of the keeper's lifeline: closing it kills the server's group
  std::ofstream log;
  std::size_t logged = 0;
  simdjson::dom::parser parser;  // reused: its buffers grow to the longest line once

  std::string name() const { return "MCP server '" + command.server + "'"; }
  void let_go() {  // after reaping: the keeper is gone, its lifeline no longer needed
    if (lifeline >= 0) ::close(lifeline);
    lifeline = -1;
  }
  ~State() { let_go(); }
};

struct CoroutineDone {
  std::shared_ptr<State> state;
  void operator()(std::exception_ptr) const {
    if (--state->running == 0) state->idle.cancel();
  }
};

void log_line(State& s, std::string_view text) {
  if (!s.log.is_open() || s.logged >= k_max_log_bytes) return;
  s.log << text << '\n';
  s.logged += text.size() + 1;
  if (s.logged >= k_max_log_bytes) s.log << "[dagent: log limit reached; later stderr output dropped]\n";
  s.log.flush();
}

// How the child ended, without reaping it (close() reaps): empty while it runs.
std::string exit_status(pid_t pid) {
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) return {};
  if (info.si_code == CLD_EXITED) return "exited with status " + std::to_string(info.si_status);
  return std::string("was killed by signal ") + ::strsignal(info.si_status);
}

// Reports the channel gone, once; the process is left to close().
void report_closed(State& s, std::string reason) {
  if (s.closed) return;
  s.closed = true;
  s.wake.cancel();
  if (s.log.is_open()) log_line(s, "[dagent: " + reason + "]");
  if (s.command.log_file.empty()) {
    reason += " (its stderr is not kept)";
  } else {
    reason += " (its stderr is in " + s.command.log_file.string() + ")";
  }
  if (auto closed = s.handler.closed) closed(std::move(reason));
}

// Waits for the child to exit, at most `limit`; true when it has.
asio::awaitable<bool> wait_exit(std::shared_ptr<State> s, std::chrono::steady_clock::duration limit) {
  using namespace asio::experimental::awaitable_operators;
  if (!s->exited.is_open()) co_return !exit_status(s->pid).empty();
  Timer timer(s->executor, limit);
  auto done = co_await (s->exited.async_wait(asio::posix::descriptor_base::wait_read) || timer.async_wait());
  co_return done.index() == 0 && !std::get<0>(std::get<0>(done));
}

void on_line(State& s, std::string_view line) {
  // Whitespace alone is not a message (a stray newline); anything else must be a JSON object.
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
  simdjson::dom::element doc;
  if (s.parser.parse(line.data(), line.size()).get(doc) != simdjson::SUCCESS || !doc.is_object()) {
    auto shown = text::for_terminal(text::valid_utf8(line.substr(0, text::utf8_cut(line, 80))));
    report_closed(s, s.name() + " wrote a line that is not a JSON-RPC message: \"" + shown + "\"");
    return;
  }
  auto message = text::to_boost_json(doc);
  if (auto deliver = s.handler.message) deliver(std::move(message.as_object()));
}

asio::awaitable<void> read_stdout(std::shared_ptr<State> s) {
  std::string line;
  std::string buffer(64 << 10, '\0');
  for (;;) {
    auto [ec, n] = co_await s->out.async_read_some(asio::buffer(buffer));
    if (ec) break;
    std::string_view chunk(buffer.data(), n);
    while (!chunk.empty() && !s->closed) {
      const auto newline = chunk.find('\n');
      if (line.size() + (newline == std::string_view::npos ? chunk.size() : newline) > k_max_line_bytes) {
        report_closed(*s, s->name() + " wrote a line longer than " + std::to_string(k_max_line_bytes >> 20) + " MiB");
        co_return;
      }
      if (newline == std::string_view::npos) {
        line.append(chunk);
        break;
      }
      line.append(chunk.substr(0, newline));
      chunk.remove_prefix(newline + 1);
      on_line(*s, line);
      line.clear();
    }
    if (s->closed) co_return;
  }
  if (s->closed) co_return;
  // Its stdout ended: it exited or is about to. Say how, when that is known soon.
  co_await wait_exit(s, std::chrono::seconds(1));
  auto how = exit_status(s->pid);
  report_closed(*s, s->name() + (how.empty() ? " closed its stdout" : " " + how));
}

asio::awaitable<void> drain_stderr(std::shared_ptr<State> s) {
  std::string pending;
  std::string buffer(16 << 10, '\0');
  for (;;) {
    auto [ec, n] = co_await s->err.async_read_some(asio::buffer(buffer));
    if (ec) break;
    pending.append(buffer.data(), n);
    for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
      log_line(*s, std::string_view(pending).substr(0, nl));
      pending.erase(0, nl + 1);
    }
    if (pending.size() > 64 << 10) {  // a line without end is logged in parts
      log_line(*s, pending);
      pending.clear();
    }
  }
  if (!pending.empty()) log_line(*s, pending);
}

// Writes the outbox in order; once closing, writes what is left and closes the child's stdin
// (the first step of the shutdown: the server sees the end of its input).
asio::awaitable<void> write_stdin(std::shared_ptr<State> s) {
  std::string sending;
  while (!s->closed || s->closing) {
    if (s->outbox.empty()) {
      if (s->closing) break;
      s->wake.expires_at(asio::steady_timer::time_point::max());
      co_await s->wake.async_wait();
      continue;
    }
    sending.clear();
    std::swap(sending, s->outbox);
    auto [ec, n] = co_await asio::async_write(s->in, asio::buffer(sending));
    if (ec) {
      if (!s->closed) report_closed(*s, s->name() + ": cannot write to its stdin: " + ec.message());
      break;
    }
  }
  boost::system::error_code ignored;
  s->in.close(ignored);
}

void spawn(std::shared_ptr<State> s, asio::awaitable<void> work) {
  ++s->running;
  asio::co_spawn(s->executor, std::move(work), CoroutineDone{s});
}

// The keeper: the process dagent forks for a server. It leads the server's process group, forks
// the server into it and waits. When the server exits it exits the same way (so dagent sees the
// server's own status); when dagent goes away, however (kill -9 included), its lifeline pipe ends
// and the keeper kills the whole group: the server and everything it started (an `npx` launcher's
// node child, say), which PR_SET_PDEATHSIG alone would miss. It runs only async-signal-safe calls
// (it is a fork of a threaded process that never execs). Fds on entry: 0-2 the server's stdio,
// 3 the lifeline's read end, 4 the status pipe's write end; nothing else is open.
[[noreturn]] void keep(char* const* argv, char* const* envp, const char* cwd) {
  ::signal(SIGTERM, SIG_IGN);  // dagent's SIGTERM to the group is for the server; the keeper waits for it
  const pid_t server = ::fork();
  if (server == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // the keeper killed alone: the server goes too
    ::close(3);
    ::signal(SIGTERM, SIG_DFL);
    ::fcntl(4, F_SETFD, FD_CLOEXEC);
    int failure = 0;
    if (cwd[0] != '\0' && ::chdir(cwd) != 0) failure = errno;
    if (failure == 0) {
      ::execvpe(argv[0], argv, envp);
      failure = errno;
    }
    [[maybe_unused]] auto w = ::write(4, &failure, sizeof failure);
    ::_exit(127);
  }
  if (server < 0) {
    const int failure = errno;
    [[maybe_unused]] auto w = ::write(4, &failure, sizeof failure);
    ::_exit(127);
  }
  ::close(4);
  const int null = ::open("/dev/null", O_RDWR);
  for (int fd = 0; fd <= 2; ++fd) null >= 0 ? ::dup2(null, fd) : ::close(fd);  // the pipes' ends are the server's alone
  if (null > 2) ::close(null);
  const int exited = static_cast<int>(::syscall(SYS_pidfd_open, server, 0));
  for (;;) {
    pollfd watch[2] = {{3, POLLIN, 0}, {exited, POLLIN, 0}};
    if (::poll(watch, exited >= 0 ? 2 : 1, exited >= 0 ? -1 : 200) < 0 && errno != EINTR) break;
    if (watch[0].revents != 0) {  // EOF (or an error): dagent is gone or let go of the server
      char byte;
      if (::read(3, &byte, 1) <= 0) break;
    }
    int status = 0;
    if (::waitpid(server, &status, exited >= 0 ? 0 : WNOHANG) == server) {
      if (WIFEXITED(status)) ::_exit(WEXITSTATUS(status));
      ::signal(WTERMSIG(status), SIG_DFL);
      ::raise(WTERMSIG(status));
      ::_exit(128 + WTERMSIG(status));
    }
  }
  ::kill(-::getpid(), SIGKILL);  // the whole group, this keeper with it
  ::_exit(137);
}

// fork the keeper (above) with the server's stdio, its lifeline and the status pipe on fixed fds
// and nothing else open. Only async-signal-safe calls after fork(): everything is prepared before.
Result start_child(State& s) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    const auto name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& [k, v] : s.command.env) replaced = replaced || k == name;
    for (const auto& hidden : s.command.hidden_env) replaced = replaced || hidden == name;
    if (!replaced) env_strings.emplace_back(entry);
  }
  for (const auto& [k, v] : s.command.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = s.command.argv;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string cwd = s.command.cwd.string();

  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, status[2] = {-1, -1}, lifeline[2] = {-1, -1};
  const auto close_all = [&] {
    for (int* p : {in, out, err, status, lifeline})
      for (int i : {0, 1})
        if (p[i] >= 0) ::close(p[i]);
  };
  for (int* p : {in, out, err, status, lifeline}) {
    if (::pipe2(p, O_CLOEXEC) != 0) {
      const int e = errno;
      close_all();
      return s.name() + ": pipe: " + std::strerror(e);
    }
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    close_all();
    return s.name() + ": fork: " + std::strerror(e);
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    if (::getppid() != parent) ::_exit(127);  // dagent died already
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGINT, SIGQUIT, SIGHUP, SIGCHLD}) ::signal(sig, SIG_DFL);
    // Onto fds 5.. first, so that no dup2 below overwrites a source still to be copied.
    const int from[5] = {in[0], out[1], err[1], lifeline[0], status[1]};
    int moved[5];
    for (int i = 0; i < 5; ++i) moved[i] = ::fcntl(from[i], F_DUPFD, 5);
    for (int i = 0; i < 5; ++i) ::dup2(moved[i], i);  // dup2 clears FD_CLOEXEC
    ::syscall(SYS_close_range, 5u, ~0u, 0u);
    keep(argv.data(), envp.data(), cwd.c_str());
  }
  ::setpgid(pid, pid);  // also here: whichever runs first, the group exists before we signal it
  for (int fd : {in[0], out[1], err[1], status[1], lifeline[0]}) ::close(fd);
  s.pid = pid;
  s.lifeline = lifeline[1];
  int failure = 0;
  ssize_t got;
  do got = ::read(status[0], &failure, sizeof failure);  // returns at exec (the pipe closes) or with errno
  while (got < 0 && errno == EINTR);
  ::close(status[0]);
  s.in.assign(in[1]);
  s.out.assign(out[0]);
  s.err.assign(err[0]);
  if (const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); fd >= 0) s.exited.assign(fd);
  if (got == static_cast<ssize_t>(sizeof failure)) {
    ::waitpid(pid, nullptr, 0);
    s.reaped = true;
    s.let_go();
    return s.name() + ": cannot run '" + s.command.argv.front() + "'" + (cwd.empty() ? "" : " in " + cwd) + ": " +
           std::strerror(failure);
  }
  return {};
}

void kill_group(State& s, int signal) {
  if (s.pid > 0 && !s.reaped) ::kill(-s.pid, signal);
}

class StdioTransport final : public Transport {
 public:
  StdioTransport(asio::any_io_executor executor, StdioCommand command)
      : state_(std::make_shared<State>(executor, std::move(command))) {}

  ~StdioTransport() override {
    auto& s = *state_;
    s.handler = {};
    s.closed = true;
    if (s.pid > 0 && !s.reaped) {
      kill_group(s, SIGKILL);
      ::waitpid(s.pid, nullptr, 0);
      s.reaped = true;
      s.let_go();
    }
    boost::system::error_code ignored;
    s.in.close(ignored), s.out.close(ignored), s.err.close(ignored), s.exited.close(ignored);
    s.wake.cancel();
  }

  void set_handler(TransportHandler handler) override { state_->handler = std::move(handler); }

  asio::awaitable<Result> open() override {
    auto& s = *state_;
    if (s.command.argv.empty()) co_return s.name() + ": no command";
    if (!s.command.log_file.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(s.command.log_file.parent_path(), ec);
      // Appended to across starts, started afresh once it passes the limit: bounded on disk too.
      const auto size = std::filesystem::file_size(s.command.log_file, ec);
      s.log.open(s.command.log_file, !ec && size > k_max_log_bytes ? std::ios::trunc : std::ios::app);
      log_line(s, "[dagent: starting " + describe() + "]");
    }
    if (auto started = start_child(s); !started) {
      s.closed = true;
      log_line(s, "[dagent: " + started.error() + "]");
      co_return started;
    }
    spawn(state_, read_stdout(state_));
    spawn(state_, drain_stderr(state_));
    spawn(state_, write_stdin(state_));
    co_return Result{};
  }

  asio::awaitable<Result> send(json::object message) override {
    auto& s = *state_;
    if (s.closed) co_return s.name() + " is not running";
    if (s.outbox.size() > k_max_outbox_bytes) co_return s.name() + " does not read its stdin";
    // Why serialize once here: a message is one line, and JSON text never holds a raw newline.
    s.outbox += json::serialize(message);
    s.outbox += '\n';
    s.wake.cancel();
    co_return Result{};
  }

  asio::awaitable<void> close() override {
    auto s = state_;
    if (s->pid <= 0 || s->reaped) co_return;
    s->closed = true;
    s->closing = true;
    s->wake.cancel();
    s->handler = {};
    boost::system::error_code ignored;
    if (!co_await wait_exit(s, k_exit_grace)) {
      kill_group(*s, SIGTERM);
      if (!co_await wait_exit(s, k_exit_grace)) kill_group(*s, SIGKILL);
    }
    kill_group(*s, SIGKILL);  // whatever the server left in its group
    ::waitpid(s->pid, nullptr, 0);
    s->reaped = true;
    s->let_go();
    s->in.close(ignored), s->out.close(ignored), s->err.close(ignored), s->exited.close(ignored);
    while (s->running > 0) {
      s->idle.expires_at(asio::steady_timer::time_point::max());
      co_await s->idle.async_wait();
    }
    log_line(*s, "[dagent: stopped]");
  }

  std::string describe() const override {
    std::string out = "stdio:";
    for (const auto& a : state_->command.argv) out += " " + a;
    return out;
  }

 private:
  std::shared_ptr<State> state_;
};

}  // namespace

std::unique_ptr<Transport> make_stdio_transport(asio::any_io_executor executor, StdioCommand command) {
  return std::make_unique<StdioTransport>(std::move(executor), std::move(command));
}

}  // namespace dagent::mcp
