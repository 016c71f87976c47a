// The report of a real run, rendered by headless Chromium (scripts/setup.sh installs `chromium`):
// the DOM after the page's script ran, and the page and a screenshot of it kept in
// <build>/test-artifacts/ (report.html, report.png).

#include "report/report.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "config/config.hpp"
#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"
#include "support/process.hpp"
#include "support/scripted_prompts.hpp"
#include "support/test_server_process.hpp"
#include "support/test_tools.hpp"

namespace {

namespace json = boost::json;
using dagent::test::rule;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

constexpr const char* k_hostile =
    R"(</details><script>document.body.dataset.pwned=1</script><img src=x onerror="document.body.dataset.pwned=2">)";

// Steps 1, 2, 3 and 5 start at once; 3 fails once and is retried; 4 is an LLM call whose verdict
// its dependent waits for; 5 fans out over three items; 6 needs 3, 4 and 5. Step 2's output and
// the answer carry markup that must stay text.
json::array plan() {
  return json::array{
      json::object{{"id", 1}, {"action", "sleep"}, {"parameters", json::object{{"ms", 60}, {"value", "meeting notes"}}}},
      json::object{{"id", 2}, {"action", "sleep"}, {"parameters", json::object{{"ms", 40}, {"value", k_hostile}}}},
      json::object{{"id", 3}, {"action", "flaky"}, {"parameters", json::object{{"fails", 1}}}},
      json::object{{"id", 4},
                   {"action", "llm"},
                   {"parameters", json::object{{"prompt", "Summarize the notes: $step1.value"}}},
                   {"verify", json::object{{"non_empty", true}}},
                   {"critical", true}},
      json::object{{"id", 5},
                   {"action", "sleep"},
                   {"for_each", json::array{"a", "b", "c"}},
                   {"parameters", json::object{{"ms", 20}, {"value", "$item"}}}},
      json::object{{"id", 6},
                   {"action", "echo"},
                   {"parameters", json::object{{"summary", "$step4.text"}, {"calls", "$step3.calls"}, {"items", "$step5"}}}}};
}

std::string body_attributes(const std::string& dom) {
  std::smatch m;
  REQUIRE(std::regex_search(dom, m, std::regex("<body([^>]*)>")));
  return m[1].str();
}

std::string attribute(const std::string& attributes, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(attributes, m, std::regex(" " + name + "=\"([^\"]*)\""))) return "<absent>";
  return m[1].str();
}

// The full path of `program` on PATH, or "" when it is not there.
std::string on_path(const std::string& program) {
  auto found = dagent::test::run_process({"/bin/sh", "-c", "command -v " + program}, std::filesystem::current_path());
  if (found.exit_code != 0) return {};
  return found.out.substr(0, found.out.find('\n'));
}

// Headless Chromium with a profile and HOME of its own; at most a minute (it runs as root in CI).
dagent::test::ProcessResult chromium(const TempDir& dir, std::vector<std::string> args) {
  std::vector<std::string> argv{on_path("timeout"), "60", on_path("chromium"), "--headless=new", "--no-sandbox", "--disable-gpu",
                                "--no-first-run", "--disable-extensions", "--disable-dev-shm-usage",
                                "--user-data-dir=" + (dir.path() / "profile").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return dagent::test::run_process(argv, dir.path(), {"HOME=" + dir.path().string()});
}

}  // namespace

TEST_CASE("Chromium renders the report of a run: steps, critical path, no script errors, escaped text",
          "[report][browser]") {
  INFO("chromium is not on PATH: scripts/setup.sh installs it");
  REQUIRE_FALSE(on_path("chromium").empty());

  json::array rules{rule(dagent::test::k_answer, std::string("The launch moves to Friday; step 6 lists the three action items.\nA model may write markup too: ") + k_hostile),
                    rule(dagent::test::k_plan, json::serialize(json::object{{"steps", plan()}})),
                    rule("Summarize the notes", "Notes: the launch moves to Friday.")};
  // A model that takes a moment, so planning and the LLM step show on the timeline.
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}, .latency_ms = 25});
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "ws");
  dagent::config::Config cfg;
  cfg.llm.base_url = server.base_url();
  cfg.base_dir = dir.path();
  cfg.tools.workspace = "ws";
  cfg.planner.intent_analysis = false;
  cfg.executor.step_retries = 1;
  cfg.memory.enabled = false;
  cfg.history.enabled = false;
  cfg.tasks["notes"] = dagent::config::Task{.name = "notes", .goal = "Sum up the meeting notes"};
  dagent::Runtime runtime = dagent::runtime::make_runtime(cfg);
  REQUIRE(runtime.register_tool(std::make_shared<dagent::test::SleepTool>()).has_value());
  REQUIRE(runtime.register_tool(std::make_shared<dagent::test::FlakyTool>()).has_value());
  REQUIRE(runtime.register_tool(std::make_shared<dagent::test::EchoTool>()).has_value());
  auto outcome = runtime.run_task("notes");
  INFO((outcome.problems.empty() ? outcome.result.error : outcome.problems.front()));
  REQUIRE(outcome.exit_code() == 0);
  const auto& r = outcome.result;
  REQUIRE(r.steps.size() == 6);
  CHECK(dagent::test::step_of(r, 3).attempts == 2);
  CHECK(dagent::test::step_of(r, 4).verification == dagent::VerificationStatus::passed);
  CHECK(r.metrics.max_concurrent_steps >= 2);
  std::string critical;
  for (int id : r.critical_path) critical += (critical.empty() ? "" : ",") + std::to_string(id);
  CHECK(critical == "1,4,6");

  const auto page = dagent::report::render_report(dagent::to_json(r));
  REQUIRE(page.has_value());
  const auto artifacts = std::filesystem::path(DAGENT_BINARY).parent_path() / "test-artifacts";
  std::filesystem::create_directories(artifacts);
  const auto html = artifacts / "report.html";
  std::ofstream(html, std::ios::binary) << *page;

  const auto dom = chromium(dir, {"--dump-dom", "file://" + html.string()});
  INFO(dom.err);
  REQUIRE(dom.exit_code == 0);
  const auto body = body_attributes(dom.out);
  CHECK(attribute(body, "data-rendered") == "1");
  CHECK(attribute(body, "data-steps") == "6");
  CHECK(attribute(body, "data-critical") == critical);
  CHECK(attribute(body, "data-errors") == "0");
  CHECK(attribute(body, "data-violations") == "0");
  CHECK(attribute(body, "data-pwned") == "<absent>");
  CHECK(dom.out.find("<img") == std::string::npos);
  // The markup is on the page as text, in the step's output and in the answer.
  CHECK(dom.out.find("&lt;script&gt;document.body.dataset.pwned=1&lt;/script&gt;") != std::string::npos);
  CHECK(dom.out.find("&lt;img src=x onerror=\"document.body.dataset.pwned=2\"&gt;") != std::string::npos);
  // The sections are closed; the path's three nodes are highlighted in the graph.
  CHECK(dom.out.find("<details open") == std::string::npos);
  const std::regex critical_node("<g class=\"node [a-z]+ critical\"");
  CHECK(std::distance(std::sregex_iterator(dom.out.begin(), dom.out.end(), critical_node), std::sregex_iterator()) == 3);

  const auto png = artifacts / "report.png";
  std::filesystem::remove(png);
  const auto shot = chromium(dir, {"--hide-scrollbars", "--window-size=1400,1000", "--screenshot=" + png.string(),
                                   "file://" + html.string()});
  INFO(shot.err);
  REQUIRE(shot.exit_code == 0);
  REQUIRE(std::filesystem::exists(png));
  CHECK(std::filesystem::file_size(png) > 20000);  // a blank 1400x1000 page is a few KB
  const auto head = dagent::test::read_text(png).substr(0, 8);
  CHECK(head == std::string("\x89PNG\r\n\x1a\n", 8));
}
