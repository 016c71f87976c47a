#pragma once
// The subcommands; each returns the process exit code (SPEC.md §1).

#include <memory>

#include "cli/options.hpp"

namespace dagent {
class Runtime;
}

namespace dagent::cli {

/// Loads the config of `options` into a Runtime, or prints every problem and returns nullptr. A
/// replay without --config runs with its recording's effective config (and --set over it).
std::unique_ptr<Runtime> load_runtime(const Options& options);

int run_command(const Options& options);
int replay_command(const Options& options);
int plan_command(const Options& options);
int validate_command(const Options& options);
int ingest_command(const Options& options);
int memory_command(const Options& options);
int mcp_command(const Options& options);
int worker_command(const Options& options);
int runs_command(const Options& options);
int serve_command(const Options& options);
int report_command(const Options& options);

}  // namespace dagent::cli
