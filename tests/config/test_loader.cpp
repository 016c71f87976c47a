#include "config/loader.hpp"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/stat.h>

#include <boost/json/serialize.hpp>
#include <catch2/catch.hpp>

#include "text/bad_utf8_samples.hpp"
#include "text/utf8.hpp"

namespace fs = std::filesystem;
using dagent::config::Config;
using dagent::config::IndexKind;
using dagent::config::Problem;
using dagent::config::Problems;
using dagent::config::Scheduling;
using dagent::config::Task;

namespace {

// A fresh folder under the system temp folder, removed with its contents at scope exit.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device random;
    path_ = fs::temp_directory_path() /
            ("dagent-config-test-" + std::to_string(random()) + "-" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }

  fs::path write(const fs::path& relative, const std::string& text) const {
    const fs::path file = path_ / relative;
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << text;
    return file;
  }

 private:
  fs::path path_;
};

constexpr const char* k_label = "test.yaml";

boost::system::result<Config, Problems> load(const std::string& yaml) {
  return dagent::config::load_string(yaml, k_label, fs::temp_directory_path());
}

// The only problem of a load that must fail with exactly one.
Problem single_problem(const boost::system::result<Config, Problems>& result) {
  REQUIRE_FALSE(result.has_value());
  INFO(result.error().to_string());
  REQUIRE(result.error().items.size() == 1);
  return result.error().items.front();
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("Problem renders file, line, key and message") {
  SECTION("all parts") {
    CHECK(Problem{"config.yaml", 7, "llm.model", "must not be empty"}.to_string() ==
          "config.yaml:7: llm.model: must not be empty");
  }
  SECTION("no line") {
    CHECK(Problem{"--set", 0, "llm.model", "bad"}.to_string() == "--set: llm.model: bad");
  }
  SECTION("no key") {
    CHECK(Problem{"config.yaml", 3, "", "YAML syntax error"}.to_string() ==
          "config.yaml:3: YAML syntax error");
  }
  SECTION("message only") { CHECK(Problem{"", 0, "", "nothing"}.to_string() == "nothing"); }
  SECTION("Problems puts one per line") {
    const Problems problems{{{"a", 1, "k", "m1"}, {"b", 0, "", "m2"}}};
    CHECK(problems.to_string() == "a:1: k: m1\nb: m2\n");
  }
  SECTION("result::value throws the rendered problems") {
    const auto result = load("llm: {model: [x]}\n");
    REQUIRE_FALSE(result.has_value());
    CHECK_THROWS_WITH(result.value(), Catch::Contains("test.yaml:1: llm.model: expected a string"));
  }
}

TEST_CASE("config defaults") {
  const std::string defaults = boost::json::serialize(dagent::config::to_json(Config{}));

  SECTION("an empty document keeps every default") {
    const auto result = load("");
    REQUIRE(result.has_value());
    CHECK(boost::json::serialize(dagent::config::to_json(*result)) == defaults);
    CHECK(result->tasks.empty());
    CHECK(result->source == k_label);
    CHECK(result->base_dir.is_absolute());
  }
  SECTION("comments only and empty sections keep defaults") {
    const auto result = load("# nothing here\nllm:\nperformance:\n  rate_limiting:\ntasks:\n");
    REQUIRE(result.has_value());
    CHECK(boost::json::serialize(dagent::config::to_json(*result)) == defaults);
  }
  SECTION("to_json nests like the YAML") {
    const boost::json::object json = dagent::config::to_json(Config{});
    CHECK(json.at("performance").at("rate_limiting").at("rpm_limit").as_int64() == 10000);
    CHECK(json.at("performance").at("parallel_execution").at("scheduling").as_string() ==
          "eager");
    CHECK(json.at("tools").at("enabled").as_array().size() == 7);
    CHECK(json.at("planner").at("intent_mode").as_string() == "speculative");
    CHECK(json.at("planner").at("stream_plan").as_bool());
    CHECK_FALSE(json.contains("tasks"));
  }
  SECTION("enum spellings") {
    CHECK(dagent::config::to_string(Scheduling::eager) == "eager");
    CHECK(dagent::config::to_string(Scheduling::levels) == "levels");
    CHECK(dagent::config::to_string(IndexKind::flat) == "flat");
    CHECK(dagent::config::to_string(IndexKind::hnsw) == "hnsw");
  }
}

TEST_CASE("shipped config.yaml loads clean and matches the defaults") {
  const fs::path path = fs::path(DAGENT_SOURCE_DIR) / "config.yaml";
  const auto result = dagent::config::load_file(path);
  INFO((result.has_value() ? std::string() : result.error().to_string()));
  REQUIRE(result.has_value());
  CHECK(boost::json::serialize(dagent::config::to_json(*result)) ==
        boost::json::serialize(dagent::config::to_json(Config{})));
  CHECK(result->tasks.empty());
  CHECK(result->source == path.string());
  CHECK(fs::equivalent(result->base_dir, DAGENT_SOURCE_DIR));
}

TEST_CASE("config values are read into the typed structs") {
  const auto result = load(R"(
llm:
  model: gpt-4o
  timeout_ms: 1500
  ca_file: ~
  structured_output: false
performance:
  rate_limiting: {rpm_limit: 60, safety_margin: 1, window: rolling}
  parallel_execution: {max_parallel_steps: 4096, scheduling: levels}
  caching: {ttl_seconds: 0}
memory: {index: hnsw, chunk_chars: 100, chunk_overlap: 99}
tools:
  enabled: [llm, read_file]
)");
  INFO((result.has_value() ? std::string() : result.error().to_string()));
  REQUIRE(result.has_value());
  const Config& cfg = *result;
  CHECK(cfg.llm.model == "gpt-4o");
  CHECK(cfg.llm.timeout_ms == 1500);
  CHECK(cfg.llm.ca_file.empty());
  CHECK_FALSE(cfg.llm.structured_output);
  CHECK(cfg.performance.rate_limiting.rpm_limit == 60);
  CHECK(cfg.performance.rate_limiting.safety_margin == 1.0);
  CHECK(cfg.performance.rate_limiting.window == dagent::config::RateWindow::rolling);
  CHECK(cfg.performance.parallel_execution.max_parallel_steps == 4096);
  CHECK(cfg.performance.parallel_execution.scheduling == Scheduling::levels);
  CHECK(cfg.performance.caching.ttl_seconds == 0);
  CHECK(cfg.memory.index == IndexKind::hnsw);
  CHECK(cfg.memory.chunk_chars == 100);
  CHECK(cfg.memory.chunk_overlap == 99);
  CHECK(cfg.tools.enabled == std::vector<std::string>{"llm", "read_file"});
  CHECK(cfg.llm.max_retries == 2);
}

TEST_CASE("config errors name file, line and dotted key") {
  SECTION("unknown key with a suggestion") {
    const Problem p = single_problem(load("performance:\n  rate_limiting:\n    rpm_limt: 5\n"));
    CHECK(p.file == k_label);
    CHECK(p.line == 3);
    CHECK(p.key == "performance.rate_limiting.rpm_limt");
    CHECK(contains(p.message, "unknown key"));
    CHECK(contains(p.message, "did you mean 'rpm_limit'?"));
  }
  SECTION("unknown key without a close match lists the known keys") {
    const Problem p = single_problem(load("executor:\n  whatever: 1\n"));
    CHECK(p.line == 2);
    CHECK(p.key == "executor.whatever");
    CHECK(contains(p.message, "known: step_timeout_ms, step_retries"));
  }
  SECTION("unknown section") {
    const Problem p = single_problem(load("llm: {}\nperfomance:\n  x: 1\n"));
    CHECK(p.line == 2);
    CHECK(p.key == "perfomance");
    CHECK(contains(p.message, "did you mean 'performance'?"));
  }
  SECTION("a string where an integer belongs") {
    const Problem p = single_problem(load("llm:\n  timeout_ms: \"5000\"\n"));
    CHECK(p.line == 2);
    CHECK(p.key == "llm.timeout_ms");
    CHECK(contains(p.message, "expected an integer, got a string ('5000')"));
  }
  SECTION("a float where an integer belongs") {
    const Problem p = single_problem(load("executor:\n  step_retries: 1.5\n"));
    CHECK(p.key == "executor.step_retries");
    CHECK(contains(p.message, "expected an integer, got a number"));
  }
  SECTION("a list where an integer belongs") {
    const Problem p = single_problem(load("\n\nplanner:\n  max_steps: [1, 2]\n"));
    CHECK(p.line == 4);
    CHECK(p.key == "planner.max_steps");
    CHECK(contains(p.message, "got a list"));
  }
  SECTION("a non-boolean where a bool belongs") {
    const Problem p = single_problem(load("llm:\n  structured_output: yes\n"));
    CHECK(p.line == 2);
    CHECK(p.key == "llm.structured_output");
    CHECK(contains(p.message, "expected true or false, got a string ('yes')"));
  }
  SECTION("a quoted boolean is a string") {
    const Problem p = single_problem(load("memory:\n  enabled: \"true\"\n"));
    CHECK(p.key == "memory.enabled");
    CHECK(contains(p.message, "expected true or false"));
  }
  SECTION("a string where a double belongs") {
    const Problem p = single_problem(load("performance:\n  rate_limiting:\n    safety_margin: high\n"));
    CHECK(p.line == 3);
    CHECK(p.key == "performance.rate_limiting.safety_margin");
    CHECK(contains(p.message, "expected a number"));
  }
  SECTION("a map where a string belongs") {
    const Problem p = single_problem(load("llm:\n  model:\n    name: gpt\n"));
    CHECK(p.line == 3);
    CHECK(p.key == "llm.model");
    CHECK(contains(p.message, "expected a string, got a map"));
  }
  SECTION("an empty required string") {
    const Problem p = single_problem(load("llm:\n  base_url: \"\"\n"));
    CHECK(p.key == "llm.base_url");
    CHECK(contains(p.message, "must not be empty"));
  }
  SECTION("a scalar where a list belongs") {
    const Problem p = single_problem(load("tools:\n  enabled: read_file\n"));
    CHECK(p.line == 2);
    CHECK(p.key == "tools.enabled");
    CHECK(contains(p.message, "expected a list"));
  }
  SECTION("a scalar where a section belongs") {
    const Problem p = single_problem(load("llm: 5\n"));
    CHECK(p.line == 1);
    CHECK(p.key == "llm");
    CHECK(contains(p.message, "expected a map"));
  }
  SECTION("out of range, low") {
    const Problem p = single_problem(load("llm:\n  max_retries: -1\n"));
    CHECK(p.line == 2);
    CHECK(p.key == "llm.max_retries");
    CHECK(p.message == "must be between 0 and 10, got -1");
  }
  SECTION("out of range, high") {
    const Problem p = single_problem(
        load("performance:\n  parallel_execution:\n    max_parallel_steps: 4097\n"));
    CHECK(p.line == 3);
    CHECK(p.key == "performance.parallel_execution.max_parallel_steps");
    CHECK(p.message == "must be between 1 and 4096, got 4097");
  }
  SECTION("out of range, open-ended") {
    const Problem p = single_problem(load("memory:\n  chunk_overlap: -1\n"));
    CHECK(p.key == "memory.chunk_overlap");
    CHECK(p.message == "must be at least 0, got -1");
  }
  SECTION("durations are at most a week") {
    const Problem p = single_problem(load("llm:\n  timeout_ms: 0\n"));
    CHECK(p.key == "llm.timeout_ms");
    CHECK(p.message == "must be between 1 and 604800000, got 0");
  }
  SECTION("out of range beyond the field's type") {
    const Problem p = single_problem(
        load("performance:\n  connection_pooling: {max_connections: 3000000000}\n"));
    CHECK(p.key == "performance.connection_pooling.max_connections");
    CHECK(contains(p.message, "must be between 1 and 100000"));
  }
  SECTION("out of range beyond 64 bits") {
    const Problem p = single_problem(load("llm: {timeout_ms: 99999999999999999999999}\n"));
    CHECK(p.key == "llm.timeout_ms");
    CHECK(contains(p.message, "must be between 1 and 604800000"));
  }
  SECTION("safety_margin excludes 0 and is at most 1") {
    const Problem low = single_problem(load("performance: {rate_limiting: {safety_margin: 0}}\n"));
    CHECK(low.message == "must be greater than 0 and at most 1, got 0");
    const Problem high =
        single_problem(load("performance: {rate_limiting: {safety_margin: 1.5}}\n"));
    CHECK(high.key == "performance.rate_limiting.safety_margin");
    CHECK(high.message == "must be greater than 0 and at most 1, got 1.5");
    const Problem nan =
        single_problem(load("performance: {rate_limiting: {safety_margin: .nan}}\n"));
    CHECK(contains(nan.message, "must be greater than 0"));
  }
  SECTION("bad enum value") {
    const Problem p = single_problem(
        load("performance:\n  parallel_execution:\n    scheduling: fast\n"));
    CHECK(p.line == 3);
    CHECK(p.key == "performance.parallel_execution.scheduling");
    CHECK(contains(p.message, "expected one of eager, levels, got a string ('fast')"));
    const Problem index = single_problem(load("memory: {index: ivf}\n"));
    CHECK(index.key == "memory.index");
    CHECK(contains(index.message, "flat, hnsw"));
    const Problem window = single_problem(load("performance: {rate_limiting: {window: sliding}}\n"));
    CHECK(window.key == "performance.rate_limiting.window");
    CHECK(contains(window.message, "bucket, rolling"));
    const Problem mode = single_problem(load("planner: {intent_mode: parallel}\n"));
    CHECK(mode.key == "planner.intent_mode");
    CHECK(contains(mode.message, "sequential, speculative, folded"));
  }
  SECTION("chunk_overlap must be less than chunk_chars") {
    const Problem p = single_problem(load("memory:\n  chunk_chars: 500\n  chunk_overlap: 500\n"));
    CHECK(p.line == 3);
    CHECK(p.key == "memory.chunk_overlap");
    CHECK(p.message == "must be less than memory.chunk_chars (500), got 500");
  }
  SECTION("chunk_chars below the default overlap points at chunk_chars' line") {
    const Problem p = single_problem(load("memory:\n  chunk_chars: 150\n"));
    CHECK(p.line == 2);
    CHECK(p.key == "memory.chunk_overlap");
  }
  SECTION("duplicate tool") {
    const Problem p =
        single_problem(load("tools:\n  enabled:\n    - llm\n    - read_file\n    - llm\n"));
    CHECK(p.line == 5);
    CHECK(p.key == "tools.enabled");
    CHECK(contains(p.message, "'llm' is listed more than once"));
  }
  SECTION("unknown tool") {
    const Problem p = single_problem(load("tools:\n  enabled: [llm, reed_file]\n"));
    CHECK(p.line == 2);
    CHECK(p.key == "tools.enabled");
    CHECK(contains(p.message, "unknown name 'reed_file'; did you mean 'read_file'?"));
  }
  SECTION("duplicate key") {
    const Problem p = single_problem(load("llm:\n  model: a\n  model: b\n"));
    CHECK(p.line == 3);
    CHECK(p.key == "llm.model");
    CHECK(contains(p.message, "duplicate key; first set on line 2"));
  }
  SECTION("YAML syntax error") {
    const Problem p = single_problem(load("llm:\n  model: gpt\n  timeout_ms: [1,\n"));
    CHECK(p.file == k_label);
    CHECK(p.line >= 3);
    CHECK(p.key.empty());
    CHECK(contains(p.message, "YAML syntax error"));
  }
  SECTION("YAML syntax error: bad indentation") {
    const Problem p = single_problem(load("llm:\n  model: a\n timeout_ms: 5\n"));
    CHECK(p.line == 3);
  }
  SECTION("a document that is not a map") {
    const Problem p = single_problem(load("- llm\n- planner\n"));
    CHECK(p.line == 1);
    CHECK(contains(p.message, "expected a map of sections"));
  }
  SECTION("load_file on a missing file") {
    TempDir dir;
    const auto result = dagent::config::load_file(dir.path() / "absent.yaml");
    const Problem p = single_problem(result);
    CHECK(p.file == (dir.path() / "absent.yaml").string());
    CHECK(contains(p.message, "cannot read config file"));
  }
}

TEST_CASE("config reports every problem at once") {
  const auto result = load(R"(llm:
  timeout_ms: soon
  max_retries: 11
planner:
  max_step: 3
memory:
  index: ivf
tools:
  enabled: [llm, llm]
)");
  REQUIRE_FALSE(result.has_value());
  const std::vector<Problem> items = result.error().items;
  REQUIRE(items.size() == 5);
  CHECK(items[0].key == "llm.timeout_ms");
  CHECK(items[0].line == 2);
  CHECK(items[1].key == "llm.max_retries");
  CHECK(items[1].line == 3);
  CHECK(items[2].key == "planner.max_step");
  CHECK(items[2].line == 5);
  CHECK(contains(items[2].message, "did you mean 'max_steps'?"));
  CHECK(items[3].key == "memory.index");
  CHECK(items[3].line == 7);
  CHECK(items[4].key == "tools.enabled");
  CHECK(items[4].line == 9);
}

TEST_CASE("overrides (--set)") {
  Config cfg;

  SECTION("an integer") {
    CHECK(dagent::config::apply_override(
              cfg, "performance.parallel_execution.max_parallel_steps=32")
              .empty());
    CHECK(cfg.performance.parallel_execution.max_parallel_steps == 32);
  }
  SECTION("a boolean") {
    CHECK(dagent::config::apply_override(cfg, "performance.parallel_execution.enabled=false")
              .empty());
    CHECK_FALSE(cfg.performance.parallel_execution.enabled);
  }
  SECTION("an enum, a double and strings") {
    CHECK(dagent::config::apply_override(cfg, "performance.parallel_execution.scheduling=levels")
              .empty());
    CHECK(dagent::config::apply_override(cfg, "performance.rate_limiting.safety_margin=0.5")
              .empty());
    CHECK(dagent::config::apply_override(cfg, "llm.base_url=http://127.0.0.1:8080/v1").empty());
    CHECK(dagent::config::apply_override(cfg, "llm.ca_file=").empty());
    CHECK(cfg.performance.parallel_execution.scheduling == Scheduling::levels);
    CHECK(cfg.performance.rate_limiting.safety_margin == 0.5);
    CHECK(cfg.llm.base_url == "http://127.0.0.1:8080/v1");
    CHECK(cfg.llm.ca_file.empty());
  }
  SECTION("a list value") {
    CHECK(dagent::config::apply_override(cfg, "tools.enabled=[read_file,list_dir]").empty());
    CHECK(cfg.tools.enabled == std::vector<std::string>{"read_file", "list_dir"});
    CHECK(dagent::config::apply_override(cfg, "tools.enabled=[]").empty());
    CHECK(cfg.tools.enabled.empty());
  }
  SECTION("an invalid type leaves the value unchanged") {
    const auto problems =
        dagent::config::apply_override(cfg, "performance.parallel_execution.max_parallel_steps=many");
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].file == "--set");
    CHECK(problems[0].line == 0);
    CHECK(problems[0].key == "performance.parallel_execution.max_parallel_steps");
    CHECK(contains(problems[0].message, "expected an integer"));
    CHECK(problems[0].to_string().starts_with(
        "--set: performance.parallel_execution.max_parallel_steps: expected an integer"));
    CHECK(cfg.performance.parallel_execution.max_parallel_steps == 5);
  }
  SECTION("out of range") {
    const auto problems = dagent::config::apply_override(cfg, "llm.max_retries=11");
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].message == "must be between 0 and 10, got 11");
    CHECK(cfg.llm.max_retries == 2);
  }
  SECTION("a bad list element") {
    const auto problems = dagent::config::apply_override(cfg, "tools.enabled=[read_file,shell]");
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].key == "tools.enabled");
    CHECK(cfg.tools.enabled.size() == 7);
  }
  SECTION("an unknown key with a suggestion") {
    const auto problems =
        dagent::config::apply_override(cfg, "performance.rate_limiting.rpm_limt=5");
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].key == "performance.rate_limiting.rpm_limt");
    CHECK(contains(problems[0].message,
                   "unknown key; did you mean 'performance.rate_limiting.rpm_limit'?"));
  }
  SECTION("an unknown key far from any") {
    const auto problems = dagent::config::apply_override(cfg, "nothing.like.this=1");
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].message == "unknown key");
  }
  SECTION("a section is not a key") {
    const auto problems = dagent::config::apply_override(cfg, "llm=5");
    REQUIRE(problems.size() == 1);
    CHECK(contains(problems[0].message, "is a section"));
  }
  SECTION("tasks cannot be overridden") {
    const auto problems = dagent::config::apply_override(cfg, "tasks.x.goal=hi");
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].key == "tasks.x.goal");
  }
  SECTION("no '='") {
    const auto problems = dagent::config::apply_override(cfg, "llm.model");
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].file == "--set");
    CHECK(contains(problems[0].message, "expected KEY=VALUE"));
  }
  SECTION("a value that is not YAML") {
    const auto problems = dagent::config::apply_override(cfg, "tools.enabled=[read_file");
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].key == "tools.enabled");
    CHECK(problems[0].line == 0);
  }
  SECTION("cross-field rules apply; related keys can be set together") {
    const auto alone = dagent::config::apply_override(cfg, "memory.chunk_chars=150");
    REQUIRE(alone.size() == 1);
    CHECK(alone[0].key == "memory.chunk_overlap");
    CHECK(cfg.memory.chunk_chars == 2000);

    const std::vector<std::string> both = {"memory.chunk_chars=150", "memory.chunk_overlap=50"};
    CHECK(dagent::config::apply_overrides(cfg, both).empty());
    CHECK(cfg.memory.chunk_chars == 150);
    CHECK(cfg.memory.chunk_overlap == 50);
  }
  SECTION("apply_overrides reports every problem and changes nothing") {
    const std::vector<std::string> items = {"llm.model=gpt-4o", "llm.timeout_ms=x", "bogus=1"};
    const auto problems = dagent::config::apply_overrides(cfg, items);
    CHECK(problems.size() == 2);
    CHECK(cfg.llm.model == "gpt-4o-mini");
  }
}

TEST_CASE("task files") {
  TempDir dir;

  SECTION("inline plan, name from the stem, workspace defaults to the task's folder") {
    const fs::path file = dir.write("tasks/summarize.yaml", R"(goal: Summarize
plan:
  - {id: 1, action: list_dir, parameters: {path: "."}}
  - id: 2
    action: llm
    parameters: {prompt: "Summarize $step1"}
    dependencies: [1]
)");
    const auto result = dagent::config::load_task_file(file);
    INFO((result.has_value() ? std::string() : result.error().to_string()));
    REQUIRE(result.has_value());
    const Task& task = *result;
    CHECK(task.name == "summarize");
    CHECK(task.goal == "Summarize");
    CHECK(task.workspace == dir.path() / "tasks");
    REQUIRE(task.plan);
    const auto& steps = task.plan->as_array();
    REQUIRE(steps.size() == 2);
    CHECK(steps[0].at("id").as_int64() == 1);
    CHECK(steps[0].at("parameters").at("path").as_string() == ".");
    CHECK(steps[1].at("dependencies").as_array().at(0).as_int64() == 1);
    CHECK(task.plan_file.empty());
    CHECK(task.source.file == file.string());
  }
  SECTION("inline plan as a map with steps") {
    const fs::path file =
        dir.write("t.yaml", "plan: {steps: [{id: 1, action: llm, parameters: {prompt: hi}}]}\n");
    const auto result = dagent::config::load_task_file(file);
    REQUIRE(result.has_value());
    CHECK(result->plan->as_object().at("steps").as_array().size() == 1);
    CHECK(result->goal.empty());
  }
  SECTION("plan by path, relative to the task file") {
    dir.write("tasks/plans/p.json", R"([{"id": 1, "action": "llm", "parameters": {"prompt": "x"}}])");
    const fs::path file = dir.write("tasks/t.yaml", "name: custom\ngoal: g\nplan: plans/p.json\n");
    const auto result = dagent::config::load_task_file(file);
    INFO((result.has_value() ? std::string() : result.error().to_string()));
    REQUIRE(result.has_value());
    CHECK(result->name == "custom");
    CHECK(result->plan_file == dir.path() / "tasks" / "plans" / "p.json");
    REQUIRE(result->plan);
    CHECK(result->plan->as_array().at(0).at("action").as_string() == "llm");
  }
  SECTION("missing plan file") {
    const fs::path file = dir.write("t.yaml", "goal: g\n\nplan: nowhere.json\n");
    const auto result = dagent::config::load_task_file(file);
    REQUIRE_FALSE(result.has_value());
    REQUIRE(result.error().items.size() == 1);
    const Problem p = result.error().items[0];
    CHECK(p.file == file.string());
    CHECK(p.line == 3);
    CHECK(p.key == "plan");
    CHECK(contains(p.message, "cannot read plan file"));
    CHECK(contains(p.message, "nowhere.json"));
  }
  SECTION("JSON parse error in the plan file") {
    const fs::path plan = dir.write("p.json", "[\n  {\"id\": 1},\n  {\"id\": 2,, }\n]\n");
    const fs::path file = dir.write("t.yaml", "goal: g\nplan: p.json\n");
    const auto result = dagent::config::load_task_file(file);
    REQUIRE_FALSE(result.has_value());
    REQUIRE(result.error().items.size() == 1);
    const Problem p = result.error().items[0];
    CHECK(fs::path(p.file) == plan);
    CHECK(p.line == 3);
    CHECK(contains(p.message, "invalid JSON"));
  }
  SECTION("a plan file that is not a plan") {
    dir.write("p.json", R"({"step": []})");
    const fs::path file = dir.write("t.yaml", "plan: p.json\n");
    const auto result = dagent::config::load_task_file(file);
    REQUIRE_FALSE(result.has_value());
    CHECK(contains(result.error().items.at(0).message, "a plan must be a list of steps"));
  }
  SECTION("an inline plan that is not a plan") {
    const fs::path file = dir.write("t.yaml", "goal: g\nplan: {step: []}\n");
    const auto result = dagent::config::load_task_file(file);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().items.at(0).key == "plan");
    CHECK(result.error().items.at(0).line == 2);
  }
  SECTION("unknown task key") {
    const fs::path file = dir.write("t.yaml", "goal: g\ngaol: h\n");
    const auto result = dagent::config::load_task_file(file);
    REQUIRE_FALSE(result.has_value());
    REQUIRE(result.error().items.size() == 1);
    const Problem p = result.error().items[0];
    CHECK(p.file == file.string());
    CHECK(p.line == 2);
    CHECK(p.key == "gaol");
    CHECK(contains(p.message, "did you mean 'goal'?"));
  }
  SECTION("inputs keep their YAML types") {
    const fs::path file = dir.write("t.yaml", R"(goal: g
inputs:
  quoted: "5"
  number: 5
  ratio: 2.5
  yes_flag: true
  plain_yes: yes
  nothing: ~
  text: engineers
  single: '7'
  list: [1, "2", three]
  nested: {a: {b: false}}
)");
    const auto result = dagent::config::load_task_file(file);
    INFO((result.has_value() ? std::string() : result.error().to_string()));
    REQUIRE(result.has_value());
    const boost::json::object& inputs = result->inputs;
    CHECK(inputs.at("quoted").is_string());
    CHECK(inputs.at("quoted").as_string() == "5");
    CHECK(inputs.at("number").is_int64());
    CHECK(inputs.at("number").as_int64() == 5);
    CHECK(inputs.at("ratio").is_double());
    CHECK(inputs.at("ratio").as_double() == 2.5);
    CHECK(inputs.at("yes_flag").is_bool());
    CHECK(inputs.at("plain_yes").as_string() == "yes");
    CHECK(inputs.at("nothing").is_null());
    CHECK(inputs.at("text").as_string() == "engineers");
    CHECK(inputs.at("single").as_string() == "7");
    CHECK(inputs.at("list").as_array().at(0).is_int64());
    CHECK(inputs.at("list").as_array().at(1).is_string());
    CHECK(inputs.at("list").as_array().at(2).as_string() == "three");
    CHECK(inputs.at("nested").at("a").at("b").as_bool() == false);
  }
  SECTION("inputs must be a map") {
    const fs::path file = dir.write("t.yaml", "goal: g\ninputs: [1, 2]\n");
    const auto result = dagent::config::load_task_file(file);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().items.at(0).key == "inputs");
    CHECK(result.error().items.at(0).line == 2);
  }
  SECTION("workspace resolves against the task file's folder") {
    const fs::path relative = dir.write("a/t.yaml", "goal: g\nworkspace: sub/../ws\n");
    const auto r1 = dagent::config::load_task_file(relative);
    REQUIRE(r1.has_value());
    CHECK(r1->workspace == dir.path() / "a" / "ws");
    CHECK(r1->workspace.is_absolute());

    const fs::path absolute = dir.write("b/t.yaml", "goal: g\nworkspace: /srv/data/\n");
    const auto r2 = dagent::config::load_task_file(absolute);
    REQUIRE(r2.has_value());
    CHECK(r2->workspace == fs::path("/srv/data"));

    const fs::path dot = dir.write("c/t.yaml", "goal: g\nworkspace: .\n");
    const auto r3 = dagent::config::load_task_file(dot);
    REQUIRE(r3.has_value());
    CHECK(r3->workspace == dir.path() / "c");
  }
  SECTION("a task needs a goal or a plan") {
    const auto empty = dagent::config::load_task_file(dir.write("empty.yaml", ""));
    REQUIRE_FALSE(empty.has_value());
    CHECK(contains(empty.error().items.at(0).message, "a task needs a goal or a plan"));
    const auto named = dagent::config::load_task_file(dir.write("named.yaml", "name: x\n"));
    REQUIRE_FALSE(named.has_value());
    CHECK(contains(named.error().items.at(0).message, "a task needs a goal or a plan"));
  }
  SECTION("a task file that is not a map") {
    const auto result = dagent::config::load_task_file(dir.write("t.yaml", "just a goal\n"));
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().items.at(0).line == 1);
  }
  SECTION("YAML syntax error in a task file") {
    const fs::path file = dir.write("t.yaml", "goal: g\ninputs: {a: 1\n");
    const auto result = dagent::config::load_task_file(file);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().items.at(0).file == file.string());
    CHECK(result.error().items.at(0).line >= 2);
  }
  SECTION("a missing task file") {
    const auto result = dagent::config::load_task_file(dir.path() / "none.yaml");
    REQUIRE_FALSE(result.has_value());
    CHECK(contains(result.error().items.at(0).message, "cannot read task file"));
  }
  SECTION("several task problems at once") {
    const fs::path file = dir.write("t.yaml", "goal: [x]\nworkspace: {a: 1}\nextra: 1\n");
    const auto result = dagent::config::load_task_file(file);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().items.size() == 3);
  }
}

TEST_CASE("tasks from config.yaml") {
  TempDir dir;
  dir.write("plans/fixed.json", R"({"steps": [{"id": 1, "action": "llm", "parameters": {"prompt": "x"}}]})");
  const fs::path config_file = dir.write("config.yaml", R"(llm: {model: m}
tasks:
  summarize:
    goal: Summarize docs
    inputs: {audience: engineers, count: 3}
  fixed:
    workspace: work
    plan: plans/fixed.json
)");
  const auto cfg = dagent::config::load_file(config_file);
  INFO((cfg.has_value() ? std::string() : cfg.error().to_string()));
  REQUIRE(cfg.has_value());
  REQUIRE(cfg->tasks.size() == 2);

  SECTION("found by name, paths relative to the config file's folder") {
    const auto summarize = dagent::config::find_task("summarize", *cfg);
    REQUIRE(summarize.has_value());
    CHECK(summarize->name == "summarize");
    CHECK(summarize->goal == "Summarize docs");
    CHECK(summarize->workspace.empty());  // the runtime uses tools.workspace, relative to the config
    CHECK(summarize->inputs.at("count").as_int64() == 3);
    CHECK(summarize->source.file == config_file.string());
    CHECK(summarize->source.line == 3);

    const auto fixed = dagent::config::find_task("fixed", *cfg);
    REQUIRE(fixed.has_value());
    CHECK(fixed->workspace == dir.path() / "work");
    CHECK(fixed->plan_file == dir.path() / "plans" / "fixed.json");
    REQUIRE(fixed->plan);
    CHECK(fixed->plan->as_object().at("steps").as_array().size() == 1);
  }
  SECTION("an existing file wins over a configured name") {
    const fs::path file = dir.write("other.yaml", "goal: from file\n");
    const auto task = dagent::config::find_task(file.string(), *cfg);
    REQUIRE(task.has_value());
    CHECK(task->goal == "from file");
    CHECK(task->name == "other");
  }
  SECTION("an unknown name lists the configured names") {
    const auto task = dagent::config::find_task("sumarize", *cfg);
    REQUIRE_FALSE(task.has_value());
    REQUIRE(task.error().items.size() == 1);
    const std::string message = task.error().items[0].message;
    CHECK(contains(message, "no task file or configured task named 'sumarize'"));
    CHECK(contains(message, "did you mean 'summarize'?"));
    CHECK(contains(message, "configured tasks: fixed, summarize"));
  }
  SECTION("no tasks configured") {
    const auto task = dagent::config::find_task("anything", Config{});
    REQUIRE_FALSE(task.has_value());
    CHECK(contains(task.error().items[0].message, "configures no tasks"));
  }
}

TEST_CASE("task problems inside config.yaml use dotted keys") {
  SECTION("unknown key, missing goal, name mismatch") {
    const auto result = load(R"(tasks:
  a:
    goal: g
    gaol: h
  b:
    inputs: {x: 1}
  c:
    name: d
    goal: g
)");
    REQUIRE_FALSE(result.has_value());
    const std::vector<Problem> items = result.error().items;
    REQUIRE(items.size() == 3);
    CHECK(items[0].key == "tasks.a.gaol");
    CHECK(items[0].line == 4);
    CHECK(items[1].key == "tasks.b");
    CHECK(items[1].line == 5);
    CHECK(contains(items[1].message, "a task needs a goal or a plan"));
    CHECK(items[2].key == "tasks.c.name");
    CHECK(items[2].line == 8);
  }
  SECTION("tasks must be a map") {
    const Problem p = single_problem(load("tasks: [a, b]\n"));
    CHECK(p.key == "tasks");
    CHECK(p.line == 1);
  }
  SECTION("missing plan file of a configured task") {
    const Problem p = single_problem(load("tasks:\n  x:\n    plan: no-such-plan.json\n"));
    CHECK(p.key == "tasks.x.plan");
    CHECK(p.line == 3);
  }
}

TEST_CASE("config regression: a prompt template that cannot be read is a problem at load time, with its line") {
  TempDir dir;
  dir.write("prompts/plan.txt", "Plan {{goal}}");
  fs::create_directories(dir.path() / "prompts" / "folder.txt");
  const auto load_here = [&](const std::string& yaml) {
    return dagent::config::load_string(yaml, k_label, dir.path());
  };

  SECTION("a readable template passes") {
    CHECK(load_here("planner:\n  prompts:\n    plan: prompts/plan.txt\n").has_value());
  }
  SECTION("a missing file (planner.prompts.plan=nope.txt)") {
    const Problem p = single_problem(load_here("planner:\n  prompts:\n    plan: nope.txt\n"));
    CHECK(p.key == "planner.prompts.plan");
    CHECK(p.line == 3);
    CHECK(p.message == "cannot read prompt template: no such file (" + (dir.path() / "nope.txt").string() + ")");
  }
  SECTION("a folder") {
    const Problem p = single_problem(load_here("planner:\n  prompts:\n    answer: prompts/folder.txt\n"));
    CHECK(p.key == "planner.prompts.answer");
    CHECK(contains(p.message, "is a folder, not a prompt template"));
  }
  SECTION("through --set, resolved against the config's folder") {
    Config cfg = load_here("").value();
    const auto problems = dagent::config::apply_override(cfg, "planner.prompts.repair=nope.txt");
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].key == "planner.prompts.repair");
    CHECK(contains(problems[0].message, "no such file"));
    CHECK(cfg.planner.prompts.repair.empty());  // a failed override changes nothing
    CHECK(dagent::config::apply_override(cfg, "planner.prompts.repair=prompts/plan.txt").empty());
  }
}

TEST_CASE("config regression: load_file on a folder says it is a folder") {
  TempDir dir;
  const auto result = dagent::config::load_file(dir.path());
  const Problem p = single_problem(result);
  CHECK(p.file == dir.path().string());
  CHECK(p.message == "is a folder, not a config file");

  SECTION("a task file too") {
    const auto task = dagent::config::load_task_file(dir.path());
    REQUIRE_FALSE(task.has_value());
    CHECK(task.error().items.at(0).message == "is a folder, not a task file");
  }
  SECTION("something that is not a regular file is refused, not read") {
    const fs::path fifo = dir.path() / "pipe.yaml";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    const Problem f = single_problem(dagent::config::load_file(fifo));
    CHECK(f.message == "cannot read config file: is not a regular file");
  }
  SECTION("an unreadable file says why") {
    const fs::path locked = dir.write("locked.yaml", "llm: {}\n");
    fs::permissions(locked, fs::perms::none);
    std::ifstream probe(locked);
    if (probe) return;  // running as root: every file is readable
    const Problem u = single_problem(dagent::config::load_file(locked));
    CHECK(u.message == "cannot read config file: Permission denied");
  }
}

namespace {

// The nine-level alias bomb of issue 12: level i is a list of nine aliases to level i-1, so the
// last one expands to 9^9 (~387 million) strings while the parsed graph stays tiny. `indent` is
// the indentation of the keys under `inputs:`.
std::string alias_bomb(const std::string& indent) {
  std::string text = indent + "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int level = 1; level <= 9; ++level) {
    const std::string prev = "*l" + std::to_string(level - 1);
    text += indent + "l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int i = 0; i < 9; ++i) text += (i == 0 ? "" : ", ") + prev;
    text += "]\n";
  }
  return text;
}

// Whether `problems` holds one at `line` for `key` whose message contains `text`.
bool has_problem(const Problems& problems, int line, const std::string& key,
                 const std::string& text) {
  return std::any_of(problems.items.begin(), problems.items.end(), [&](const Problem& p) {
    return p.line == line && p.key == key && p.message.find(text) != std::string::npos;
  });
}

}  // namespace

TEST_CASE("config bombs (issue 12): alias expansion, nesting depth and file size are bounded") {
  TempDir dir;

  SECTION("a nine-level alias bomb under a task file's inputs is refused, not expanded") {
    const fs::path file = dir.write("bomb.yaml", "goal: g\ninputs:\n" + alias_bomb("  "));
    const auto result = dagent::config::load_task_file(file);
    REQUIRE_FALSE(result.has_value());
    INFO(result.error().to_string());
    CHECK(result.error().items.at(0).file == file.string());
    CHECK(has_problem(result.error(), 2, "inputs",
                      "expands to more than 1000000 values (YAML aliases?)"));
  }
  SECTION("the same bomb under config.yaml tasks: names the task's key") {
    const auto result = load("tasks:\n  bomb:\n    goal: g\n    inputs:\n" + alias_bomb("      "));
    REQUIRE_FALSE(result.has_value());
    INFO(result.error().to_string());
    CHECK(has_problem(result.error(), 4, "tasks.bomb.inputs", "expands to more than 1000000"));
  }
  SECTION("many tasks each below the limit share one budget for the file") {
    // Level 6 expands to 9^6 = 531441 values: two of them pass the file's limit together.
    std::string yaml = "tasks:\n";
    for (int t = 0; t < 3; ++t) {
      yaml += "  t" + std::to_string(t) + ":\n    goal: g\n    inputs:\n";
      std::string bomb = alias_bomb("      ");
      bomb.resize(bomb.find("      l7:"));
      // Anchors are per document but may be redefined: each task repeats its own.
      yaml += bomb;
    }
    const auto result = load(yaml);
    REQUIRE_FALSE(result.has_value());
    INFO(result.error().to_string());
    const std::string rendered = result.error().to_string();
    CHECK(rendered.find("expands to more than 1000000 values") != std::string::npos);
  }
  SECTION("an inline plan made of aliases is bounded the same way") {
    // The anchors sit under an unknown key (itself a problem) that is never converted.
    const fs::path file = dir.write(
        "plan.yaml", "goal: g\nanchors:\n" + alias_bomb("  ") + "plan: {steps: *l9}\n");
    const auto result = dagent::config::load_task_file(file);
    REQUIRE_FALSE(result.has_value());
    INFO(result.error().to_string());
    CHECK(has_problem(result.error(), 13, "plan", "expands to more than 1000000"));
  }
  SECTION("100 000 nested brackets are a problem with the file and line, not a stack overflow") {
    const fs::path file = dir.write(
        "deep.yaml", "goal: g\ninputs:\n  x: " + std::string(100'000, '[') +
                         std::string(100'000, ']') + "\n");
    const auto result = dagent::config::load_task_file(file);
    REQUIRE_FALSE(result.has_value());
    INFO(result.error().to_string());
    CHECK(result.error().items.at(0).file == file.string());
    CHECK(has_problem(result.error(), 3, "", "nested deeper than 64 levels"));
  }
  SECTION("nesting below the parser's guard but past 64 levels is refused while converting") {
    const fs::path file = dir.write("deep.yaml", "goal: g\ninputs:\n  x: " + std::string(100, '[') +
                                                     std::string(100, ']') + "\n");
    const auto result = dagent::config::load_task_file(file);
    REQUIRE_FALSE(result.has_value());
    INFO(result.error().to_string());
    CHECK(has_problem(result.error(), 2, "inputs", "nested deeper than 64 levels"));
  }
  SECTION("64 levels are still accepted") {
    const fs::path file = dir.write("ok.yaml", "goal: g\ninputs:\n  x: " + std::string(63, '[') +
                                                   std::string(63, ']') + "\n");
    const auto result = dagent::config::load_task_file(file);
    INFO((result.has_value() ? std::string() : result.error().to_string()));
    CHECK(result.has_value());
  }
  SECTION("deep nesting in config.yaml itself") {
    const auto result =
        load("llm: " + std::string(100'000, '[') + std::string(100'000, ']') + "\n");
    REQUIRE_FALSE(result.has_value());
    INFO(result.error().to_string());
    CHECK(has_problem(result.error(), 1, "", "nested deeper than 64 levels"));
  }
  SECTION("a --set value goes through the parser's depth guard") {
    Config cfg;
    const auto problems = dagent::config::apply_override(
        cfg, "llm.max_retries=" + std::string(100'000, '['));
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].file == "--set");
    CHECK(problems[0].key == "llm.max_retries");
    CHECK(problems[0].message == "nested deeper than 64 levels");
  }
  SECTION("a task file or config file over 16 MiB is refused before it is read") {
    // Sparse files: the test writes no 16 MiB of data.
    const fs::path task = dir.write("big.yaml", "goal: g\n");
    fs::resize_file(task, (16u << 20) + 1);
    const auto task_result = dagent::config::load_task_file(task);
    REQUIRE_FALSE(task_result.has_value());
    REQUIRE(task_result.error().items.size() == 1);
    CHECK(task_result.error().items[0].file == task.string());
    CHECK(task_result.error().items[0].message == "task file is larger than the 16 MiB limit");

    const fs::path config = dir.write("config.yaml", "llm: {}\n");
    fs::resize_file(config, (16u << 20) + 1);
    const auto config_result = dagent::config::load_file(config);
    REQUIRE_FALSE(config_result.has_value());
    REQUIRE(config_result.error().items.size() == 1);
    CHECK(config_result.error().items[0].file == config.string());
    CHECK(config_result.error().items[0].message == "config file is larger than the 16 MiB limit");
  }
  SECTION("a file of exactly 16 MiB is read") {
    const fs::path task = dir.write("edge.yaml", "goal: g\n#");
    fs::resize_file(task, 16u << 20);  // the rest is NUL bytes: a YAML error, not a size one
    const auto result = dagent::config::load_task_file(task);
    if (!result.has_value()) {
      CHECK(result.error().to_string().find("MiB limit") == std::string::npos);
    }
  }
}

TEST_CASE("invalid_utf8_task_text: goal, inputs, plan parameters and names that are not UTF-8 were taken raw",
          "[config][utf8]") {
  using dagent::test::k_bad_text;
  using dagent::test::k_bad_text_repaired;
  using dagent::test::k_fffd;
  namespace json = boost::json;
  TempDir dir;
  SECTION("a task file: goal, inputs (keys too), an inline plan, and the name taken from the file") {
    const auto path = dir.write("t\xE9sk.yaml", "goal: \"Summarize " + k_bad_text + "\"\n"
                                                "inputs:\n  who: " + k_bad_text + "\n  k\xE9y: [a, \"\xC0\xAF\"]\n"
                                                "plan:\n  - {id: 1, action: read_file, parameters: {path: \"" +
                                                k_bad_text + "\"}}\n");
    auto task = dagent::config::load_task_file(path);
    INFO((task ? std::string() : task.error().lines().front()));
    REQUIRE(task.has_value());
    CHECK(task->name == "t" + k_fffd + "sk");
    CHECK(task->goal == "Summarize " + k_bad_text_repaired);
    CHECK(task->inputs == json::object{{"who", k_bad_text_repaired}, {"k" + k_fffd + "y", json::array{"a", k_fffd + k_fffd}}});
    REQUIRE(task->plan.has_value());
    CHECK(task->plan->as_array().at(0).at("parameters").at("path") == k_bad_text_repaired.c_str());
    CHECK(dagent::text::is_valid_utf8(json::serialize(*task->plan)));
  }
  SECTION("a plan file (JSON) was refused as 'invalid JSON'; it is repaired like YAML") {
    dir.write("plan.json", R"([{"id": 1, "action": "read_file", "parameters": {"path": ")" + k_bad_text + R"("}}])");
    const auto path = dir.write("task.yaml", "plan: plan.json\n");
    auto task = dagent::config::load_task_file(path);
    INFO((task ? std::string() : task.error().lines().front()));
    REQUIRE(task.has_value());
    CHECK(task->plan->as_array().at(0).at("parameters").at("path") == k_bad_text_repaired.c_str());
  }
  SECTION("a NUL byte in an aliased plain scalar (found by fuzz_config): every input string is UTF-8") {
    const auto path = dir.path() / "task.yaml";
    fs::copy_file(fs::path(DAGENT_SOURCE_DIR) / "fuzz" / "corpus" / "config" / "regression-config-nul-in-aliased-scalar.yaml", path);
    auto task = dagent::config::load_task_file(path);
    INFO((task ? std::string() : task.error().lines().front()));
    REQUIRE(task.has_value());
    const std::string inputs = json::serialize(task->inputs);
    INFO(inputs);
    CHECK(dagent::text::is_valid_utf8(inputs));
  }
  SECTION("--set values and keys") {
    Config cfg;
    CHECK(dagent::config::apply_override(cfg, "llm.model=gpt-" + k_bad_text).empty());
    CHECK(cfg.llm.model == "gpt-" + k_bad_text_repaired);
    const auto problems = dagent::config::apply_override(cfg, "llm.mod\xE9l=x");
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].key == "llm.mod" + k_fffd + "l");
    CHECK(dagent::text::is_valid_utf8(problems[0].message));
  }
}

TEST_CASE("limits: budgets and the llm tool's models are read, overridden and checked") {
  SECTION("defaults: no budget, a 4096-token cap per llm step, no extra models") {
    const Config cfg;
    CHECK(cfg.limits.max_llm_calls == 0);
    CHECK(cfg.limits.max_tokens == 0);
    CHECK(cfg.limits.max_wall_ms == 0);
    CHECK(cfg.limits.max_tokens_per_call == 4096);
    CHECK(cfg.llm.models.empty());
    const boost::json::object json = dagent::config::to_json(cfg);
    CHECK(json.at("limits").at("max_tokens_per_call").as_int64() == 4096);
    CHECK(json.at("llm").at("models").as_array().empty());
  }
  SECTION("read from a file") {
    const auto result = load(R"(
llm:
  models: [gpt-4o, "o3-mini"]
limits:
  max_llm_calls: 20
  max_tokens: 100000
  max_wall_ms: 600000
  max_tokens_per_call: 2048
)");
    INFO((result.has_value() ? std::string() : result.error().to_string()));
    REQUIRE(result.has_value());
    CHECK(result->llm.models == std::vector<std::string>{"gpt-4o", "o3-mini"});
    CHECK(result->limits.max_llm_calls == 20);
    CHECK(result->limits.max_tokens == 100000);
    CHECK(result->limits.max_wall_ms == 600000);
    CHECK(result->limits.max_tokens_per_call == 2048);
  }
  SECTION("set with --set") {
    Config cfg;
    CHECK(dagent::config::apply_override(cfg, "limits.max_tokens=5000").empty());
    CHECK(dagent::config::apply_override(cfg, "llm.models=[a, b]").empty());
    CHECK(cfg.limits.max_tokens == 5000);
    CHECK(cfg.llm.models == std::vector<std::string>{"a", "b"});
  }
  SECTION("a negative budget names file, line and key") {
    const auto problem = single_problem(load("limits:\n  max_llm_calls: -1\n"));
    CHECK(problem.line == 2);
    CHECK(problem.key == "limits.max_llm_calls");
  }
  SECTION("an unknown limit is refused with the known ones") {
    const auto problem = single_problem(load("limits:\n  max_calls: 3\n"));
    CHECK(problem.key == "limits.max_calls");
    CHECK(contains(problem.message, "max_llm_calls"));
  }
  SECTION("llm.models: an empty or repeated name is refused") {
    CHECK(single_problem(load("llm:\n  models: [\"\"]\n")).key == "llm.models");
    const auto repeated = single_problem(load("llm:\n  models: [a, a]\n"));
    CHECK(repeated.line == 2);
    CHECK(contains(repeated.message, "more than once"));
  }
}

TEST_CASE("performance.connection_pooling.warm_connections is read, overridden and checked", "[config][warm]") {
  CHECK(Config{}.performance.connection_pooling.warm_connections);  // on by default
  const auto off = load("performance:\n  connection_pooling:\n    warm_connections: false\n");
  REQUIRE(off.has_value());
  CHECK_FALSE(off->performance.connection_pooling.warm_connections);
  CHECK(dagent::config::to_json(*off).at("performance").at("connection_pooling").at("warm_connections") == false);

  Config cfg;
  CHECK(dagent::config::apply_override(cfg, "performance.connection_pooling.warm_connections=false").empty());
  CHECK_FALSE(cfg.performance.connection_pooling.warm_connections);

  const Problem p = single_problem(load("performance:\n  connection_pooling:\n    warm_connections: 3\n"));
  CHECK(p.line == 3);
  CHECK(p.key == "performance.connection_pooling.warm_connections");
  CHECK(contains(p.message, "expected true or false"));
}
