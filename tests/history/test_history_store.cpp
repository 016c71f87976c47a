#include "history/history_store.hpp"

#include <sqlite3.h>

#include <chrono>
#include <fstream>

#include <catch2/catch.hpp>

#include "executor/run_types.hpp"
#include "support/process.hpp"

using namespace dagent::history;
using dagent::test::TempDir;

namespace {

RunRecord make_run(std::string id, std::string task, std::string status, std::int64_t started, int steps) {
  RunRecord r;
  r.run = RunRow{id, task, "goal of " + id, status, status == "failed" ? "step 2 failed" : "", started, started + 1500,
                 100, 20, 3, 0};
  for (int i = 1; i <= steps; ++i)
    r.steps.push_back(StepRow{i, i % 2 ? "read_file" : "llm", "succeeded", 1, i * 10.0, i * 10.0 + 5, "passed",
                              i == 2 ? "boom" : ""});
  r.result_json = R"({"run_id":")" + id + R"("})";
  return r;
}

int user_version(const std::filesystem::path& path) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, nullptr);
  sqlite3_step(s);
  const int v = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return v;
}

}  // namespace

TEST_CASE("HistoryStore creates the schema in WAL mode and round-trips a run with its steps") {
  TempDir dir;
  const auto path = dir.path() / "sub" / "history.db";
  auto store = HistoryStore::open(path);
  REQUIRE((store).has_value());
  CHECK(store->opened_version() == 0);
  CHECK(user_version(path) == HistoryStore::k_schema_version);
  CHECK(std::filesystem::exists(dir.path() / "sub" / "history.db-wal"));

  REQUIRE((store->record({make_run("r1", "t", "failed", 1000, 3)})).has_value());
  auto shown = store->show("r1");
  REQUIRE((shown).has_value());
  CHECK(shown->run.task == "t");
  CHECK(shown->run.goal == "goal of r1");
  CHECK(shown->run.status == "failed");
  CHECK(shown->run.error == "step 2 failed");
  CHECK(shown->run.started_at_ms == 1000);
  CHECK(shown->run.ended_at_ms == 2500);
  CHECK(shown->run.prompt_tokens == 100);
  CHECK(shown->run.completion_tokens == 20);
  CHECK(shown->run.llm_calls == 3);
  CHECK(shown->run.step_count == 3);
  REQUIRE(shown->steps.size() == 3);
  CHECK(shown->steps[1].action == "llm");
  CHECK(shown->steps[1].error == "boom");
  CHECK(shown->steps[1].verification == "passed");
  CHECK(shown->steps[2].started_ms == 30.0);
  CHECK(shown->result_json == R"({"run_id":"r1"})");

  SECTION("a run stored again replaces the old one") {
    REQUIRE((store->record({make_run("r1", "t2", "succeeded", 1000, 1)})).has_value());
    auto again = store->show("r1");
    REQUIRE((again).has_value());
    CHECK(again->run.task == "t2");
    CHECK(again->steps.size() == 1);
  }
  SECTION("an unknown id is not_found") {
    auto missing = store->show("nope");
    REQUIRE(!(missing).has_value());
    CHECK(missing.error().code == HistoryErrc::not_found);
  }
  SECTION("the file opened again keeps the run") {
    store = HistoryStore::open(path);
    REQUIRE((store).has_value());
    CHECK(store->opened_version() == HistoryStore::k_schema_version);
    CHECK((store->show("r1")).has_value());
  }
}

TEST_CASE("HistoryStore list filters by status, task and start time, newest first") {
  TempDir dir;
  auto store = HistoryStore::open(dir.path() / "h.db");
  REQUIRE((store).has_value());
  REQUIRE(store->record({make_run("a", "alpha", "succeeded", 1000, 2), make_run("b", "beta", "failed", 2000, 1),
                         make_run("c", "alpha", "failed", 3000, 0), make_run("d", "alpha", "succeeded", 4000, 4)})
              .has_value());
  auto ids = [&](const RunFilter& f) {
    std::vector<std::string> out;
    auto rows = store->list(f);
    REQUIRE((rows).has_value());
    for (const auto& r : *rows) out.push_back(r.run_id);
    return out;
  };
  CHECK(ids({}) == std::vector<std::string>{"d", "c", "b", "a"});
  CHECK(ids({.limit = 2}) == std::vector<std::string>{"d", "c"});
  CHECK(ids({.status = "failed"}) == std::vector<std::string>{"c", "b"});
  CHECK(ids({.task = "alpha"}) == std::vector<std::string>{"d", "c", "a"});
  CHECK(ids({.since_ms = 2000}) == std::vector<std::string>{"d", "c", "b"});
  CHECK(ids({.status = "succeeded", .task = "alpha", .since_ms = 2000}) == std::vector<std::string>{"d"});
  CHECK(ids({.task = "gamma"}).empty());
  auto rows = store->list({.task = "alpha", .limit = 1});
  REQUIRE((rows).has_value());
  CHECK((*rows)[0].step_count == 4);
}

TEST_CASE("HistoryStore prune removes old runs with their steps and results") {
  TempDir dir;
  auto store = HistoryStore::open(dir.path() / "h.db");
  REQUIRE((store).has_value());
  REQUIRE((store->record({make_run("old", "t", "succeeded", 1000, 3), make_run("new", "t", "succeeded", 5000, 3)})).has_value());
  auto removed = store->prune(2000);
  REQUIRE((removed).has_value());
  CHECK(*removed == 1);
  CHECK(!(store->show("old")).has_value());
  CHECK((store->show("new")).has_value());
  auto rows = store->list({});
  REQUIRE((rows).has_value());
  CHECK(rows->size() == 1);
}

TEST_CASE("HistoryStore migrates a version 1 file and keeps its runs") {
  TempDir dir;
  const auto path = dir.path() / "v1.db";
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    const char* v1 = R"sql(
      CREATE TABLE runs(id INTEGER PRIMARY KEY, run_id TEXT NOT NULL UNIQUE, task TEXT NOT NULL, goal TEXT NOT NULL,
        status TEXT NOT NULL, error TEXT NOT NULL, started_ms INTEGER NOT NULL, ended_ms INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, llm_calls INTEGER NOT NULL);
      CREATE TABLE steps(run INTEGER NOT NULL, step_id INTEGER NOT NULL, action TEXT NOT NULL, status TEXT NOT NULL,
        attempts INTEGER NOT NULL, started_ms REAL NOT NULL, finished_ms REAL NOT NULL, verification TEXT NOT NULL,
        PRIMARY KEY(run, step_id)) WITHOUT ROWID;
      CREATE TABLE results(run INTEGER PRIMARY KEY, json TEXT NOT NULL);
      CREATE INDEX runs_started ON runs(started_ms);
      INSERT INTO runs VALUES(1, 'old-run', 'task', 'goal', 'succeeded', '', 10, 20, 1, 2, 3);
      INSERT INTO steps VALUES(1, 1, 'llm', 'succeeded', 1, 0.5, 9.5, 'not_requested');
      INSERT INTO results VALUES(1, '{}');
      PRAGMA user_version = 1;)sql";
    REQUIRE(sqlite3_exec(db, v1, nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  auto store = HistoryStore::open(path);
  REQUIRE((store).has_value());
  CHECK(store->opened_version() == 1);
  CHECK(user_version(path) == 2);
  auto old = store->show("old-run");
  REQUIRE((old).has_value());
  REQUIRE(old->steps.size() == 1);
  CHECK(old->steps[0].error.empty());  // the column version 2 added
  REQUIRE((store->record({make_run("new-run", "task", "failed", 30, 2)})).has_value());
  auto rows = store->list({.status = "failed"});
  REQUIRE((rows).has_value());
  REQUIRE(rows->size() == 1);
  CHECK((*rows)[0].run_id == "new-run");
}

TEST_CASE("HistoryStore refuses a newer schema, a corrupt file and a locked database with errors") {
  TempDir dir;
  SECTION("newer schema") {
    const auto path = dir.path() / "new.db";
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    auto store = HistoryStore::open(path);
    REQUIRE(!(store).has_value());
    CHECK(store.error().code == HistoryErrc::newer_schema);
  }
  SECTION("garbage bytes") {
    const auto path = dir.write("bad.db", std::string(8192, 'x'));
    auto store = HistoryStore::open(path);
    REQUIRE(!(store).has_value());
    CHECK(store.error().code == HistoryErrc::corrupt);
    CHECK(store.error().message.find(path.string()) != std::string::npos);
  }
  SECTION("another connection holds an exclusive lock") {
    const auto path = dir.path() / "locked.db";
    REQUIRE((HistoryStore::open(path)).has_value());
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    REQUIRE(sqlite3_exec(db, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
    auto store = HistoryStore::open(path, 10);
    if (store) {  // opening needs no write lock on a migrated file; writing does
      auto written = store->record({make_run("r", "t", "succeeded", 1, 1)});
      REQUIRE(!(written).has_value());
      CHECK(written.error().code == HistoryErrc::busy);
    } else {
      CHECK(store.error().code == HistoryErrc::busy);
    }
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
}

TEST_CASE("record_of takes a run result's summary, steps and whole JSON") {
  dagent::executor::RunResult result;
  result.run_id = "run-1";
  result.task = "demo";
  result.status = dagent::RunStatus::succeeded;
  result.metrics.wall_ms = 2500;
  result.metrics.prompt_tokens = 7;
  result.metrics.llm_calls = 2;
  dagent::executor::StepResult step;
  step.id = 4;
  step.action = "llm";
  step.status = dagent::StepStatus::failed;
  step.attempts = 2;
  step.verification = dagent::VerificationStatus::failed;
  step.error = "bad";
  result.steps.push_back(step);
  auto r = record_of(result, "the goal", 10'000);
  CHECK(r.run.started_at_ms == 7'500);
  CHECK(r.run.ended_at_ms == 10'000);
  CHECK(r.run.goal == "the goal");
  CHECK(r.run.status == "succeeded");
  REQUIRE(r.steps.size() == 1);
  CHECK(r.steps[0].step_id == 4);
  CHECK(r.steps[0].status == "failed");
  CHECK(r.steps[0].verification == "failed");
  CHECK(r.steps[0].attempts == 2);
  CHECK(r.result_json.find(R"("run_id":"run-1")") != std::string::npos);
}

TEST_CASE("parse_since takes a date or a duration back from now") {
  const std::int64_t now = 1'800'000'000'000;
  CHECK(parse_since("7d", now) == now - 7 * 86'400'000LL);
  CHECK(parse_since("12h", now) == now - 12 * 3'600'000LL);
  CHECK(parse_since("30m", now) == now - 30 * 60'000LL);
  CHECK(parse_since("1970-01-02", now) == 86'400'000LL);
  CHECK(parse_since("2026-12-01", now) == 1'796'083'200'000LL);
  CHECK(!parse_since("2026-02-30", now));
  CHECK(!parse_since("d", now));
  CHECK(!parse_since("7x", now));
  CHECK(!parse_since("-7d", now));
  CHECK(!parse_since("", now));
  CHECK(!parse_since("yesterday", now));
}

TEST_CASE("database_path resolves a configured path and defaults to the state folder") {
  CHECK(database_path("h.db", "/etc/x") == std::filesystem::path("/etc/x/h.db"));
  CHECK(database_path("/abs/h.db", "/etc/x") == std::filesystem::path("/abs/h.db"));
  const char* state = std::getenv("XDG_STATE_HOME");  // tests/main.cpp sets it
  REQUIRE(state != nullptr);
  CHECK(database_path("", "/etc/x") == std::filesystem::path(state) / "dagent" / "history.db");
}
