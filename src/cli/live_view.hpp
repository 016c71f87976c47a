#pragma once
// Progress of a run on stderr: a redrawn block of running steps on a terminal, plain lines
// otherwise, and a closing summary.

#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <string_view>
#include <string>

#include "dagent/run_result.hpp"
#include "text/terminal.hpp"

namespace dagent::cli {

class LiveView {
 public:
  enum class Mode { terminal, lines, quiet };

  /// Progress goes to `out`; the streamed answer to `answer_out`.
  LiveView(Mode mode, std::FILE* out, std::FILE* answer_out) : mode_(mode), out_(out), answer_out_(answer_out) {}

  /// The run is about to start: its id, task and step count.
  void start(const RunResult& skeleton);
  /// One step changed state, or one item of a for_each step (a progress count, never a line per
  /// item except for a failed one).
  void on_event(const StepEvent& event);
  /// A planner phase started or finished.
  void on_planning(const PlanningEvent& event);
  /// A piece of the streamed answer.
  void on_answer(std::string_view piece);
  /// Clears the live block and prints the summary of `result`.
  void finish(const RunResult& result);
  /// The terminal asks the user something (tools.approval): the live block is cleared and what
  /// the view prints meanwhile is held; resume() writes it out and redraws.
  void pause();
  void resume();

 private:
  struct Running {
    std::string action;
    double since_ms = 0;
    std::string note;  ///< the latest message of a running step (a tool's progress), filtered
    int items = -1;  ///< for_each: the items, and how many finished / failed
    int items_done = 0;
    int items_failed = 0;
  };
  void on_item(const StepEvent& event);
  void redraw(double now_ms, bool force);
  void clear_block();

  Mode mode_;
  std::FILE* out_;
  std::FILE* answer_out_;
  bool answering_ = false;
  text::TerminalFilter answer_filter_;  // the answer streams in pieces; a sequence may span two
  std::string answer_safe_;
  std::set<int> seen_;  // steps of a streamed plan are counted as they appear
  std::size_t total_ = 0;
  std::size_t done_ = 0, failed_ = 0, skipped_ = 0;
  std::map<int, Running> running_;
  int drawn_lines_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
  std::FILE* held_ = nullptr;  // while paused: out_ is this memory stream, the real stream is here
  char* held_text_ = nullptr;
  std::size_t held_size_ = 0;
};

/// RunOptions hooks that forward to a view (named types: no capturing lambdas needed).
struct StartHook {
  LiveView* view;
  void operator()(const RunResult& r) const { view->start(r); }
};
struct EventHook {
  LiveView* view;
  void operator()(const StepEvent& e) const { view->on_event(e); }
};
struct PlanningHook {
  LiveView* view;
  void operator()(const PlanningEvent& e) const { view->on_planning(e); }
};
struct AnswerHook {
  LiveView* view;
  void operator()(std::string_view piece) const { view->on_answer(piece); }
};

}  // namespace dagent::cli
