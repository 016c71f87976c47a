#include <unistd.h>

#include <cstdio>

#include <boost/json/serialize.hpp>

#include "cli/commands.hpp"
#include "cli/live_view.hpp"
#include "dagent/runtime.hpp"

namespace dagent::cli {

namespace {

// RunOptions hooks that forward to the view (named types: no capturing lambdas needed).
struct StartHook {
  LiveView* view;
  void operator()(const RunResult& r) const { view->start(r); }
};
struct EventHook {
  LiveView* view;
  void operator()(const StepEvent& e) const { view->on_event(e); }
};

}  // namespace

int run_command(const Options& options) {
  if (options.args.size() != 1) {
    std::fprintf(stderr, "dagent: run takes one TASK (a task file or a task name from config.yaml)\n");
    return 2;
  }
  auto runtime = load_runtime(options);
  if (!runtime) return 2;

  auto mode = options.verbosity < 0           ? LiveView::Mode::quiet
              : ::isatty(STDERR_FILENO) == 1 ? LiveView::Mode::terminal
                                              : LiveView::Mode::lines;
  LiveView view(mode, stderr);
  RunOptions run_options;
  run_options.on_start = StartHook{&view};
  run_options.on_event = EventHook{&view};
  run_options.trace_file = options.trace_file;
  run_options.stop_on_sigint = true;

  auto outcome = runtime->run_task(options.args[0], run_options);
  if (!outcome.problems.empty()) {
    for (const auto& p : outcome.problems) std::fprintf(stderr, "%s\n", p.c_str());
    std::fprintf(stderr, "dagent: invalid input, nothing was run (%zu problem%s)\n", outcome.problems.size(),
                 outcome.problems.size() == 1 ? "" : "s");
    return outcome.exit_code();
  }
  view.finish(outcome.result);
  if (!outcome.result.error.empty() && !outcome.result.interrupted)
    std::fprintf(stderr, "dagent: %s\n", outcome.result.error.c_str());
  if (options.json) std::printf("%s\n", boost::json::serialize(to_json(outcome.result)).c_str());
  return outcome.exit_code();
}

}  // namespace dagent::cli
