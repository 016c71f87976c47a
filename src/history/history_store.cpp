#include "history/history_store.hpp"

#include <sqlite3.h>

#include <array>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <utility>

#include <boost/json/serialize.hpp>

#include "executor/run_types.hpp"
#include "text/json_utf8.hpp"

namespace dagent::history {

namespace {

HistoryError error_of(sqlite3* db, int rc, const std::filesystem::path& path, std::string_view doing) {
  const int primary = rc & 0xFF;
  HistoryErrc code = HistoryErrc::io_error;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) code = HistoryErrc::busy;
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) code = HistoryErrc::corrupt;
  if (primary == SQLITE_CANTOPEN) code = HistoryErrc::cannot_open;
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return history_error(code, path.string() + ": " + std::string(doing) + ": " + detail);
}

// A prepared statement; finalized on destruction.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&& other) noexcept : stmt_(std::exchange(other.stmt_, nullptr)) {}
  ~Statement() { sqlite3_finalize(stmt_); }

  int prepare(sqlite3* db, std::string_view sql) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    return sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  }
  sqlite3_stmt* get() const { return stmt_; }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  void bind(int i, std::string_view text) {
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void bind(int i, int v) { sqlite3_bind_int(stmt_, i, v); }
  void bind(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
  }
  std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// Schema version 1: runs, their steps and their result JSON; the start-time index.
constexpr std::string_view k_schema_v1 = R"sql(
CREATE TABLE runs(
  id INTEGER PRIMARY KEY,
  run_id TEXT NOT NULL UNIQUE,
  task TEXT NOT NULL,
  goal TEXT NOT NULL,
  status TEXT NOT NULL,
  error TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  ended_ms INTEGER NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  llm_calls INTEGER NOT NULL);
CREATE TABLE steps(
  run INTEGER NOT NULL,
  step_id INTEGER NOT NULL,
  action TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  started_ms REAL NOT NULL,
  finished_ms REAL NOT NULL,
  verification TEXT NOT NULL,
  PRIMARY KEY(run, step_id)) WITHOUT ROWID;
CREATE TABLE results(run INTEGER PRIMARY KEY, json TEXT NOT NULL);
CREATE INDEX runs_started ON runs(started_ms);
)sql";

// Version 2: each step's error, and indexes for `runs list --status/--task` newest first.
constexpr std::string_view k_schema_v2 = R"sql(
ALTER TABLE steps ADD COLUMN error TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_status ON runs(status, started_ms);
CREATE INDEX runs_task ON runs(task, started_ms);
)sql";

// Migration to version i + 1 is k_migrations[i]; each runs in the transaction that sets
// user_version, so a file is at one version or the next, never between.
constexpr std::array<std::string_view, HistoryStore::k_schema_version> k_migrations = {k_schema_v1, k_schema_v2};

constexpr std::string_view k_insert_run =
    "INSERT INTO runs(run_id, task, goal, status, error, started_ms, ended_ms, prompt_tokens, completion_tokens, "
    "llm_calls) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
constexpr std::string_view k_insert_step =
    "INSERT INTO steps(run, step_id, action, status, attempts, started_ms, finished_ms, verification, error) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
constexpr std::string_view k_insert_result = "INSERT INTO results(run, json) VALUES(?1, ?2)";
constexpr std::string_view k_find_run = "SELECT id FROM runs WHERE run_id = ?1";
constexpr std::string_view k_run_columns =
    "SELECT run_id, task, goal, status, error, started_ms, ended_ms, prompt_tokens, completion_tokens, llm_calls, "
    "(SELECT count(*) FROM steps WHERE steps.run = runs.id), id FROM runs";

RunRow row_of(const Statement& s) {
  RunRow r;
  r.run_id = s.text(0);
  r.task = s.text(1);
  r.goal = s.text(2);
  r.status = s.text(3);
  r.error = s.text(4);
  r.started_at_ms = s.int64(5);
  r.ended_at_ms = s.int64(6);
  r.prompt_tokens = s.int64(7);
  r.completion_tokens = s.int64(8);
  r.llm_calls = s.int64(9);
  r.step_count = static_cast<int>(s.int64(10));
  return r;
}

}  // namespace

struct HistoryStore::Impl {
  sqlite3* db = nullptr;
  std::filesystem::path path;
  int opened_version = 0;
  Statement insert_run, insert_step, insert_result, find_run;

  ~Impl() { sqlite3_close_v2(db); }

  HistoryError fail(int rc, std::string_view doing) const { return error_of(db, rc, path, doing); }

  int exec(std::string_view sql) { return sqlite3_exec(db, std::string(sql).c_str(), nullptr, nullptr, nullptr); }

  // Runs `body` between BEGIN IMMEDIATE and COMMIT; rolls back when it fails.
  HistoryResult<void> transaction(std::string_view doing, const std::function<int()>& body) {
    int rc = exec("BEGIN IMMEDIATE");
    if (rc != SQLITE_OK) return fail(rc, doing);
    rc = body();
    if (rc == SQLITE_OK || rc == SQLITE_DONE) rc = exec("COMMIT");
    if (rc != SQLITE_OK) {
      auto error = fail(rc, doing);
      exec("ROLLBACK");
      return error;
    }
    return {};
  }

  HistoryResult<int> user_version() {
    Statement s;
    int rc = s.prepare(db, "PRAGMA user_version");
    if (rc == SQLITE_OK) rc = sqlite3_step(s.get());
    if (rc != SQLITE_ROW) return fail(rc, "reading the schema version");
    return static_cast<int>(s.int64(0));
  }

  HistoryResult<void> migrate() {
    auto version = user_version();
    if (!version) return version.error();
    opened_version = *version;
    if (*version > k_schema_version)
      return history_error(HistoryErrc::newer_schema, path.string() + ": schema version " + std::to_string(*version) +
                                                          " is newer than this dagent's " +
                                                          std::to_string(k_schema_version));
    for (int v = *version; v < k_schema_version; ++v) {
      // Read again inside the write lock: another process may have migrated meanwhile.
      auto migrated = transaction("migrating the schema", [&]() -> int {
        auto now = user_version();
        if (!now) return SQLITE_BUSY;
        if (*now != v) return SQLITE_OK;
        int rc = exec(k_migrations[static_cast<std::size_t>(v)]);
        if (rc != SQLITE_OK) return rc;
        return exec("PRAGMA user_version = " + std::to_string(v + 1));
      });
      if (!migrated) return migrated.error();
    }
    return {};
  }

  int insert(const RunRecord& record) {
    const RunRow& r = record.run;
    // A run stored again (the same id) replaces the old one.
    find_run.reset();
    find_run.bind(1, r.run_id);
    int rc = sqlite3_step(find_run.get());
    if (rc == SQLITE_ROW) {
      const auto old = find_run.int64(0);
      for (const char* table : {"DELETE FROM steps WHERE run = ?1", "DELETE FROM results WHERE run = ?1",
                                "DELETE FROM runs WHERE id = ?1"}) {
        Statement del;
        if ((rc = del.prepare(db, table)) != SQLITE_OK) return rc;
        del.bind(1, old);
        if ((rc = sqlite3_step(del.get())) != SQLITE_DONE) return rc;
      }
    } else if (rc != SQLITE_DONE) {
      return rc;
    }
    auto& s = insert_run;
    s.reset();
    s.bind(1, r.run_id);
    s.bind(2, r.task);
    s.bind(3, r.goal);
    s.bind(4, r.status);
    s.bind(5, r.error);
    s.bind(6, r.started_at_ms);
    s.bind(7, r.ended_at_ms);
    s.bind(8, r.prompt_tokens);
    s.bind(9, r.completion_tokens);
    s.bind(10, r.llm_calls);
    if ((rc = sqlite3_step(s.get())) != SQLITE_DONE) return rc;
    const std::int64_t id = sqlite3_last_insert_rowid(db);
    for (const StepRow& step : record.steps) {
      auto& t = insert_step;
      t.reset();
      t.bind(1, id);
      t.bind(2, step.step_id);
      t.bind(3, step.action);
      t.bind(4, step.status);
      t.bind(5, step.attempts);
      t.bind(6, step.started_ms);
      t.bind(7, step.finished_ms);
      t.bind(8, step.verification);
      t.bind(9, step.error);
      if ((rc = sqlite3_step(t.get())) != SQLITE_DONE) return rc;
    }
    insert_result.reset();
    insert_result.bind(1, id);
    insert_result.bind(2, record.result_json);
    rc = sqlite3_step(insert_result.get());
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
  }
};

HistoryStore::HistoryStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HistoryStore::HistoryStore(HistoryStore&&) noexcept = default;
HistoryStore& HistoryStore::operator=(HistoryStore&&) noexcept = default;
HistoryStore::~HistoryStore() = default;

int HistoryStore::opened_version() const noexcept { return impl_->opened_version; }

HistoryResult<HistoryStore> HistoryStore::open(const std::filesystem::path& path, int busy_timeout_ms) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return history_error(HistoryErrc::cannot_open, path.string() + ": cannot create its folder: " + ec.message());
  int rc = sqlite3_open_v2(path.c_str(), &impl->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) return impl->fail(rc, "opening");
  sqlite3_extended_result_codes(impl->db, 1);
  sqlite3_busy_timeout(impl->db, busy_timeout_ms);
  // WAL: readers (`dagent runs list`) never block the writer, nor it them. NORMAL sync is
  // durable across a crash of dagent (a power loss may lose the last runs, never the file).
  if ((rc = impl->exec("PRAGMA journal_mode = WAL")) != SQLITE_OK) return impl->fail(rc, "switching to WAL");
  if ((rc = impl->exec("PRAGMA synchronous = NORMAL")) != SQLITE_OK) return impl->fail(rc, "opening");
  if (auto migrated = impl->migrate(); !migrated) return migrated.error();
  if ((rc = impl->insert_run.prepare(impl->db, k_insert_run)) != SQLITE_OK ||
      (rc = impl->insert_step.prepare(impl->db, k_insert_step)) != SQLITE_OK ||
      (rc = impl->insert_result.prepare(impl->db, k_insert_result)) != SQLITE_OK ||
      (rc = impl->find_run.prepare(impl->db, k_find_run)) != SQLITE_OK)
    return impl->fail(rc, "preparing statements");
  return HistoryStore(std::move(impl));
}

HistoryResult<void> HistoryStore::record(const std::vector<RunRecord>& runs) {
  return impl_->transaction("writing a run", [&]() -> int {
    for (const auto& run : runs)
      if (int rc = impl_->insert(run); rc != SQLITE_OK) return rc;
    return SQLITE_OK;
  });
}

HistoryResult<std::int64_t> HistoryStore::prune(std::int64_t before_ms) {
  std::int64_t removed = 0;
  auto done = impl_->transaction("removing old runs", [&]() -> int {
    constexpr std::array<std::string_view, 3> k_deletes = {
        "DELETE FROM steps WHERE run IN (SELECT id FROM runs WHERE started_ms < ?1)",
        "DELETE FROM results WHERE run IN (SELECT id FROM runs WHERE started_ms < ?1)",
        "DELETE FROM runs WHERE started_ms < ?1"};
    for (auto sql : k_deletes) {
      Statement s;
      int rc = s.prepare(impl_->db, sql);
      if (rc != SQLITE_OK) return rc;
      s.bind(1, before_ms);
      if ((rc = sqlite3_step(s.get())) != SQLITE_DONE) return rc;
    }
    removed = sqlite3_changes64(impl_->db);
    return SQLITE_OK;
  });
  if (!done) return done.error();
  return removed;
}

HistoryResult<std::vector<RunRow>> HistoryStore::list(const RunFilter& filter) {
  // Fixed fragments only; every value is a bound parameter.
  std::string sql(k_run_columns);
  std::string where;
  auto add = [&](std::string_view condition) { where += (where.empty() ? " WHERE " : " AND ") + std::string(condition); };
  if (filter.status) add("status = ?1");
  if (filter.task) add("task = ?2");
  if (filter.since_ms) add("started_ms >= ?3");
  sql += where + " ORDER BY started_ms DESC LIMIT ?4";
  Statement s;
  int rc = s.prepare(impl_->db, sql);
  if (rc != SQLITE_OK) return impl_->fail(rc, "listing runs");
  if (filter.status) s.bind(1, *filter.status);
  if (filter.task) s.bind(2, *filter.task);
  if (filter.since_ms) s.bind(3, *filter.since_ms);
  s.bind(4, filter.limit);
  std::vector<RunRow> rows;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) rows.push_back(row_of(s));
  if (rc != SQLITE_DONE) return impl_->fail(rc, "listing runs");
  return rows;
}

HistoryResult<RunRecord> HistoryStore::show(std::string_view run_id) {
  Statement s;
  int rc = s.prepare(impl_->db, std::string(k_run_columns) + " WHERE run_id = ?1");
  if (rc != SQLITE_OK) return impl_->fail(rc, "reading a run");
  s.bind(1, run_id);
  rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE)
    return history_error(HistoryErrc::not_found, impl_->path.string() + ": no run '" + std::string(run_id) + "'");
  if (rc != SQLITE_ROW) return impl_->fail(rc, "reading a run");
  RunRecord record;
  record.run = row_of(s);
  const std::int64_t id = s.int64(11);
  Statement steps;
  if ((rc = steps.prepare(impl_->db,
                          "SELECT step_id, action, status, attempts, started_ms, finished_ms, verification, error "
                          "FROM steps WHERE run = ?1 ORDER BY step_id")) != SQLITE_OK)
    return impl_->fail(rc, "reading a run's steps");
  steps.bind(1, id);
  while ((rc = sqlite3_step(steps.get())) == SQLITE_ROW) {
    StepRow step;
    step.step_id = static_cast<int>(steps.int64(0));
    step.action = steps.text(1);
    step.status = steps.text(2);
    step.attempts = static_cast<int>(steps.int64(3));
    step.started_ms = steps.real(4);
    step.finished_ms = steps.real(5);
    step.verification = steps.text(6);
    step.error = steps.text(7);
    record.steps.push_back(std::move(step));
  }
  if (rc != SQLITE_DONE) return impl_->fail(rc, "reading a run's steps");
  Statement result;
  if ((rc = result.prepare(impl_->db, "SELECT json FROM results WHERE run = ?1")) != SQLITE_OK)
    return impl_->fail(rc, "reading a run's result");
  result.bind(1, id);
  rc = sqlite3_step(result.get());
  if (rc == SQLITE_ROW) {
    record.result_json = result.text(0);
  } else if (rc != SQLITE_DONE) {
    return impl_->fail(rc, "reading a run's result");
  }
  return record;
}

RunRecord record_of(const executor::RunResult& result, std::string goal, std::int64_t ended_at_ms) {
  RunRecord record;
  RunRow& r = record.run;
  r.run_id = result.run_id;
  r.task = result.task;
  r.goal = std::move(goal);
  r.status = std::string(to_string(result.status));
  r.error = result.error;
  r.ended_at_ms = ended_at_ms;
  r.started_at_ms = ended_at_ms - static_cast<std::int64_t>(result.metrics.wall_ms);
  r.prompt_tokens = result.metrics.prompt_tokens;
  r.completion_tokens = result.metrics.completion_tokens;
  r.llm_calls = result.metrics.llm_calls;
  r.step_count = static_cast<int>(result.steps.size());
  for (const executor::StepResult& step : result.steps) {
    record.steps.push_back(StepRow{step.id, step.action, std::string(to_string(step.status)), step.attempts,
                                   step.started_ms, step.finished_ms, std::string(to_string(step.verification)),
                                   step.error});
  }
  record.result_json = text::serialize_valid(to_json(result));
  return record;
}

std::filesystem::path database_path(std::string_view configured, const std::filesystem::path& base_dir) {
  if (!configured.empty()) {
    std::error_code ec;  // absolute: warnings name the file wherever dagent was started
    const auto path = std::filesystem::absolute(base_dir / std::filesystem::path(std::string(configured)), ec);
    return (ec ? base_dir / std::filesystem::path(std::string(configured)) : path).lexically_normal();
  }
  const char* state = std::getenv("XDG_STATE_HOME");
  if (state != nullptr && std::filesystem::path(state).is_absolute())
    return std::filesystem::path(state) / "dagent" / "history.db";
  const char* home = std::getenv("HOME");
  if (home != nullptr && std::filesystem::path(home).is_absolute())
    return std::filesystem::path(home) / ".local" / "state" / "dagent" / "history.db";
  return {};
}

std::optional<std::int64_t> parse_since(std::string_view text, std::int64_t now_ms) {
  auto number = [](std::string_view digits) -> std::optional<std::int64_t> {
    std::int64_t n = 0;
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string_view::npos)
      return std::nullopt;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
    return n;
  };
  if (text.size() >= 2) {
    const char unit = text.back();
    const std::int64_t unit_ms = unit == 'd' ? 86'400'000 : unit == 'h' ? 3'600'000 : unit == 'm' ? 60'000 : 0;
    if (unit_ms != 0) {
      if (auto n = number(text.substr(0, text.size() - 1))) return now_ms - *n * unit_ms;
      return std::nullopt;
    }
  }
  // YYYY-MM-DD, a real calendar date, at 00:00 UTC.
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  auto y = number(text.substr(0, 4)), m = number(text.substr(5, 2)), d = number(text.substr(8, 2));
  if (!y || !m || !d) return std::nullopt;
  using namespace std::chrono;
  const year_month_day date{year{static_cast<int>(*y)}, month{static_cast<unsigned>(*m)}, day{static_cast<unsigned>(*d)}};
  if (!date.ok()) return std::nullopt;
  return duration_cast<milliseconds>(sys_days{date}.time_since_epoch()).count();
}

}  // namespace dagent::history
