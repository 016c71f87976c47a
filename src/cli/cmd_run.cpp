#include <unistd.h>

#include <cstdio>

#include <boost/json/serialize.hpp>

#include "cli/commands.hpp"
#include "cli/live_view.hpp"
#include "dagent/runtime.hpp"

namespace dagent::cli {

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
  // The answer is the run's main output: stdout, unless stdout carries the JSON result.
  LiveView view(mode, stderr, options.json ? stderr : stdout);
  RunOptions run_options;
  run_options.on_start = StartHook{&view};
  run_options.on_event = EventHook{&view};
  run_options.on_planning = PlanningHook{&view};
  run_options.on_answer = AnswerHook{&view};
  run_options.trace_file = options.trace_file;
  run_options.stop_on_sigint = true;

  auto outcome = runtime->run_task(options.args[0], run_options);
  if (!outcome.problems.empty()) {
    for (const auto& p : outcome.problems) std::fprintf(stderr, "%s\n", p.c_str());
    if (outcome.unreachable) {
      std::fprintf(stderr, "dagent: the model could not be reached, nothing was run\n");
    } else {
      std::fprintf(stderr, "dagent: invalid input, nothing was run (%zu problem%s)\n", outcome.problems.size(),
                   outcome.problems.size() == 1 ? "" : "s");
    }
    return outcome.exit_code();
  }
  view.finish(outcome.result);
  if (!outcome.result.error.empty() && !outcome.result.interrupted)
    std::fprintf(stderr, "dagent: %s\n", outcome.result.error.c_str());
  if (options.json) std::printf("%s\n", boost::json::serialize(to_json(outcome.result)).c_str());
  std::fflush(stdout);
  // The run's memory update is stored after its result is out (background_tasks.memory_updates).
  for (const auto& p : runtime->finish_background()) std::fprintf(stderr, "dagent: %s\n", p.c_str());
  return outcome.exit_code();
}

}  // namespace dagent::cli
