// The command line of the dagent executable (CLI11): per-command options and help, options of
// another command refused, `--`, bad values, and the generated bash completion.

#include <catch2/catch.hpp>

#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/process.hpp"

namespace {

namespace fs = std::filesystem;
using dagent::test::ProcessResult;
using dagent::test::read_text;
using dagent::test::run_process;
using dagent::test::TempDir;

ProcessResult dagent_cli(const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), DAGENT_BINARY);
  return run_process(args, dir.path());
}

// A task whose fixed plan writes ws/out.txt: whether it ran shows in the file.
void write_task(const TempDir& dir, const std::string& name) {
  dir.write(name, "workspace: ws\nplan:\n  - {id: 1, action: write_file, parameters: {path: out.txt, content: ran}}\n");
  fs::create_directories(dir.path() / "ws");
}

// Runs the completion function of the generated script on `words` (the last one is completed).
std::set<std::string> complete(const TempDir& dir, const std::vector<std::string>& words) {
  std::string array;
  for (const auto& w : words) array += " '" + w + "'";
  const std::string script = "source <(\"$0\" completion bash) || exit 9\n"
                             "COMP_WORDS=(" + array + ")\n"
                             "COMP_CWORD=" + std::to_string(words.size() - 1) + "\n"
                             "_dagent || exit 8\n"
                             "printf '%s\\n' \"${COMPREPLY[@]}\"\n";
  auto r = run_process({"/bin/bash", "-c", script, DAGENT_BINARY}, dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::set<std::string> out;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty()) out.insert(line);
  return out;
}

}  // namespace

TEST_CASE("dagent --help lists the commands and each command has its own --help", "[cli][args]") {
  TempDir dir;
  auto root = dagent_cli(dir, {"--help"});
  CHECK(root.exit_code == 0);
  for (auto command : {"run", "plan", "validate", "replay", "ingest", "memory", "mcp", "worker", "runs", "serve", "report"})
    CHECK_THAT(root.out, Catch::Contains(std::string("\n  ") + command + " "));
  CHECK_THAT(root.out, !Catch::Contains("completion"));
  CHECK_THAT(root.out, Catch::Contains("Exit codes"));

  auto run = dagent_cli(dir, {"run", "--help"});
  CHECK(run.exit_code == 0);
  CHECK(run.err.empty());
  for (auto option : {"TASK", "--config", "--set", "--json", "--record", "--replay-tools", "--resume", "--approve", "--distributed"})
    CHECK_THAT(run.out, Catch::Contains(option));
  CHECK_THAT(run.out, !Catch::Contains("--status") && !Catch::Contains("--limit") && !Catch::Contains("--listen"));

  auto show = dagent_cli(dir, {"runs", "show", "--help"});
  CHECK(show.exit_code == 0);
  CHECK_THAT(show.out, Catch::Contains("ID") && Catch::Contains("--json") && !Catch::Contains("--since"));
  auto list = dagent_cli(dir, {"runs", "list", "--help"});
  CHECK_THAT(list.out, Catch::Contains("--since") && Catch::Contains("succeeded|failed"));
  auto runs = dagent_cli(dir, {"runs", "--help"});
  CHECK(runs.exit_code == 0);
  CHECK_THAT(runs.out, Catch::Contains("list") && Catch::Contains("show"));
  auto ingest = dagent_cli(dir, {"ingest", "--help"});
  CHECK_THAT(ingest.out, Catch::Contains("PATH") && !Catch::Contains("--replay-tools"));

  SECTION("dagent help COMMAND prints the same as COMMAND --help") {
    CHECK(dagent_cli(dir, {"help", "runs", "list"}).out == list.out);
    CHECK(dagent_cli(dir, {"help"}).out == root.out);
    auto nope = dagent_cli(dir, {"help", "nope"});
    CHECK(nope.exit_code == 2);
    CHECK_THAT(nope.err, Catch::Contains("unknown command 'nope'"));
  }
  SECTION("--version and the version command") {
    CHECK_THAT(dagent_cli(dir, {"--version"}).out, Catch::StartsWith("dagent "));
    CHECK_THAT(dagent_cli(dir, {"version"}).out, Catch::StartsWith("dagent "));
  }
}

TEST_CASE("an option of another command is refused with exit 2, naming the option and the command", "[cli][args]") {
  TempDir dir;
  write_task(dir, "task.yaml");
  dir.write("docs/a.md", "some text\n");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const auto& c : std::vector<Case>{
           {{"run", "task.yaml", "-k", "3"}, "'run' does not take -k (an option of: memory search)"},
           {{"run", "-k", "3", "task.yaml"}, "'run' does not take -k (an option of: memory search)"},
           {{"ingest", "docs", "--replay-tools"}, "'ingest' does not take --replay-tools (an option of: run, replay)"},
           {{"runs", "show", "x", "--status", "failed"}, "'runs show' does not take --status (an option of: runs list)"},
           {{"plan", "task.yaml", "--record=r.jsonl"}, "'plan' does not take --record (an option of: run, replay)"},
           {{"replay", "r.jsonl", "--replay", "r.jsonl"}, "'replay' does not take --replay (an option of: run)"},
           {{"serve", "-o", "x"}, "'serve' does not take -o (an option of: report)"},
           {{"--json", "run", "task.yaml"}, "--json goes after a command that takes it (run, plan, replay, ingest"}}) {
    auto r = dagent_cli(dir, c.args);
    INFO(c.args[0] + " " + c.args[1]);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(c.message));
    CHECK(r.out.empty());
  }
  // Nothing ran: the task's file was not written, the memory was not created.
  CHECK_FALSE(fs::exists(dir.path() / "ws/out.txt"));
  CHECK_FALSE(fs::exists(dir.path() / ".dagent"));
}

TEST_CASE("unknown options and commands, missing and extra arguments exit 2 with a message", "[cli][args]") {
  TempDir dir;
  write_task(dir, "task.yaml");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const auto& c : std::vector<Case>{
           {{"run", "task.yaml", "--bogus"}, "unknown option --bogus for 'run'"},
           {{"run", "task.yaml", "--bogus=1"}, "unknown option --bogus for 'run'"},
           {{"--bogus"}, "unknown option --bogus"},
           {{"frobnicate"}, "unknown command 'frobnicate'"},
           {{"runs", "frobnicate"}, "unknown command 'runs frobnicate' (runs takes: list, show)"},
           {{"runs"}, "'runs' needs a command: list, show"},
           {{"memory"}, "'memory' needs a command: search"},
           {{}, "no command given"},
           {{"plan"}, "dagent plan: TASK is required"},
           {{"runs", "show"}, "dagent runs show: ID is required"},
           {{"ingest"}, "dagent ingest: PATH is required"},
           {{"report", "a", "b"}, "unexpected argument 'b' for 'report'"},
           {{"run", "task.yaml", "other.yaml"}, "unexpected argument 'other.yaml' for 'run'"},
           {{"run", "task.yaml", "plan"}, "unexpected argument 'plan' for 'run'"},
           {{"runs", "list", "show"}, "unexpected argument 'show' for 'runs list'"},
           {{"run", "task.yaml", "--config"}, "--config"},
           {{"run", "--", "task.yaml", "--json"}, "unexpected argument '--json' for 'run'"}}) {
    auto r = dagent_cli(dir, c.args);
    INFO((c.args.empty() ? std::string("(none)") : c.args[0]));
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(c.message) && Catch::Contains("--help"));
    CHECK(r.out.empty());
  }
  CHECK_FALSE(fs::exists(dir.path() / "ws/out.txt"));
}

TEST_CASE("a bad option value exits 2 naming the option and what it needs", "[cli][args]") {
  TempDir dir;
  write_task(dir, "task.yaml");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const auto& c : std::vector<Case>{
           {{"memory", "search", "x", "-k", "abc"}, "-k: needs a number from 1 to 1000, got 'abc'"},
           {{"memory", "search", "x", "-k", "0"}, "-k: needs a number from 1 to 1000, got '0'"},
           {{"memory", "search", "x", "-k3x"}, "-k: needs a number from 1 to 1000"},
           {{"runs", "list", "--limit", "ten"}, "--limit: needs a number from 1 to 1000000, got 'ten'"},
           {{"worker", "--concurrency", "0"}, "--concurrency: needs a number from 1 to 1024"},
           {{"runs", "list", "--status", "done"}, "--status: is succeeded or failed, got 'done'"},
           {{"runs", "list", "--since", "yesterday"}, "--since: needs a date (2026-12-01) or a duration"},
           {{"run", "task.yaml", "--replay-timing", "fast"}, "--replay-timing: is recorded or instant, got 'fast'"},
           {{"run", "task.yaml", "--trace="}, "--trace: 1 required FILE missing"},
           {{"report", "x", "-o", ""}, "--output: needs a file"}}) {
    auto r = dagent_cli(dir, c.args);
    INFO(c.args.back());
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(c.message));
    CHECK(r.out.empty());
  }
  CHECK_FALSE(fs::exists(dir.path() / "ws/out.txt"));
}

TEST_CASE("a double dash ends the options: a task file whose name starts with - runs", "[cli][args]") {
  TempDir dir;
  write_task(dir, "-odd-task.yaml");
  auto refused = dagent_cli(dir, {"run", "-odd-task.yaml"});
  CHECK(refused.exit_code == 2);
  CHECK_FALSE(fs::exists(dir.path() / "ws/out.txt"));

  auto r = dagent_cli(dir, {"run", "-q", "--", "-odd-task.yaml"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(read_text(dir.path() / "ws/out.txt") == "ran");
}

TEST_CASE("options --set and --distributed apply in command-line order, a repeated flag is accepted", "[cli][args]") {
  TempDir dir;
  write_task(dir, "task.yaml");
  // --distributed is --set execution.backend=redis where it stands: a later --set wins over it.
  auto local = dagent_cli(dir, {"run", "task.yaml", "-q", "--distributed", "--set", "execution.backend=local"});
  INFO(local.err);
  CHECK(local.exit_code == 0);
  CHECK(read_text(dir.path() / "ws/out.txt") == "ran");
  // The other way round the redis backend wins, and it needs redis.url: nothing runs.
  fs::remove(dir.path() / "ws/out.txt");
  auto redis = dagent_cli(dir, {"run", "task.yaml", "-q", "--set", "execution.backend=local", "--distributed", "--json",
                                "--json"});
  CHECK(redis.exit_code == 2);
  CHECK_THAT(redis.err, Catch::Contains("redis.url"));
  CHECK_FALSE(fs::exists(dir.path() / "ws/out.txt"));
}

TEST_CASE("the bash completion is generated from the command line and completes commands and options", "[cli][args]") {
  TempDir dir;
  dir.write("task.yaml", "goal: x\n");
  CHECK(complete(dir, {"dagent", "ru"}) == std::set<std::string>{"run", "runs"});
  CHECK(complete(dir, {"dagent", "runs", ""}) == std::set<std::string>{"list", "show"});

  const auto run = complete(dir, {"dagent", "run", "--"});
  for (auto option : {"--config", "--set", "--json", "--record", "--replay", "--replay-tools", "--resume", "--help"})
    CHECK(run.count(option) == 1);
  for (auto other : {"--status", "--limit", "--listen", "--name", "--output"}) CHECK(run.count(other) == 0);

  const auto ingest = complete(dir, {"dagent", "ingest", "docs", "--"});
  CHECK(ingest.count("--json") == 1);
  CHECK(ingest.count("--replay-tools") == 0);

  CHECK(complete(dir, {"dagent", "runs", "list", "--status", ""}) == std::set<std::string>{"succeeded", "failed"});
  CHECK(complete(dir, {"dagent", "run", "--replay-timing", "i"}) == std::set<std::string>{"instant"});
  CHECK(complete(dir, {"dagent", "run", "--config", "ta"}) == std::set<std::string>{"task.yaml"});
  CHECK(complete(dir, {"dagent", "run", "ta"}) == std::set<std::string>{"task.yaml"});
  // A value is not a command: `--task runs` does not enter `runs`.
  CHECK(complete(dir, {"dagent", "runs", "list", "--task", "show", "--l"}) == std::set<std::string>{"--limit"});
  // Every option the completion offers for a command is one its --help shows.
  for (const std::vector<std::string>& command : {std::vector<std::string>{"run"}, {"runs", "list"}, {"memory", "search"}}) {
    auto words = command;
    words.insert(words.begin(), "dagent");
    words.push_back("-");
    auto help_args = command;
    help_args.push_back("--help");
    const auto help = dagent_cli(dir, help_args).out;
    for (const auto& option : complete(dir, words)) CHECK_THAT(help, Catch::Contains(option));
  }
}
