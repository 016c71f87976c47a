// `dagent worker [--name NAME] [--concurrency N] [--workspace-root DIR]...`: runs the steps of
// distributed runs (README "Running on many machines") until SIGTERM or SIGINT.

#include <cstdio>
#include <string>
#include <variant>

#include "cli/commands.hpp"
#include "cli/terminal_out.hpp"
#include "config/loader.hpp"
#include "distributed/worker_process.hpp"

namespace dagent::cli {

int worker_command(const Options& options) {
  if (!options.args.empty()) {
    print_safe(stderr, "dagent worker: unexpected argument '%s'\n", options.args.front().c_str());
    return 2;
  }
  auto path = config_path(options);
  if (auto* error = std::get_if<std::string>(&path)) {
    print_safe(stderr, "dagent: %s\n", error->c_str());
    return 2;
  }
  config::Config cfg;
  if (const auto& file = std::get<std::filesystem::path>(path); !file.empty()) {
    auto loaded = config::load_file(file);
    if (!loaded) {
      for (const auto& line : loaded.error().lines()) print_safe(stderr, "%s\n", line.c_str());
      return 2;
    }
    cfg = std::move(*loaded);
  }
  if (auto problems = config::apply_overrides(cfg, options.overrides); !problems.empty()) {
    for (const auto& line : config::Problems{std::move(problems)}.lines()) print_safe(stderr, "%s\n", line.c_str());
    return 2;
  }
  distributed::WorkerProcessOptions wo;
  wo.name = options.worker_name;
  wo.concurrency = options.concurrency;
  wo.workspace_roots = options.workspace_roots;
  wo.quiet = options.verbosity < 0;
  return distributed::run_worker_process(cfg, std::move(wo));
}

}  // namespace dagent::cli
