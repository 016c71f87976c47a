// A program's runs are written to the run history after they return; a history that cannot be
// written is a warning from finish_background(), never a failed run.

#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"

#include <sqlite3.h>

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include "config/config.hpp"
#include "history/history_store.hpp"
#include "support/process.hpp"

namespace {

namespace json = boost::json;
using dagent::test::TempDir;

dagent::config::Config config_in(const TempDir& dir) {
  dagent::config::Config cfg;
  cfg.memory.enabled = false;
  cfg.history.path = (dir.path() / "h.db").string();
  cfg.history.keep_days = 0;
  return cfg;
}

json::value read_plan() {
  return json::parse(R"([{"id": 1, "action": "read_file", "parameters": {"path": "in.txt"}}])");
}

}  // namespace

TEST_CASE("run_plan is written to the history, and finish_background has waited for it", "[runtime][history]") {
  TempDir dir;
  dir.write("in.txt", "x");
  dagent::Runtime runtime = dagent::runtime::make_runtime(config_in(dir));
  auto outcome = runtime.run_plan(read_plan(), {}, dir.path(), {}, "from-a-program");
  REQUIRE(outcome.problems.empty());
  CHECK(outcome.result.status == dagent::RunStatus::succeeded);
  CHECK(runtime.finish_background().empty());
  auto store = dagent::history::HistoryStore::open(dir.path() / "h.db");
  REQUIRE(store.has_value());
  auto shown = store->show(outcome.result.run_id);
  REQUIRE(shown.has_value());
  CHECK(shown->run.task == "from-a-program");
  REQUIRE(shown->steps.size() == 1);
  CHECK(shown->steps[0].action == "read_file");
}

TEST_CASE("a locked history leaves run_plan's result as it is and is one warning", "[runtime][history]") {
  TempDir dir;
  dir.write("in.txt", "x");
  REQUIRE(dagent::history::HistoryStore::open(dir.path() / "h.db").has_value());
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((dir.path() / "h.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
  dagent::Runtime runtime = dagent::runtime::make_runtime(config_in(dir));
  auto outcome = runtime.run_plan(read_plan(), {}, dir.path());
  auto warnings = runtime.finish_background();
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  REQUIRE(outcome.problems.empty());
  CHECK(outcome.result.status == dagent::RunStatus::succeeded);
  CHECK(outcome.exit_code() == 0);
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Catch::Contains("locked") && Catch::Contains("h.db"));
}
