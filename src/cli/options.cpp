#include "cli/options.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string_view>

#include "history/history_store.hpp"

namespace dagent::cli {

namespace {

constexpr std::string_view k_commands[] = {"run", "plan", "validate", "replay", "ingest", "memory", "mcp", "worker", "runs", "report", "serve", "help", "version"};

}  // namespace

std::string usage() {
  return "usage: dagent COMMAND [ARGS] [OPTIONS]\n"
         "\n"
         "commands:\n"
         "  run TASK                 run a task (a YAML file, or a name under `tasks:` in config.yaml)\n"
         "  plan TASK                print the validated plan, its levels and critical path; run nothing\n"
         "  validate [TASK|PLAN.json]  check config.yaml (and a task or plan) and print every problem\n"
         "  replay RECORDING         re-run a recorded run offline: model answers come from the recording\n"
         "  ingest PATH...           chunk text files (folders recursively) into the memory index\n"
         "  memory search QUERY      print the memories closest to QUERY (-k N: how many)\n"
         "  mcp list [SERVER]        start the MCP servers (mcp.servers) and print their tools and parameters\n"
         "  worker                   take steps of distributed runs from Redis (redis.url) until SIGTERM\n"
         "  runs list                the run history, newest first (--status, --task, --since, --limit, --json)\n"
         "  runs show ID             one stored run: summary and steps (--json: its whole result JSON)\n"
         "  serve                    an HTTP service that takes runs (serve.* keys; until SIGTERM)\n"
         "  report ID|RESULT.json    a run as one self-contained HTML page: plan graph, timeline, steps (-o FILE)\n"
         "  --version | --help\n"
         "\n"
         "options:\n"
         "  --config FILE            config file (default ./config.yaml if present, else built-in defaults)\n"
         "  --set KEY=VALUE          override a config key by dotted path; repeatable\n"
         "  --json                   print the machine-readable result on stdout\n"
         "  --trace FILE             write a Chrome trace-event JSON of the run\n"
         "  --metrics-file FILE      write the Prometheus metrics (text exposition) after the run\n"
         "  --record FILE            write the run's recording (JSON Lines, one event per line)\n"
         "  --force                  with --record: replace an existing file\n"
         "  --replay FILE            answer model and embedding calls from a recording; no network\n"
         "  --replay-tools           with --replay: tool results from the recording too\n"
         "  --replay-timing MODE     recorded (default): streamed replies at their recorded pace; instant\n"
         "  --resume FILE            finish an interrupted recorded run; finished steps are not run again\n"
         "  --approve TOOL           approve every call of TOOL (a name or glob) that tools.approval names; repeatable\n"
         "  --yes                    approve every call that tools.approval names (no question asked)\n"
         "  --distributed            run: send steps to dagent workers through Redis (execution.backend=redis)\n"
         "  --name NAME              worker: its name among the workers (default host-pid)\n"
         "  --concurrency N          worker: jobs run at once (default execution.worker_concurrency)\n"
         "  --workspace-root DIR     worker: run jobs whose workspace is inside DIR; repeatable (default .)\n"
         "  -k N                     memory search: number of hits (default memory.recall_k)\n"
         "  --status S               runs list: succeeded or failed\n"
         "  --task T                 runs list: runs of task T\n"
         "  --since D                runs list: started since a date (2026-12-01, UTC) or for a time (7d, 12h, 30m)\n"
         "  --limit N                runs list: at most N runs (default 50)\n"
         "  --listen HOST:PORT       serve: the address to listen on (default serve.listen, 127.0.0.1:8080)\n"
         "  -o FILE                  report: write the page to FILE (default, or -: stdout)\n"
         "  -q / -v                  quieter / more verbose progress on stderr\n"
         "\n"
         "exit codes: 0 succeeded, 1 a step or verification failed, 2 invalid input (nothing ran),\n"
         "            3 the provider could not be reached\n";
}

std::variant<Options, std::string> parse_options(int argc, char** argv) {
  Options o;
  auto value_of = [&](int& i, std::string_view flag) -> std::optional<std::string> {
    std::string_view arg = argv[i];
    if (arg.size() > flag.size() && arg[flag.size()] == '=') return std::string(arg.substr(flag.size() + 1));
    if (i + 1 >= argc) return std::nullopt;
    return std::string(argv[++i]);
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto is = [&](std::string_view flag) { return arg == flag || (arg.starts_with(flag) && arg.size() > flag.size() && arg[flag.size()] == '='); };
    if (arg == "--help" || arg == "-h") {
      o.command = "help";
    } else if (arg == "--version") {
      o.command = "version";
    } else if (arg == "--json") {
      o.json = true;
    } else if (arg == "-q" || arg == "--quiet") {
      o.verbosity = -1;
    } else if (arg == "-v" || arg == "--verbose") {
      o.verbosity = 1;
    } else if (arg == "-k" || is("--k")) {
      auto v = value_of(i, arg == "-k" ? "-k" : "--k");
      char* end = nullptr;
      const long k = v ? std::strtol(v->c_str(), &end, 10) : 0;
      if (!v || v->empty() || *end != '\0' || k < 1 || k > 1000) return std::string("-k needs a number from 1 to 1000");
      o.k = static_cast<int>(k);
    } else if (is("--config")) {
      auto v = value_of(i, "--config");
      if (!v) return std::string("--config needs a file");
      o.config = *v;
    } else if (is("--set")) {
      auto v = value_of(i, "--set");
      if (!v) return std::string("--set needs KEY=VALUE");
      o.overrides.push_back(*v);
    } else if (is("--trace")) {
      auto v = value_of(i, "--trace");
      if (!v || v->empty()) return std::string("--trace needs a file");
      o.trace_file = *v;
    } else if (is("--metrics-file")) {
      auto v = value_of(i, "--metrics-file");
      if (!v || v->empty()) return std::string("--metrics-file needs a file");
      o.metrics_file = *v;
    } else if (is("--record") || is("--replay") || is("--resume")) {
      const std::string flag(arg.substr(0, arg.find('=')));
      auto v = value_of(i, flag);
      if (!v || v->empty()) return flag + " needs a file";
      (flag == "--record" ? o.record_file : flag == "--replay" ? o.replay_file : o.resume_file) = *v;
    } else if (is("--approve")) {
      auto v = value_of(i, "--approve");
      if (!v || v->empty()) return std::string("--approve needs a tool name (or a glob such as write_*)");
      o.approve.push_back(*v);
    } else if (arg == "--distributed") {
      o.overrides.push_back("execution.backend=redis");
    } else if (is("--name")) {
      auto v = value_of(i, "--name");
      if (!v || v->empty()) return std::string("--name needs a name");
      o.worker_name = *v;
    } else if (is("--concurrency")) {
      auto v = value_of(i, "--concurrency");
      char* end = nullptr;
      const long n = v ? std::strtol(v->c_str(), &end, 10) : 0;
      if (!v || v->empty() || *end != '\0' || n < 1 || n > 1024) return std::string("--concurrency needs a number from 1 to 1024");
      o.concurrency = static_cast<int>(n);
    } else if (is("--workspace-root")) {
      auto v = value_of(i, "--workspace-root");
      if (!v || v->empty()) return std::string("--workspace-root needs a folder");
      o.workspace_roots.emplace_back(*v);
    } else if (is("--status")) {
      auto v = value_of(i, "--status");
      if (!v || (*v != "succeeded" && *v != "failed")) return std::string("--status is succeeded or failed");
      o.status = *v;
    } else if (is("--task")) {
      auto v = value_of(i, "--task");
      if (!v || v->empty()) return std::string("--task needs a task name");
      o.task = *v;
    } else if (is("--since")) {
      auto v = value_of(i, "--since");
      using namespace std::chrono;
      const auto now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
      o.since_ms = v ? history::parse_since(*v, now) : std::nullopt;
      if (!o.since_ms) return std::string("--since needs a date (2026-12-01) or a duration (7d, 12h, 30m)");
    } else if (is("--limit")) {
      auto v = value_of(i, "--limit");
      char* end = nullptr;
      const long n = v ? std::strtol(v->c_str(), &end, 10) : 0;
      if (!v || v->empty() || *end != '\0' || n < 1 || n > 1000000) return std::string("--limit needs a number from 1 to 1000000");
      o.limit = static_cast<int>(n);
    } else if (is("--listen")) {
      auto v = value_of(i, "--listen");
      if (!v || v->empty()) return std::string("--listen needs HOST:PORT");
      o.listen = *v;
    } else if (arg == "-o" || is("--output")) {
      auto v = value_of(i, arg == "-o" ? "-o" : "--output");
      if (!v || v->empty()) return std::string("-o needs a file (or - for stdout)");
      o.output = *v;
    } else if (arg == "--yes") {
      o.yes = true;
    } else if (arg == "--force") {
      o.force = true;
    } else if (arg == "--replay-tools") {
      o.replay_tools = true;
    } else if (is("--replay-timing")) {
      auto v = value_of(i, "--replay-timing");
      if (!v || (*v != "recorded" && *v != "instant")) return std::string("--replay-timing is recorded or instant");
      o.replay_instant = *v == "instant";
    } else if (arg.starts_with("-") && arg.size() > 1) {
      return "unknown option " + std::string(arg);
    } else if (o.command.empty()) {
      if (std::find(std::begin(k_commands), std::end(k_commands), arg) == std::end(k_commands))
        return "unknown command '" + std::string(arg) + "'";
      o.command = arg;
    } else {
      o.args.emplace_back(arg);
    }
  }
  if (o.command.empty()) return std::string("no command given");
  return o;
}

std::variant<std::filesystem::path, std::string> config_path(const Options& options) {
  if (options.config) {
    std::error_code ec;
    // A folder or an unreadable file is passed on: the loader says what is wrong with it.
    if (!std::filesystem::exists(*options.config, ec))
      return "config file '" + options.config->string() + "' does not exist";
    return *options.config;
  }
  std::error_code ec;
  if (std::filesystem::is_regular_file("config.yaml", ec)) return std::filesystem::path("config.yaml");
  return std::filesystem::path();
}

}  // namespace dagent::cli
