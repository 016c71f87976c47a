#pragma once
// Progress of a run on stderr: a redrawn block of running steps on a terminal, plain lines
// otherwise, and a closing summary.

#include <chrono>
#include <cstdio>
#include <map>
#include <string>

#include "dagent/run_result.hpp"

namespace dagent::cli {

class LiveView {
 public:
  enum class Mode { terminal, lines, quiet };

  LiveView(Mode mode, std::FILE* out) : mode_(mode), out_(out) {}

  /// The run is about to start: its id, task and step count.
  void start(const RunResult& skeleton);
  /// One step changed state.
  void on_event(const StepEvent& event);
  /// Clears the live block and prints the summary of `result`.
  void finish(const RunResult& result);

 private:
  struct Running {
    std::string action;
    double since_ms = 0;
  };
  void redraw(double now_ms, bool force);
  void clear_block();

  Mode mode_;
  std::FILE* out_;
  std::size_t total_ = 0;
  std::size_t done_ = 0, failed_ = 0, skipped_ = 0;
  std::map<int, Running> running_;
  int drawn_lines_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace dagent::cli
