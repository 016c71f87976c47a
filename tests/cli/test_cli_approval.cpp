// tools.approval from the command line: without a terminal (needs approval, --approve, --yes), on
// a pseudo-terminal (the question, answers typed on the pty), and the replay of the decisions.

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include <boost/json.hpp>

#include "support/process.hpp"

namespace {

namespace json = boost::json;
using dagent::test::ProcessResult;
using dagent::test::read_text;
using dagent::test::run_process;
using dagent::test::TempDir;

void write_task(const TempDir& dir) {
  dir.write("config.yaml", "memory: {enabled: false}\ntools: {approval: [\"write_*\"]}\n");
  // Step 1 and 2 run one after the other; step 3 depends on step 1.
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: write_file, parameters: {path: a.txt, content: "A\u001b]0;owned\u0007"}}
  - {id: 2, action: write_file, parameters: {path: b.txt, content: "B"}, dependencies: [1]}
  - {id: 3, action: write_file, parameters: {path: c.txt, content: "C"}, dependencies: [2]}
)");
}

ProcessResult dagent_cli(const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), DAGENT_BINARY);
  return run_process(args, dir.path());
}

json::object step_of(const json::value& result, int id) {
  for (const auto& s : result.at("steps").as_array())
    if (s.at("id") == id) return s.as_object();
  FAIL("no step " << id);
  return {};
}

// dagent on a pseudo-terminal (stdin, stdout and stderr): each time the question appears, the
// next answer is typed. Returns the exit code and everything the terminal showed.
struct PtyRun {
  int exit_code = -1;
  std::string screen;
  int questions = 0;
};

PtyRun run_on_pty(const TempDir& dir, std::vector<std::string> args, std::vector<std::string> answers,
                  bool interrupt_at_first_question = false) {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  REQUIRE(master >= 0);
  REQUIRE(::grantpt(master) == 0);
  REQUIRE(::unlockpt(master) == 0);
  const std::string slave_name = ::ptsname(master);
  args.insert(args.begin(), DAGENT_BINARY);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setsid();
    const int slave = ::open(slave_name.c_str(), O_RDWR);
    if (slave < 0) ::_exit(127);
    ::ioctl(slave, TIOCSCTTY, 0);
    ::dup2(slave, 0);
    ::dup2(slave, 1);
    ::dup2(slave, 2);
    ::close(master);
    if (::chdir(dir.path().c_str()) != 0) ::_exit(127);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  PtyRun run;
  std::size_t next = 0;
  const std::string question = "Allow? [y]es / [n]o / [a]lways for this run: ";
  for (;;) {
    pollfd p{master, POLLIN, 0};
    if (::poll(&p, 1, 60000) <= 0) break;  // a hang fails below (the exit code stays -1)
    char buf[4096];
    const auto n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO: the child closed the terminal
    run.screen.append(buf, static_cast<std::size_t>(n));
    std::size_t at = 0, count = 0;
    while ((at = run.screen.find(question, at)) != std::string::npos) ++count, at += question.size();
    while (static_cast<std::size_t>(run.questions) < count) {
      ++run.questions;
      if (interrupt_at_first_question) {
        ::kill(pid, SIGINT);
      } else if (next < answers.size()) {
        const auto& a = answers[next++];
        REQUIRE(::write(master, a.data(), a.size()) == static_cast<ssize_t>(a.size()));
      }
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return run;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

}  // namespace

TEST_CASE("without a terminal a step that needs approval fails unless --approve or --yes", "[cli][approval]") {
  TempDir dir;
  write_task(dir);
  SECTION("no flag: needs approval, exit 1, nothing written") {
    auto r = dagent_cli(dir, {"run", "task.yaml", "--json"});
    CHECK(r.exit_code == 1);
    auto result = json::parse(r.out);
    CHECK(step_of(result, 1).at("error") ==
          "needs approval (tools.approval: write_*); give --approve write_file or --yes");
    CHECK(step_of(result, 2).at("status") == "skipped");
    CHECK(r.err.find("needs approval (tools.approval: write_*)") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "a.txt"));
  }
  SECTION("--approve write_file") {
    auto r = dagent_cli(dir, {"run", "task.yaml", "--json", "--approve", "write_file"});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(step_of(json::parse(r.out), 3).at("approval") == json::parse(R"({"decision": "allow", "by": "flag"})"));
    CHECK(read_text(dir.path() / "c.txt") == "C");
  }
  SECTION("--approve for another tool is not enough") {
    auto r = dagent_cli(dir, {"run", "task.yaml", "--approve=read_file"});
    CHECK(r.exit_code == 1);
  }
  SECTION("--yes") {
    auto r = dagent_cli(dir, {"run", "task.yaml", "--yes"});
    CHECK(r.exit_code == 0);
    CHECK(read_text(dir.path() / "b.txt") == "B");
  }
  SECTION("run --help lists the options") {
    auto r = dagent_cli(dir, {"run", "--help"});
    CHECK(r.out.find("--approve TOOL") != std::string::npos);
    CHECK(r.out.find("--yes") != std::string::npos);
  }
  SECTION("--set tools.approval=[...] works like the file; a name that names no tool is refused (exit 2)") {
    dir.write("config.yaml", "memory: {enabled: false}\n");
    CHECK(dagent_cli(dir, {"run", "task.yaml"}).exit_code == 0);
    std::filesystem::remove(dir.path() / "a.txt");
    auto set = dagent_cli(dir, {"run", "task.yaml", "--set", "tools.approval=[write_file]"});
    CHECK(set.exit_code == 1);
    CHECK(set.err.find("needs approval (tools.approval: write_file)") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "a.txt"));
    auto typo = dagent_cli(dir, {"run", "task.yaml", "--set", "tools.approval=[write-file]"});
    CHECK(typo.exit_code == 2);
    CHECK(typo.err.find("tools.approval: 'write-file' names no tool") != std::string::npos);
  }
  SECTION("tools.approval is checked like every key") {
    dir.write("config.yaml", "tools: {approval: [\"\"]}\n");
    auto r = dagent_cli(dir, {"run", "task.yaml"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("tools.approval") != std::string::npos);
  }
}

TEST_CASE("on a terminal dagent asks one step at a time: n denies, a approves the tool for the rest of the run",
          "[cli][approval]") {
  TempDir dir;
  write_task(dir);
  // Three independent steps: all three wait for approval at once and are asked in order.
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: write_file, parameters: {path: a.txt, content: "A\u001b]0;owned\u0007"}}
  - {id: 2, action: write_file, parameters: {path: b.txt, content: "B"}}
  - {id: 3, action: write_file, parameters: {path: c.txt, content: "C"}}
)");
  auto run = run_on_pty(dir, {"run", "task.yaml", "--record", "run.jsonl"}, {"n\n", "a\n"});
  INFO(run.screen);
  CHECK(run.exit_code == 1);
  CHECK(run.questions == 2);  // the third call was approved by "always"
  const auto first = run.screen.find("approval needed (tools.approval: write_*): step 1 write_file");
  const auto second = run.screen.find("approval needed (tools.approval: write_*): step 2 write_file");
  REQUIRE(first != std::string::npos);
  REQUIRE(second != std::string::npos);
  CHECK(first < second);
  CHECK(run.screen.find("step 3 write_file\r\n  path") == std::string::npos);  // never asked
  // The parameters are shown as JSON, escape sequences and all as text, never raw.
  CHECK(run.screen.find("content: \"A\\u001b]0;owned\\u0007\"") != std::string::npos);
  CHECK(run.screen.find("\x1b]0;owned") == std::string::npos);
  CHECK(run.screen.find("denied by the user (tools.approval)") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.path() / "a.txt"));
  CHECK(read_text(dir.path() / "b.txt") == "B");
  CHECK(read_text(dir.path() / "c.txt") == "C");
  std::filesystem::remove(dir.path() / "b.txt");
  std::filesystem::remove(dir.path() / "c.txt");

  SECTION("a replay repeats the decisions without a terminal and without flags") {
    auto r = dagent_cli(dir, {"replay", "run.jsonl", "--json"});
    INFO(r.err);
    CHECK(r.exit_code == 1);
    auto result = json::parse(r.out);
    CHECK(step_of(result, 1).at("error") == "denied by the user (tools.approval)");
    CHECK(step_of(result, 1).at("approval") == json::parse(R"({"decision": "deny", "by": "recording"})"));
    CHECK(step_of(result, 2).at("approval") == json::parse(R"({"decision": "allow_always", "by": "recording"})"));
    CHECK(step_of(result, 3).at("approval") == json::parse(R"({"decision": "allow", "by": "recording"})"));
    CHECK(read_text(dir.path() / "c.txt") == "C");
    CHECK_FALSE(std::filesystem::exists(dir.path() / "a.txt"));
  }
  SECTION("a replay on a terminal asks nothing") {
    auto r = run_on_pty(dir, {"replay", "run.jsonl"}, {});
    INFO(r.screen);
    CHECK(r.exit_code == 1);
    CHECK(r.questions == 0);
    CHECK(read_text(dir.path() / "b.txt") == "B");
  }
}

TEST_CASE("on a terminal, y approves one call, the end of input denies, Ctrl-C interrupts the question",
          "[cli][approval]") {
  TempDir dir;
  write_task(dir);  // 1 -> 2 -> 3, one after another
  SECTION("y then y then y: everything runs, each call asked") {
    auto run = run_on_pty(dir, {"run", "task.yaml"}, {"y\n", "yes\n", "Y\n"});
    INFO(run.screen);
    CHECK(run.exit_code == 0);
    CHECK(run.questions == 3);
    CHECK(read_text(dir.path() / "c.txt") == "C");
  }
  SECTION("an answer that is not one asks again") {
    auto run = run_on_pty(dir, {"run", "task.yaml"}, {"maybe\n", "y\n", "n\n"});
    INFO(run.screen);
    CHECK(run.exit_code == 1);
    CHECK(count_of(run.screen, "Please answer y, n or a.") == 1);
    CHECK(std::filesystem::exists(dir.path() / "a.txt"));  // step 1: maybe, then y
    CHECK_FALSE(std::filesystem::exists(dir.path() / "b.txt"));  // step 2: n
  }
  SECTION("Ctrl-D (end of input) denies") {
    auto run = run_on_pty(dir, {"run", "task.yaml"}, {"\x04"});
    INFO(run.screen);
    CHECK(run.exit_code == 1);
    CHECK(run.screen.find("denied by the user (tools.approval): no answer (end of input)") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "a.txt"));
  }
  SECTION("Ctrl-C while asking interrupts the run") {
    auto run = run_on_pty(dir, {"run", "task.yaml"}, {}, true);
    INFO(run.screen);
    CHECK(run.exit_code == 1);
    CHECK(run.questions == 1);
    CHECK(run.screen.find("interrupted") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "a.txt"));
  }
}
