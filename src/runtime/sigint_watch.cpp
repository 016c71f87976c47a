#include "runtime/sigint_watch.hpp"

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <mutex>

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/buffer.hpp>

namespace dagent::runtime {

namespace {

// The handler's byte reaches the loop through this pipe, made once per process and kept: the
// handler may run at any moment, so the descriptors it writes to never close.
int g_pipe[2] = {-1, -1};
std::atomic<int> g_count = 0;      // SIGINTs caught during the active watch
std::atomic<bool> g_active = false;  // one watch at a time
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free);

extern "C" void on_sigint(int) {
  const int saved_errno = errno;
  if (g_count.fetch_add(1) > 0) ::_exit(130);  // a second Ctrl-C: at once, no result (README: exit 130)
  const char byte = 'i';
  (void)!::write(g_pipe[1], &byte, 1);
  errno = saved_errno;
}

bool make_pipe() {
  static std::once_flag once;
  static bool made = false;
  std::call_once(once, [] { made = ::pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) == 0; });
  return made;
}

void drain_pipe() {
  char buf[64];
  while (::read(g_pipe[0], buf, sizeof buf) > 0) {
  }
}

}  // namespace

struct SigintWatch::State {
  std::function<void()> on_first;
  char byte = 0;
  bool acted = false;
  bool gone = false;  // the watch ended: a read that completed before it did acts on nothing
};

struct SigintWatch::OnByte {
  std::shared_ptr<State> state;
  void operator()(const boost::system::error_code& ec, std::size_t n) const {
    if (ec || n == 0 || state->gone) return;
    state->acted = true;
    state->on_first();
  }
};

SigintWatch::SigintWatch(boost::asio::any_io_executor loop, std::function<void()> on_first)
    : pipe_(loop), state_(std::make_shared<State>()) {
  state_->on_first = std::move(on_first);
  if (!make_pipe() || g_active.exchange(true)) return;
  if (::sigaction(SIGINT, nullptr, &saved_) != 0 || saved_.sa_handler == SIG_IGN) {
    g_active = false;
    return;
  }
  const int fd = ::fcntl(g_pipe[0], F_DUPFD_CLOEXEC, 0);  // the descriptor object closes its own copy
  if (fd < 0) {
    g_active = false;
    return;
  }
  pipe_.assign(fd);
  drain_pipe();  // a byte left by an earlier watch's last moment was passed on already
  g_count = 0;
  struct sigaction ours {};
  ours.sa_handler = on_sigint;
  sigemptyset(&ours.sa_mask);
  ours.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &ours, nullptr);
  active_ = true;
  pipe_.async_read_some(boost::asio::buffer(&state_->byte, 1), OnByte{state_});
}

SigintWatch::~SigintWatch() {
  if (!active_) return;
  ::sigaction(SIGINT, &saved_, nullptr);
  boost::system::error_code ignored;
  pipe_.close(ignored);  // a read still waiting ends with operation_aborted
  state_->gone = true;
  const bool unheard = g_count.load() > 0 && !state_->acted;
  g_active = false;
  // Caught after the loop stopped reading: the run is over, so the signal is the program's again.
  if (unheard) std::raise(SIGINT);
}

}  // namespace dagent::runtime
