#include <cstdio>

#include <boost/json/serialize.hpp>

#include "cli/terminal_out.hpp"
#include "cli/commands.hpp"
#include "cli/live_view.hpp"
#include "dagent/runtime.hpp"
#include "text/json_utf8.hpp"

namespace dagent::cli {

namespace {

std::string join(const std::vector<int>& ids, std::string_view sep) {
  std::string out;
  for (int id : ids) {
    if (!out.empty()) out += sep;
    out += std::to_string(id);
  }
  return out;
}

boost::json::array to_array(const std::vector<int>& ids) {
  boost::json::array a;
  for (int id : ids) a.emplace_back(id);
  return a;
}

}  // namespace

int plan_command(const Options& options) {
  if (options.args.size() != 1) {
    print_safe(stderr, "dagent: plan takes one TASK (a task file or a task name from config.yaml)\n");
    return 2;
  }
  auto runtime = load_runtime(options);
  if (!runtime) return 2;
  LiveView view(options.verbosity < 0 ? LiveView::Mode::quiet : LiveView::Mode::lines, stderr, stdout);
  RunOptions run_options;
  run_options.on_planning = PlanningHook{&view};
  auto report = runtime->plan_task(options.args[0], run_options);
  if (!report.problems.empty()) {
    for (const auto& p : report.problems) print_safe(stderr, "%s\n", p.c_str());
    if (report.unreachable) {
      print_safe(stderr, "dagent: the model could not be reached\n");
      return 3;
    }
    print_safe(stderr, "dagent: the plan is invalid (%zu problem%s)\n", report.problems.size(),
                 report.problems.size() == 1 ? "" : "s");
    return 2;
  }
  if (options.json) {
    boost::json::array levels;
    for (const auto& level : report.levels) levels.emplace_back(to_array(level));
    boost::json::object out{{"task", report.task},
                            {"plan", report.plan},
                            {"levels", std::move(levels)},
                            {"critical_path", to_array(report.critical_path)}};
    std::printf("%s\n", json_for_terminal(text::serialize_valid(out)).c_str());
    return 0;
  }
  const auto* steps = report.plan.if_array();
  if (!steps && report.plan.is_object()) steps = report.plan.get_object().at("steps").if_array();
  print_safe(stdout, "task %s: %zu steps, %zu levels\n", report.task.c_str(), steps ? steps->size() : 0, report.levels.size());
  if (steps) {
    for (const auto& s : *steps) print_safe(stdout, "  %s\n", boost::json::serialize(s).c_str());
  }
  for (std::size_t i = 0; i < report.levels.size(); ++i)
    print_safe(stdout, "level %zu: %s\n", i, join(report.levels[i], ", ").c_str());
  print_safe(stdout, "critical path: %s (%zu steps)\n", join(report.critical_path, " -> ").c_str(),
              report.critical_path.size());
  return 0;
}

}  // namespace dagent::cli
