// Protected paths (issue 13): tools never write the config file, prompt files, the memory folder,
// the recording in use, `.git/`, `.dagent/` or what tools.protected adds, however they are named.

#include "tools/protection.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <variant>

#include <boost/json/parse.hpp>

#include "config/loader.hpp"
#include "dagent/runtime.hpp"
#include "tool_test_support.hpp"
#include "tools/read_file_tool.hpp"
#include "tools/write_file_tool.hpp"

namespace {

namespace fs = std::filesystem;
using dagent::ToolErrc;
using dagent::Workspace;
using dagent::tools::ReadFileTool;
using dagent::tools::WriteFileTool;
using dagent::tools::test::object;
using dagent::tools::test::read_text;
using dagent::tools::test::TempDir;
using dagent::tools::test::write_text;

constexpr std::string_view k_config = R"(planner:
  prompts:
    plan: prompts/plan.txt
memory:
  path: notes/memory
tools:
  protected: [".git/", ".dagent/", "private/", "keys/id.txt"]
)";

// A project folder that is also the workspace (the default for a task file beside config.yaml).
struct Project {
  TempDir temp;
  fs::path root = fs::canonical(temp.path());
  dagent::config::Config cfg;

  Project() {
    write_text(root / "config.yaml", k_config);
    write_text(root / "prompts" / "plan.txt", "plan {{goal}}");
    write_text(root / ".git" / "HEAD", "ref: refs/heads/main\n");
    write_text(root / "keys" / "id.txt", "key\n");
    auto loaded = dagent::config::load_string(k_config, (root / "config.yaml").string(), root);
    if (!loaded) throw std::runtime_error(loaded.error().to_string());
    cfg = std::move(*loaded);
  }

  Workspace open(const fs::path& workspace) const {
    auto ws = Workspace::open(workspace, dagent::tools::protection_for(cfg, root / "run.jsonl", {}));
    if (!ws) throw std::runtime_error(ws.error().message);
    return std::move(*ws);
  }

  // The error of writing `path` in `ws`, or "" when the write succeeded.
  static std::string write(const Workspace& ws, std::string_view path, bool append = false) {
    dagent::ToolContext ctx;
    ctx.workspace = &ws;
    auto result = WriteFileTool().run(object(std::string(R"({"path": ")") + std::string(path) +
                                             R"(", "content": "pwned", "append": )" + (append ? "true" : "false") +
                                             "}"),
                                      ctx);
    if (result) return "";
    CHECK(result.error().code == ToolErrc::outside_workspace);
    return result.error().message;
  }
};

}  // namespace

TEST_CASE("protected paths: each default rule refuses writes and names itself") {
  Project p;
  const Workspace ws = p.open(p.root);
  const std::string config_before = read_text(p.root / "config.yaml");

  CHECK(Project::write(ws, "config.yaml") == "write_file: 'config.yaml' is protected (tools.protected: the config file)");
  CHECK(Project::write(ws, "config.yaml", true) ==
        "write_file: 'config.yaml' is protected (tools.protected: the config file)");
  CHECK(Project::write(ws, "prompts/plan.txt") ==
        "write_file: 'prompts/plan.txt' is protected (tools.protected: the prompt file planner.prompts.plan)");
  CHECK(Project::write(ws, "notes/memory/memory.dgm") ==
        "write_file: 'notes/memory' is protected (tools.protected: the memory folder (memory.path))");
  CHECK_FALSE(fs::exists(p.root / "notes" / "memory"));  // refused before the folder was made
  CHECK(Project::write(ws, "run.jsonl") == "write_file: 'run.jsonl' is protected (tools.protected: the recording in use)");
  CHECK(Project::write(ws, ".git/hooks/post-commit") ==
        "write_file: '.git/hooks' is protected (tools.protected: '.git/')");
  CHECK_FALSE(fs::exists(p.root / ".git" / "hooks"));
  CHECK(Project::write(ws, ".git/HEAD") == "write_file: '.git/HEAD' is protected (tools.protected: '.git/')");
  CHECK(Project::write(ws, "vendor/lib/.git/config") ==
        "write_file: 'vendor/lib/.git' is protected (tools.protected: '.git/')");  // at any depth
  CHECK(Project::write(ws, ".dagent/state") == "write_file: '.dagent' is protected (tools.protected: '.dagent/')");
  CHECK(Project::write(ws, ".git") == "write_file: '.git' is protected (tools.protected: '.git/')");
  SECTION("extended entries: a name at any depth and a path relative to the config's folder") {
    CHECK(Project::write(ws, "a/private/x.txt") == "write_file: 'a/private' is protected (tools.protected: 'private/')");
    CHECK(Project::write(ws, "keys/id.txt") == "write_file: 'keys/id.txt' is protected (tools.protected: 'keys/id.txt')");
    CHECK(Project::write(ws, "keys/other.txt").empty());  // only that file
  }
  SECTION("reads of protected files stay allowed") {
    dagent::ToolContext ctx;
    ctx.workspace = &ws;
    auto read = ReadFileTool().run(object(R"({"path": "config.yaml"})"), ctx);
    REQUIRE(read.has_value());
    CHECK(read->at("content").as_string() == config_before);
  }
  SECTION("ordinary files are still written") {
    CHECK(Project::write(ws, "out/summary.md").empty());
    CHECK(read_text(p.root / "out" / "summary.md") == "pwned");
  }
  CHECK(read_text(p.root / "config.yaml") == config_before);
  CHECK(read_text(p.root / ".git" / "HEAD") == "ref: refs/heads/main\n");
}

TEST_CASE("protected paths: aliases through symlinks inside the workspace are caught") {
  Project p;
  const Workspace ws = p.open(p.root);
  fs::create_symlink("config.yaml", p.root / "settings.yaml");
  fs::create_directory_symlink(".", p.root / "here");
  fs::create_directory_symlink(".git", p.root / "g");
  fs::create_directory(p.root / "notes");
  fs::create_directory_symlink("notes", p.root / "n");
  fs::create_symlink("later.jsonl", p.root / "dangling");
  fs::create_symlink("run.jsonl", p.root / "rec");

  CHECK(Project::write(ws, "settings.yaml") == "write_file: 'config.yaml' is protected (tools.protected: the config file)");
  CHECK(Project::write(ws, "here/config.yaml") ==
        "write_file: 'config.yaml' is protected (tools.protected: the config file)");
  CHECK(Project::write(ws, "here/here/./prompts/../config.yaml", true) ==
        "write_file: 'config.yaml' is protected (tools.protected: the config file)");
  CHECK(Project::write(ws, "g/hooks/pre-commit") == "write_file: '.git/hooks' is protected (tools.protected: '.git/')");
  CHECK(Project::write(ws, "n/memory/x") ==
        "write_file: 'notes/memory' is protected (tools.protected: the memory folder (memory.path))");
  CHECK(Project::write(ws, "rec") == "write_file: 'run.jsonl' is protected (tools.protected: the recording in use)");
  CHECK(Project::write(ws, "dangling").empty());  // not protected: written where it leads
  CHECK(read_text(p.root / "later.jsonl") == "pwned");
  CHECK(fs::is_symlink(p.root / "settings.yaml"));
  CHECK_FALSE(fs::exists(p.root / ".git" / "hooks"));
}

TEST_CASE("protected paths: a workspace below or above the protected folders") {
  Project p;
  SECTION("the workspace is inside .git: everything in it is protected") {
    fs::create_directories(p.root / ".git" / "hooks");
    const Workspace ws = p.open(p.root / ".git" / "hooks");
    CHECK(Project::write(ws, "post-commit") == "write_file: 'post-commit' is protected (tools.protected: '.git/')");
  }
  SECTION("the workspace is the memory folder's parent") {
    fs::create_directory(p.root / "notes");
    const Workspace ws = p.open(p.root / "notes");
    CHECK(Project::write(ws, "memory/x") ==
          "write_file: 'memory' is protected (tools.protected: the memory folder (memory.path))");
    CHECK(Project::write(ws, "other.md").empty());
  }
}

TEST_CASE("protected paths: --set tools.protected replaces the list, the built-in rules stay") {
  Project p;
  CHECK(dagent::config::apply_override(p.cfg, "tools.protected=[secrets/]").empty());
  CHECK(p.cfg.tools.protected_paths == std::vector<std::string>{"secrets/"});
  const Workspace ws = p.open(p.root);
  CHECK(Project::write(ws, ".git/info/exclude").empty());  // no longer listed
  CHECK(Project::write(ws, "x/secrets/a") == "write_file: 'x/secrets' is protected (tools.protected: 'secrets/')");
  CHECK(Project::write(ws, "config.yaml") == "write_file: 'config.yaml' is protected (tools.protected: the config file)");
  CHECK(dagent::config::apply_override(p.cfg, "tools.protected=[]").empty());
  const Workspace bare = p.open(p.root);
  CHECK(Project::write(bare, "prompts/plan.txt") ==
        "write_file: 'prompts/plan.txt' is protected (tools.protected: the prompt file planner.prompts.plan)");
}

TEST_CASE("config: tools.protected is a list of non-empty paths or names") {
  using dagent::config::load_string;
  SECTION("default") {
    auto cfg = load_string("", "config.yaml", "/tmp");
    REQUIRE(cfg.has_value());
    CHECK(cfg->tools.protected_paths == std::vector<std::string>{".git/", ".dagent/"});
  }
  SECTION("extended") {
    auto cfg = load_string("tools:\n  protected: [.git/, .dagent/, build/, /etc/hosts]\n", "config.yaml", "/tmp");
    REQUIRE(cfg.has_value());
    CHECK(cfg->tools.protected_paths == std::vector<std::string>{".git/", ".dagent/", "build/", "/etc/hosts"});
  }
  const auto problem = [](std::string_view yaml) {
    auto cfg = load_string(yaml, "config.yaml", "/tmp");
    REQUIRE_FALSE(cfg.has_value());
    REQUIRE(cfg.error().items.size() == 1);
    return cfg.error().items.front();
  };
  SECTION("a scalar") {
    const auto p = problem("tools:\n  protected: .git/\n");
    CHECK(p.key == "tools.protected");
    CHECK(p.line == 2);
    CHECK(p.message == "expected a list of names, got a string ('.git/')");
  }
  SECTION("a map entry") {
    const auto p = problem("tools:\n  protected:\n    - .git/\n    - {a: b}\n");
    CHECK(p.key == "tools.protected");
    CHECK(p.line == 4);
    CHECK(p.message == "expected a name, got a map");
  }
  SECTION("an empty entry") {
    const auto p = problem("tools:\n  protected: [\"\"]\n");
    CHECK(p.key == "tools.protected");
    CHECK(p.line == 2);
    CHECK(p.message == "expected a non-empty path or name, got an empty string");
  }
  SECTION("a repeated entry") {
    const auto p = problem("tools:\n  protected: [a/, a/]\n");
    CHECK(p.key == "tools.protected");
    CHECK(p.message == "'a/' is listed more than once");
  }
  SECTION("--set with a bad type") {
    auto cfg = load_string("", "config.yaml", "/tmp");
    REQUIRE(cfg.has_value());
    const auto problems = dagent::config::apply_override(*cfg, "tools.protected=5");
    REQUIRE(problems.size() == 1);
    CHECK(problems.front().key == "tools.protected");
    CHECK(problems.front().message == "expected a list of names, got an integer ('5')");
    CHECK(cfg->tools.protected_paths == std::vector<std::string>{".git/", ".dagent/"});
  }
}

TEST_CASE("protected paths: a run's plan cannot write its config, .git or its own recording") {
  Project p;
  auto loaded = dagent::Runtime::load(p.root / "config.yaml");
  REQUIRE(std::holds_alternative<dagent::Runtime>(loaded));
  auto& runtime = std::get<dagent::Runtime>(loaded);
  const auto plan = boost::json::parse(R"([
    {"id": 1, "action": "write_file", "parameters": {"path": "config.yaml", "content": "llm:\n  api_key_env: GITHUB_TOKEN\n"}},
    {"id": 2, "action": "write_file", "parameters": {"path": ".git/hooks/post-commit", "content": "#!/bin/sh\n"}},
    {"id": 3, "action": "write_file", "parameters": {"path": "run.jsonl", "content": "{}\n", "append": true}},
    {"id": 4, "action": "write_file", "parameters": {"path": "out/ok.md", "content": "fine"}}])");
  dagent::RunOptions options;
  options.record_file = p.root / "run.jsonl";
  const std::string config_before = read_text(p.root / "config.yaml");
  auto outcome = runtime.run_plan(plan, {}, p.root, options);
  REQUIRE(outcome.problems.empty());
  const auto& steps = outcome.result.steps;
  REQUIRE(steps.size() == 4);
  CHECK(steps[0].error == "write_file: 'config.yaml' is protected (tools.protected: the config file)");
  CHECK(steps[1].error == "write_file: '.git/hooks' is protected (tools.protected: '.git/')");
  CHECK(steps[2].error == "write_file: 'run.jsonl' is protected (tools.protected: the recording in use)");
  CHECK(steps[3].status == dagent::StepStatus::succeeded);
  CHECK(steps[0].attempts == 1);  // refused, not retried
  CHECK(read_text(p.root / "config.yaml") == config_before);
  CHECK_FALSE(fs::exists(p.root / ".git" / "hooks"));
  CHECK(read_text(p.root / "run.jsonl").find("\n{}\n") == std::string::npos);
}
