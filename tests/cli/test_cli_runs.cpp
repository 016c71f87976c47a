// `dagent run` writes the run history; `dagent runs list` and `dagent runs show` read it back.

#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <boost/json.hpp>

#include "support/process.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace json = boost::json;
using dagent::test::run_process;
using dagent::test::ServerCert;
using dagent::test::TempDir;
using dagent::test::TestCerts;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

// Every run and query of a test uses the history file h.db in its folder.
dagent::test::ProcessResult dagent_cli(const TempDir& dir, std::vector<std::string> args, const TestServer* server = nullptr) {
  args.insert(args.begin(), DAGENT_BINARY);
  for (std::string set : {"history.path=h.db", "memory.enabled=false"}) {
    args.push_back("--set");
    args.push_back(set);
  }
  std::vector<std::string> env;
  if (server) {
    args.push_back("--set");
    args.push_back("llm.ca_file=" + TestCerts::get().ca().string());
    env = {"OPENAI_BASE_URL=" + server->base_url(), "OPENAI_API_KEY=sk-test"};
  }
  return run_process(args, dir.path(), env);
}

void write_llm_task(const TempDir& dir) {
  dir.write("llm.yaml", R"(goal: greet
workspace: .
plan:
  - {id: 1, action: llm, parameters: {prompt: "Say hello", max_tokens: 20}, verify: "The reply greets the reader"}
  - {id: 2, action: write_file, parameters: {path: reply.txt, content: "$step1.text"}}
)");
}

// A fixed plan whose second step fails: no model needed.
void write_failing_task(const TempDir& dir, const std::string& missing = "missing.txt") {
  dir.write("in.txt", "x");
  dir.write("fail.yaml", "workspace: .\nplan: plan.json\n");
  dir.write("plan.json", json::serialize(json::array{
                             json::object{{"id", 1}, {"action", "read_file"}, {"parameters", {{"path", "in.txt"}}}},
                             json::object{{"id", 2}, {"action", "read_file"}, {"parameters", {{"path", missing}}}}}));
}

json::value judge_script() {
  return json::parse(R"({"rules": [{"path": "/v1/chat/completions", "contains": "\"verdict\"",
      "reply": "{\"passed\": true, \"reason\": \"checked by the test judge\"}"}]})");
}

}  // namespace

TEST_CASE("dagent run writes the history and runs list and runs show read it back", "[cli][history]") {
  TestServer server(TestServerOptions{.cert = ServerCert::valid, .script = judge_script()});
  TempDir dir;
  write_llm_task(dir);
  write_failing_task(dir);
  auto ok = dagent_cli(dir, {"run", "llm.yaml", "--json"}, &server);
  INFO(ok.err);
  REQUIRE(ok.exit_code == 0);
  CHECK(ok.err.find("history") == std::string::npos);
  auto failed = dagent_cli(dir, {"run", "fail.yaml", "--json"});
  REQUIRE(failed.exit_code == 1);
  const auto ok_result = json::parse(ok.out).as_object();
  const auto failed_result = json::parse(failed.out).as_object();

  auto list = dagent_cli(dir, {"runs", "list", "--json"});
  INFO(list.err);
  REQUIRE(list.exit_code == 0);
  const auto runs = json::parse(list.out).as_array();
  REQUIRE(runs.size() == 2);
  CHECK(runs[0].at("run_id") == failed_result.at("run_id"));  // newest first
  CHECK(runs[0].at("status") == "failed");
  CHECK(runs[0].at("steps") == 2);
  CHECK(runs[1].at("run_id") == ok_result.at("run_id"));
  CHECK(runs[1].at("task") == "llm");
  CHECK(runs[1].at("goal") == "greet");
  CHECK(runs[1].at("llm_calls") == ok_result.at("metrics").at("llm_calls"));
  CHECK(runs[1].at("prompt_tokens") == ok_result.at("metrics").at("prompt_tokens"));

  auto ids = [&](std::vector<std::string> flags) {
    flags.insert(flags.begin(), {"runs", "list", "--json"});
    auto r = dagent_cli(dir, flags);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    std::vector<std::string> out;
    const auto listed = json::parse(r.out);
    for (const auto& run : listed.as_array()) out.emplace_back(run.at("run_id").as_string());
    return out;
  };
  const std::string ok_id(ok_result.at("run_id").as_string()), failed_id(failed_result.at("run_id").as_string());
  CHECK(ids({"--status", "succeeded"}) == std::vector<std::string>{ok_id});
  CHECK(ids({"--status=failed"}) == std::vector<std::string>{failed_id});
  CHECK(ids({"--task", "llm"}) == std::vector<std::string>{ok_id});
  CHECK(ids({"--since", "1h"}).size() == 2);
  CHECK(ids({"--since", "2000-01-01", "--limit", "1"}) == std::vector<std::string>{failed_id});
  CHECK(ids({"--since", "2999-01-01"}).empty());

  SECTION("runs show --json prints the run's whole result JSON") {
    auto show = dagent_cli(dir, {"runs", "show", ok_id, "--json"});
    INFO(show.err);
    REQUIRE(show.exit_code == 0);
    CHECK(json::parse(show.out) == json::value(ok_result));
  }
  SECTION("runs show prints a summary and the steps") {
    auto show = dagent_cli(dir, {"runs", "show", failed_id});
    INFO(show.err);
    REQUIRE(show.exit_code == 0);
    CHECK_THAT(show.out, Catch::Contains("status:   failed"));
    CHECK_THAT(show.out, Catch::Contains("read_file"));
    CHECK_THAT(show.out, Catch::Contains("missing.txt"));
  }
  SECTION("the table for people") {
    auto table = dagent_cli(dir, {"runs", "list"});
    REQUIRE(table.exit_code == 0);
    CHECK_THAT(table.out, Catch::Contains("STATUS"));
    CHECK_THAT(table.out, Catch::Contains(ok_id));
    CHECK_THAT(table.out, Catch::Contains(failed_id));
  }
}

TEST_CASE("runs: bad flags and unknown ids are usage errors", "[cli][history]") {
  TempDir dir;
  write_failing_task(dir);
  REQUIRE(dagent_cli(dir, {"run", "fail.yaml"}).exit_code == 1);
  for (const auto& args : std::vector<std::vector<std::string>>{{"runs", "list", "--status", "done"},
                                                                {"runs", "list", "--since", "yesterday"},
                                                                {"runs", "list", "--since", "2026-13-01"},
                                                                {"runs", "list", "--limit", "0"},
                                                                {"runs", "frobnicate"},
                                                                {"runs"},
                                                                {"runs", "show"},
                                                                {"runs", "show", "x", "--status", "failed"}}) {
    auto r = dagent_cli(dir, args);
    INFO(args[args.size() - 1]);
    CHECK(r.exit_code == 2);
    CHECK(!r.err.empty());
  }
  auto missing = dagent_cli(dir, {"runs", "show", "no-such-run"});
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.err, Catch::Contains("no run 'no-such-run'"));
}

TEST_CASE("runs list without a history file prints nothing and creates none", "[cli][history]") {
  TempDir dir;
  auto r = dagent_cli(dir, {"runs", "list", "--json"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "[]\n");
  CHECK(!std::filesystem::exists(dir.path() / "h.db"));
}

TEST_CASE("history.enabled false writes no history", "[cli][history]") {
  TempDir dir;
  write_failing_task(dir);
  auto r = dagent_cli(dir, {"run", "fail.yaml", "--set", "history.enabled=false"});
  CHECK(r.exit_code == 1);
  CHECK(!std::filesystem::exists(dir.path() / "h.db"));
}

TEST_CASE("a corrupt history file is one warning naming it, and the run's result and exit code are unchanged",
          "[cli][history]") {
  TempDir dir;
  write_failing_task(dir);
  dir.write("in2.txt", "y");
  dir.write("good.yaml", "workspace: .\nplan: [{id: 1, action: read_file, parameters: {path: in2.txt}}]\n");
  const auto db = dir.write("h.db", std::string(10000, 'G'));
  auto r = dagent_cli(dir, {"run", "good.yaml", "--json"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(json::parse(r.out).at("status") == "succeeded");
  CHECK_THAT(r.err, Catch::Contains("dagent: history: " + db.string()));
  auto failed = dagent_cli(dir, {"run", "fail.yaml"});
  CHECK(failed.exit_code == 1);
  auto list = dagent_cli(dir, {"runs", "list"});
  CHECK(list.exit_code == 1);
  CHECK_THAT(list.err, Catch::Contains(db.string()));
}

TEST_CASE("a history locked by another connection is a warning and the run succeeds", "[cli][history]") {
  TempDir dir;
  dir.write("in2.txt", "y");
  dir.write("good.yaml", "workspace: .\nplan: [{id: 1, action: read_file, parameters: {path: in2.txt}}]\n");
  REQUIRE(dagent_cli(dir, {"run", "good.yaml"}).exit_code == 0);  // the file exists, migrated
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((dir.path() / "h.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
  auto r = dagent_cli(dir, {"run", "good.yaml", "--json"});
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(json::parse(r.out).at("status") == "succeeded");
  CHECK_THAT(r.err, Catch::Contains("locked"));
  CHECK_THAT(r.err, Catch::Contains((dir.path() / "h.db").string()));
  auto list = dagent_cli(dir, {"runs", "list", "--json"});
  REQUIRE(list.exit_code == 0);
  CHECK(json::parse(list.out).as_array().size() == 1);  // the second run is not in it
}

TEST_CASE("runs show strips escape sequences from stored text", "[cli][history]") {
  TempDir dir;
  const std::string hostile = "missing-\x1b]0;pwned-title\x07\x1b[31m-\xc2\x9b" "2J.txt";
  write_failing_task(dir, hostile);
  auto run = dagent_cli(dir, {"run", "fail.yaml", "--json"});
  REQUIRE(run.exit_code == 1);
  const std::string id(json::parse(run.out).at("run_id").as_string());
  for (bool as_json : {false, true}) {
    auto show = dagent_cli(dir, as_json ? std::vector<std::string>{"runs", "show", id, "--json"}
                                        : std::vector<std::string>{"runs", "show", id});
    INFO(as_json);
    REQUIRE(show.exit_code == 0);
    CHECK(show.out.find('\x1b') == std::string::npos);
    CHECK(show.out.find('\x07') == std::string::npos);
    CHECK(show.out.find("\xc2\x9b") == std::string::npos);
    CHECK_THAT(show.out, Catch::Contains("missing-"));
  }
}

TEST_CASE("an unknown history key is a load error with its file and line", "[cli][history]") {
  TempDir dir;
  dir.write("config.yaml", "history:\n  enabled: true\n  keep_dayz: 3\n");
  auto r = run_process({DAGENT_BINARY, "validate"}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("config.yaml:3"));
  CHECK_THAT(r.err, Catch::Contains("keep_dayz"));
}
