#pragma once
// SIGINT for the blocking calls (RunOptions::stop_on_sigint): while a SigintWatch lives, the first
// SIGINT calls its callback on the loop and a second ends the process at once with status 130.
//
// Why not asio::signal_set: when its last set goes it installs SIG_DFL, not the handler that was
// there before, so an embedding program (Python's KeyboardInterrupt handler, a service's drain)
// lost its own handling after one run, and a Ctrl-C in the moment before the program put its
// handler back killed it. Here one sigaction() installs ours and one puts the earlier one back,
// so some handler is always installed, and a SIGINT that arrives after the run stopped listening
// is passed on to that earlier handler instead of being lost.

#include <csignal>
#include <functional>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

namespace dagent::runtime {

class SigintWatch {
 public:
  /// Installs the handler unless SIGINT is ignored (a program started with `nohup` or `&` keeps
  /// it ignored) or another SigintWatch of this process is active (one at a time: the first
  /// keeps it). `on_first` runs on `loop`, at most once.
  SigintWatch(boost::asio::any_io_executor loop, std::function<void()> on_first);
  /// Puts the earlier handler back; a SIGINT this watch caught but did not act on goes to it.
  ~SigintWatch();
  SigintWatch(const SigintWatch&) = delete;
  SigintWatch& operator=(const SigintWatch&) = delete;

  /// False when SIGINT was left alone (see the constructor).
  bool active() const noexcept { return active_; }

 private:
  struct State;
  struct OnByte;
  boost::asio::posix::stream_descriptor pipe_;
  std::shared_ptr<State> state_;  // shared with the read's handler, which may run after the watch is gone
  struct sigaction saved_ {};
  bool active_ = false;
};

}  // namespace dagent::runtime
