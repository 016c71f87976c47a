#pragma once
// Command-line parsing for the dagent executable (SPEC.md §1): each command with its own options.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace dagent::cli {

struct Options {
  std::string command;                          ///< run, plan, validate, replay, ingest, memory, mcp, worker, runs, report, serve
  std::vector<std::string> args;                ///< positional arguments after the command
  std::optional<std::filesystem::path> config;  ///< --config
  std::vector<std::string> overrides;           ///< --set KEY=VALUE, in order
  bool json = false;
  std::filesystem::path trace_file;
  std::filesystem::path metrics_file;           ///< --metrics-file FILE: the Prometheus exposition after the run
  int verbosity = 0;                            ///< -q: -1, -v: 1
  int k = 0;                                    ///< memory search -k N; 0: memory.recall_k
  std::filesystem::path record_file;            ///< --record FILE
  bool force = false;                           ///< --force: --record may replace an existing file
  std::filesystem::path replay_file;            ///< --replay FILE (and `dagent replay FILE`)
  bool replay_tools = false;                    ///< --replay-tools
  bool replay_instant = false;                  ///< --replay-timing instant
  std::filesystem::path resume_file;            ///< --resume FILE
  std::vector<std::string> approve;             ///< --approve TOOL, repeatable: tools.approval consent given in advance
  bool yes = false;                             ///< --yes: every tools.approval call approved
  std::string worker_name;                      ///< worker --name NAME
  int concurrency = 0;                          ///< worker --concurrency N; 0: execution.worker_concurrency
  std::vector<std::filesystem::path> workspace_roots;  ///< worker --workspace-root DIR, repeatable
  std::optional<std::string> status;            ///< runs list --status succeeded|failed
  std::optional<std::string> task;              ///< runs list --task NAME
  std::optional<std::int64_t> since_ms;         ///< runs list --since DATE|DURATION, as Unix ms
  int limit = 50;                               ///< runs list --limit N
  std::optional<std::string> listen;            ///< serve --listen HOST:PORT (over serve.listen)
  std::optional<std::filesystem::path> output;  ///< report -o FILE; absent or "-": stdout
};

/// What the command line asks for besides a command: text for stdout (--help, --version, `dagent
/// completion bash`; exit 0) or a usage error for stderr (exit 2, nothing runs).
struct Printout {
  std::string text;
};
struct UsageError {
  std::string message;  ///< names the command and the option or argument at fault
};

/// Parses argv (CLI11 in options.cpp only): each command takes its own options, `--` ends them.
/// For `runs`, `memory` and `mcp` the subcommand is args[0] (`runs show ID`: {"show", ID}).
std::variant<Options, Printout, UsageError> parse_options(int argc, const char* const* argv);

/// The config file to load: --config, else ./config.yaml when present, else none (defaults).
std::variant<std::filesystem::path, std::string> config_path(const Options& options);

}  // namespace dagent::cli
