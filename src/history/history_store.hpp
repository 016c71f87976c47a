#pragma once
// The run history: every run's summary, its steps and its whole result JSON (SPEC §5) in a
// SQLite database (WAL, schema versioned by PRAGMA user_version and migrated on open).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "history/history_error.hpp"

namespace dagent::executor {
struct RunResult;
}

namespace dagent::history {

/// One step of a stored run. Times are milliseconds since the run started.
struct StepRow {
  int step_id = 0;
  std::string action;
  std::string status;        ///< StepStatus as text
  int attempts = 0;
  double started_ms = 0;
  double finished_ms = 0;
  std::string verification;  ///< VerificationStatus as text
  std::string error;
};

/// A stored run's summary. Times are Unix milliseconds (UTC).
struct RunRow {
  std::string run_id;
  std::string task;
  std::string goal;
  std::string status;  ///< "succeeded" or "failed"
  std::string error;
  std::int64_t started_at_ms = 0;
  std::int64_t ended_at_ms = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t llm_calls = 0;
  int step_count = 0;  ///< filled by queries; record() counts `steps`
};

/// A whole stored run: summary, steps in plan order and the result JSON as it was produced.
struct RunRecord {
  RunRow run;
  std::vector<StepRow> steps;
  std::string result_json;
};

/// What `list` returns: every filter given must hold; newest first, at most `limit` runs.
struct RunFilter {
  std::optional<std::string> status;
  std::optional<std::string> task;
  std::optional<std::int64_t> since_ms;  ///< started at or after this Unix millisecond
  int limit = 50;
};

/// The record of a finished run; it ended at `ended_at_ms` (Unix ms) and lasted its wall_ms.
RunRecord record_of(const executor::RunResult& result, std::string goal, std::int64_t ended_at_ms);

/// The database file, absolute: `configured` (relative: to `base_dir`), or when empty the user's state
/// folder ($XDG_STATE_HOME/dagent/history.db, else ~/.local/state/dagent/history.db); empty
/// when neither variable is set.
std::filesystem::path database_path(std::string_view configured, const std::filesystem::path& base_dir);

/// "2026-12-01" (UTC midnight) or a duration back from `now_ms`: "7d", "12h", "30m"; nullopt
/// when `text` is neither.
std::optional<std::int64_t> parse_since(std::string_view text, std::int64_t now_ms);

/// An open history database. Move-only; one connection, used from one thread at a time.
class HistoryStore {
 public:
  static constexpr int k_schema_version = 2;

  /// Opens (creating the file and its folder) `path`, switches it to WAL and migrates its schema
  /// to k_schema_version. A lock held longer than `busy_timeout_ms` fails with HistoryErrc::busy.
  static HistoryResult<HistoryStore> open(const std::filesystem::path& path, int busy_timeout_ms = 1000);

  HistoryStore(HistoryStore&&) noexcept;
  HistoryStore& operator=(HistoryStore&&) noexcept;
  ~HistoryStore();

  /// Stores `runs` in one transaction (a run id stored before is replaced).
  HistoryResult<void> record(const std::vector<RunRecord>& runs);
  /// Removes the runs that started before `before_ms` (Unix ms); how many were removed.
  HistoryResult<std::int64_t> prune(std::int64_t before_ms);
  /// Runs matching `filter`, newest first, with their step counts (no steps, no result JSON).
  HistoryResult<std::vector<RunRow>> list(const RunFilter& filter);
  /// The run `run_id` with its steps and result JSON; HistoryErrc::not_found when not stored.
  HistoryResult<RunRecord> show(std::string_view run_id);
  /// The schema version the file had when it was opened (0: it was new).
  int opened_version() const noexcept;

 private:
  struct Impl;
  explicit HistoryStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dagent::history
