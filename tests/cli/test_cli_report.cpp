// `dagent report RUN_ID|RESULT.json -o FILE`: the HTML run report from the history or a file.

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include "support/process.hpp"

namespace {

namespace json = boost::json;
using dagent::test::read_text;
using dagent::test::run_process;
using dagent::test::TempDir;

// Every command of a test uses the history file h.db in its folder.
dagent::test::ProcessResult dagent_cli(const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), DAGENT_BINARY);
  for (std::string set : {"history.path=h.db", "memory.enabled=false"}) {
    args.push_back("--set");
    args.push_back(set);
  }
  return run_process(args, dir.path());
}

// A fixed plan: two reads at once, then a write of both. No model needed.
void write_task(const TempDir& dir) {
  dir.write("a.txt", "alpha");
  dir.write("b.txt", "<b>beta</b>");
  dir.write("task.yaml", "goal: \"Join <a.txt> & b.txt\"\nworkspace: .\nplan: plan.json\n");
  dir.write("plan.json", R"([
    {"id": 1, "action": "read_file", "parameters": {"path": "a.txt"}},
    {"id": 2, "action": "read_file", "parameters": {"path": "b.txt"}},
    {"id": 3, "action": "write_file", "parameters": {"path": "out.txt", "content": "$step1.content $step2.content"}}])");
}

}  // namespace

TEST_CASE("dagent report writes the page of a stored run or of a result file", "[cli][report]") {
  TempDir dir;
  write_task(dir);
  auto run = dagent_cli(dir, {"run", "task.yaml", "--json"});
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  const auto result = json::parse(run.out).as_object();
  const std::string id(result.at("run_id").as_string());
  dir.write("result.json", run.out);

  SECTION("by run id, from the history, with the goal the history keeps") {
    auto r = dagent_cli(dir, {"report", id, "-o", "report.html"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::Contains("run " + id) && Catch::Contains("report.html"));
    const auto page = read_text(dir.path() / "report.html");
    CHECK(page.starts_with("<!DOCTYPE html>"));
    CHECK_THAT(page, Catch::Contains(id) && Catch::Contains("&lt;b&gt;beta&lt;/b&gt;"));
    CHECK_THAT(page, Catch::Contains("<div class=\"goal\">Join &lt;a.txt&gt; &amp; b.txt</div>"));
    CHECK(page.find("<b>beta") == std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "report.html.tmp"));
    auto to_stdout = dagent_cli(dir, {"report", id, "-o", "-"});
    REQUIRE(to_stdout.exit_code == 0);
    CHECK(to_stdout.out == page);
  }
  SECTION("from the file dagent run --json printed, to stdout") {
    auto r = dagent_cli(dir, {"report", "result.json"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.starts_with("<!DOCTYPE html>"));
    CHECK_THAT(r.out, Catch::Contains(id) && Catch::Contains("&lt;b&gt;beta&lt;/b&gt;"));
    CHECK(r.out.find("<div class=\"goal\">") == std::string::npos);  // a result holds no goal
  }
}

TEST_CASE("dagent report names the file or run at fault and exits 2", "[cli][report]") {
  TempDir dir;
  dir.write("not.json", "{\"steps\": [");
  dir.write("list.json", "[1, 2]");
  dir.write("other.json", "{\"name\": \"x\"}");
  SECTION("a file that is not JSON") {
    auto r = dagent_cli(dir, {"report", "not.json"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("'not.json' is not JSON"));
  }
  SECTION("JSON that is not an object") {
    auto r = dagent_cli(dir, {"report", "list.json"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("'list.json' is not a dagent run result"));
  }
  SECTION("an object that is no result") {
    auto r = dagent_cli(dir, {"report", "other.json", "-o", "x.html"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("file 'other.json': not a dagent run result"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "x.html"));
  }
  SECTION("a path that does not exist") {
    auto r = dagent_cli(dir, {"report", "missing.json"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("cannot read 'missing.json'"));
  }
  SECTION("an id with no history yet, and one not in it") {
    auto r = dagent_cli(dir, {"report", "0123456789abcdef"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("'0123456789abcdef' is neither a file nor a stored run"));
    write_task(dir);
    REQUIRE(dagent_cli(dir, {"run", "task.yaml"}).exit_code == 0);
    auto missing = dagent_cli(dir, {"report", "0123456789abcdef"});
    CHECK(missing.exit_code == 2);
    CHECK_THAT(missing.err, Catch::Contains("'0123456789abcdef' is neither a file nor a run in the history"));
  }
  SECTION("no argument, or two") {
    CHECK(dagent_cli(dir, {"report"}).exit_code == 2);
    CHECK(dagent_cli(dir, {"report", "a", "b"}).exit_code == 2);
  }
  SECTION("an output folder that does not exist") {
    dir.write("r.json", R"({"steps": []})");
    auto r = dagent_cli(dir, {"report", "r.json", "-o", "no/such/dir/x.html"});
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("cannot write 'no/such/dir/x.html'"));
  }
}
