#include "history/history_writer.hpp"

#include <sqlite3.h>

#include <chrono>

#include <catch2/catch.hpp>

#include "support/process.hpp"

using namespace dagent::history;
using dagent::test::TempDir;

namespace {

RunRecord run_at(std::string id, std::int64_t started_ms) {
  RunRecord r;
  r.run.run_id = std::move(id);
  r.run.task = "t";
  r.run.status = "succeeded";
  r.run.started_at_ms = started_ms;
  r.run.ended_at_ms = started_ms + 10;
  r.steps.push_back(StepRow{1, "llm", "succeeded", 1, 0, 10, "not_requested", ""});
  r.result_json = "{}";
  return r;
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

TEST_CASE("HistoryWriter writes submitted runs by flush and prunes runs older than keep_days") {
  TempDir dir;
  const auto path = dir.path() / "h.db";
  {
    HistoryWriter writer({.path = path, .keep_days = 30});
    writer.submit(run_at("ancient", now_ms() - 31LL * 86'400'000));
    writer.submit(run_at("recent", now_ms() - 1000));
    CHECK(writer.flush().empty());
  }
  auto store = HistoryStore::open(path);
  REQUIRE((store).has_value());
  CHECK((store->show("recent")).has_value());
  CHECK(!(store->show("ancient")).has_value());
}

TEST_CASE("HistoryWriter with keep_days 0 keeps every run, and its destructor writes what is queued") {
  TempDir dir;
  const auto path = dir.path() / "h.db";
  {
    HistoryWriter writer({.path = path, .keep_days = 0});
    writer.submit(run_at("ancient", 1000));
  }
  auto store = HistoryStore::open(path);
  REQUIRE((store).has_value());
  CHECK((store->show("ancient")).has_value());
}

TEST_CASE("HistoryWriter turns a corrupt, locked or unusable database into one warning naming it") {
  TempDir dir;
  SECTION("garbage bytes") {
    const auto path = dir.write("bad.db", std::string(4096, '\x7f'));
    HistoryWriter writer({.path = path});
    writer.submit(run_at("r1", now_ms()));
    auto warnings = writer.flush();
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find(path.string()) != std::string::npos);
    CHECK(warnings[0].find("r1") != std::string::npos);
    CHECK(writer.flush().empty());  // reported once
  }
  SECTION("locked by another connection") {
    const auto path = dir.path() / "locked.db";
    REQUIRE((HistoryStore::open(path)).has_value());
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    REQUIRE(sqlite3_exec(db, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
    HistoryWriter writer({.path = path, .busy_timeout_ms = 10});
    writer.submit(run_at("r2", now_ms()));
    auto warnings = writer.flush();
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db);
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("locked") != std::string::npos);
    CHECK(warnings[0].find(path.string()) != std::string::npos);
    // The lock is gone: the next run is written.
    writer.submit(run_at("r3", now_ms()));
    CHECK(writer.flush().empty());
  }
  SECTION("a folder that cannot be created") {
    const auto file = dir.write("file", "x");
    HistoryWriter writer({.path = file / "sub" / "h.db"});
    writer.submit(run_at("r4", now_ms()));
    auto warnings = writer.flush();
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("r4") != std::string::npos);
  }
  SECTION("no path") {
    HistoryWriter writer({});
    writer.submit(run_at("r5", now_ms()));
    auto warnings = writer.flush();
    REQUIRE(warnings.size() == 1);
    CHECK(warnings[0].find("history.path") != std::string::npos);
  }
}
