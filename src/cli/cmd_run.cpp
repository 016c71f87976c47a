#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include "cli/approval_prompt.hpp"
#include "cli/terminal_out.hpp"
#include "cli/commands.hpp"
#include "cli/live_view.hpp"
#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"
#include "observe/metrics.hpp"
#include "record/recording.hpp"
#include "runtime/resume.hpp"
#include "text/json_utf8.hpp"

namespace dagent::cli {

namespace {

// The task a recording ran: its header's task file (relative to the recording's folder) or
// configured task name; empty with *error set when the header cannot be read.
std::string task_of_recording(const std::filesystem::path& recording, std::string* error) {
  auto header = record::read_header(recording);
  if (!header) {
    *error = header.error();
    return {};
  }
  const auto* fields = &*header;
  std::string ref;
  if (const auto* r = fields->if_contains("task_ref"); r && r->is_string()) ref = r->get_string();
  if (ref.empty()) {
    *error = recording.string() + ":1: the recording names no task; give it: dagent run TASK --replay " + recording.string();
    return {};
  }
  // Never a file outside the recording's folder unless given on the command line (issue 13).
  auto beside = runtime::recorded_file(recording, "task_ref", ref, error);
  if (!error->empty()) return {};
  return beside ? beside->string() : ref;
}

}  // namespace

int replay_command(const Options& options) {
  if (options.args.size() != 1) {
    print_safe(stderr, "dagent: replay takes one RECORDING (a file written with --record)\n");
    return 2;
  }
  Options run = options;
  run.replay_file = options.args[0];
  std::string error;
  auto task = task_of_recording(run.replay_file, &error);  // its config: see load_runtime()
  if (task.empty()) {
    print_safe(stderr, "dagent: %s\n", error.c_str());
    return 2;
  }
  run.args = {task};
  return run_command(run);
}

int run_command(const Options& options) {
  Options given = options;
  if (given.args.empty() && !given.resume_file.empty()) {  // `dagent run --resume FILE`: the recorded task
    std::string error;
    auto task = task_of_recording(given.resume_file, &error);
    if (task.empty()) {
      print_safe(stderr, "dagent: %s\n", error.c_str());
      return 2;
    }
    given.args = {task};
  }
  if (given.args.size() != 1) {
    print_safe(stderr, "dagent: run takes one TASK (a task file or a task name from config.yaml)\n");
    return 2;
  }
  // A resumed recording is appended to, not replaced; any other file at the path is a previous
  // recording (or not a recording at all) that only --force may replace. A device or pipe
  // (/dev/stdout) is written to, not replaced.
  std::error_code fs_ec;
  const auto target = std::filesystem::status(given.record_file, fs_ec);
  if (!given.record_file.empty() && !given.force && given.record_file != given.resume_file &&
      std::filesystem::exists(std::filesystem::symlink_status(given.record_file, fs_ec)) &&
      !std::filesystem::is_character_file(target) && !std::filesystem::is_fifo(target)) {
    print_safe(stderr, "dagent: --record: %s already exists; give --force to replace it\n",
                 given.record_file.c_str());
    return 2;
  }
  auto runtime = load_runtime(given);
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
  run_options.record_file = given.record_file;
  run_options.record_replace = given.force;
  run_options.replay_file = given.replay_file;
  run_options.replay_tools = given.replay_tools;
  run_options.replay_instant = given.replay_instant;
  run_options.resume_file = given.resume_file;
  // tools.approval: consent given in advance, else asked on the terminal when there is one (a
  // replay answers from its recording and never asks).
  run_options.approve_tools = given.approve;
  run_options.approve_all = given.yes;
  std::optional<ApprovalPrompt> prompt;
  if (given.replay_file.empty() && ApprovalPrompt::available()) {
    prompt.emplace(view, stderr);
    run_options.approve = ApprovalPromptHook{&*prompt};
  }

  auto outcome = runtime::run_task(*runtime, given.args[0], run_options);
  if (!outcome.problems.empty()) {
    for (const auto& p : outcome.problems) print_safe(stderr, "%s\n", p.c_str());
    if (outcome.unreachable) {
      print_safe(stderr, "dagent: the model could not be reached, nothing was run\n");
    } else {
      print_safe(stderr, "dagent: invalid input, nothing was run (%zu problem%s)\n", outcome.problems.size(),
                   outcome.problems.size() == 1 ? "" : "s");
    }
    return outcome.exit_code();
  }
  // An output the caller asked for and did not get fails the run, as --trace does.
  if (!options.metrics_file.empty()) {
    if (auto written = observe::write_metrics_file(options.metrics_file); !written) {
      auto& r = outcome.result;
      r.error += (r.error.empty() ? "" : "; ") + written.error();
      r.status = RunStatus::failed;
    }
  }
  view.finish(runtime::to_public(outcome.result));
  if (!outcome.result.error.empty() && !outcome.result.interrupted)
    print_safe(stderr, "dagent: %s\n", outcome.result.error.c_str());
  if (options.json) std::printf("%s\n", json_for_terminal(text::serialize_valid(to_json(outcome.result))).c_str());
  int code = outcome.exit_code();
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout) != 0) {  // a full disk or closed pipe: the result is lost
    print_safe(stderr, "dagent: cannot write the %s to stdout: %s\n", options.json ? "result JSON" : "answer",
                 errno != 0 ? std::strerror(errno) : "write error");
    if (code == 0) code = 1;
  }
  // The run's memory update is stored after its result is out (background_tasks.memory_updates).
  for (const auto& p : runtime->finish_background()) print_safe(stderr, "dagent: %s\n", p.c_str());
  return code;
}

}  // namespace dagent::cli
