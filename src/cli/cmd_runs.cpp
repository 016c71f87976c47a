// `dagent runs list [--status S] [--task T] [--since D] [--limit N] [--json]` and
// `dagent runs show ID [--json]`: the run history (README "Run history").

#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string>

#include <boost/json/parse.hpp>

#include "cli/commands.hpp"
#include "cli/terminal_out.hpp"
#include "config/config.hpp"
#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"
#include "history/history_store.hpp"
#include "text/json_utf8.hpp"

namespace dagent::cli {

namespace {

namespace json = boost::json;

// Unix ms as "2026-12-03 12:10:13" (UTC).
std::string utc(std::int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%d %H:%M:%S", &tm);
  return out;
}

json::object to_json(const history::RunRow& r) {
  return json::object{{"run_id", r.run_id},
                      {"task", r.task},
                      {"goal", r.goal},
                      {"status", r.status},
                      {"error", r.error},
                      {"started_at", utc(r.started_at_ms) + "Z"},
                      {"ended_at", utc(r.ended_at_ms) + "Z"},
                      {"wall_ms", r.ended_at_ms - r.started_at_ms},
                      {"steps", r.step_count},
                      {"llm_calls", r.llm_calls},
                      {"prompt_tokens", r.prompt_tokens},
                      {"completion_tokens", r.completion_tokens}};
}

void print_json(const json::value& value) {
  std::printf("%s\n", json_for_terminal(text::serialize_valid(value)).c_str());
}

int list_runs(history::HistoryStore& store, const Options& options) {
  auto rows = store.list({.status = options.status, .task = options.task, .since_ms = options.since_ms,
                          .limit = options.limit});
  if (!rows) {
    print_safe(stderr, "dagent: history: %s\n", rows.error().message.c_str());
    return 1;
  }
  if (options.json) {
    json::array out;
    for (const auto& r : *rows) out.push_back(to_json(r));
    print_json(out);
    return 0;
  }
  if (rows->empty()) {
    print_safe(stderr, "no runs match\n");
    return 0;
  }
  std::printf("%-24s %-19s %-9s %5s %9s %8s  %s\n", "RUN", "STARTED (UTC)", "STATUS", "STEPS", "SECONDS", "TOKENS",
              "TASK");
  for (const auto& r : *rows)
    print_safe(stdout, "%-24s %-19s %-9s %5d %9.1f %8" PRId64 "  %s\n", r.run_id.c_str(), utc(r.started_at_ms).c_str(),
               r.status.c_str(), r.step_count, static_cast<double>(r.ended_at_ms - r.started_at_ms) / 1000.0,
               r.prompt_tokens + r.completion_tokens, r.task.c_str());
  return 0;
}

int show_run(history::HistoryStore& store, const std::string& id, const Options& options) {
  auto record = store.show(id);
  if (!record) {
    print_safe(stderr, "dagent: %s\n", record.error().message.c_str());
    return record.error().code == history::HistoryErrc::not_found ? 2 : 1;
  }
  if (options.json) {
    // Kept whole as the run produced it; parsed again so what is printed is JSON whatever the file holds.
    boost::system::error_code ec;
    auto value = json::parse(record->result_json, ec);
    if (ec) {
      print_safe(stderr, "dagent: history: the stored result of run %s is not JSON\n", id.c_str());
      return 1;
    }
    print_json(value);
    return 0;
  }
  const auto& r = record->run;
  print_safe(stdout, "run:      %s\ntask:     %s\n", r.run_id.c_str(), r.task.c_str());
  if (!r.goal.empty()) print_safe(stdout, "goal:     %s\n", r.goal.c_str());
  print_safe(stdout, "status:   %s\n", r.status.c_str());
  if (!r.error.empty()) print_safe(stdout, "error:    %s\n", r.error.c_str());
  print_safe(stdout, "started:  %s UTC\nended:    %s UTC (%.1f s)\n", utc(r.started_at_ms).c_str(),
             utc(r.ended_at_ms).c_str(), static_cast<double>(r.ended_at_ms - r.started_at_ms) / 1000.0);
  print_safe(stdout, "model:    %" PRId64 " calls, %" PRId64 " prompt + %" PRId64 " completion tokens\n", r.llm_calls,
             r.prompt_tokens, r.completion_tokens);
  print_safe(stdout, "steps:    %zu\n", record->steps.size());
  for (const auto& s : record->steps) {
    print_safe(stdout, "  %3d %-16s %-9s x%d %8.0f-%-8.0f ms  verification %s%s%s\n", s.step_id, s.action.c_str(),
               s.status.c_str(), s.attempts, s.started_ms, s.finished_ms, s.verification.c_str(),
               s.error.empty() ? "" : "  ", s.error.c_str());
  }
  boost::system::error_code ec;
  auto result = json::parse(record->result_json, ec);
  if (!ec && result.is_object()) {
    if (const auto* answer = result.get_object().if_contains("answer"); answer && answer->is_string() &&
                                                                         !answer->get_string().empty())
      print_safe(stdout, "answer:\n%s\n", answer->get_string().c_str());
  }
  return 0;
}

}  // namespace

int runs_command(const Options& options) {
  const bool list = options.args.size() == 1 && options.args[0] == "list";
  const bool show = options.args.size() == 2 && options.args[0] == "show";
  if (!list && !show) {
    print_safe(stderr, "dagent: runs takes `list` or `show ID`\n");
    return 2;
  }
  auto runtime = load_runtime(options);
  if (!runtime) return 2;
  const auto& cfg = runtime::config_of(*runtime);
  const auto path = history::database_path(cfg.history.path, cfg.base_dir);
  if (path.empty()) {
    print_safe(stderr, "dagent: history: no state folder (neither XDG_STATE_HOME nor HOME is set); set history.path\n");
    return 2;
  }
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {  // nothing recorded yet; not created by a query
    if (list && options.json) std::printf("[]\n");
    print_safe(stderr, "dagent: no run history yet (%s does not exist)\n", path.c_str());
    return list ? 0 : 2;
  }
  auto store = history::HistoryStore::open(path);
  if (!store) {
    print_safe(stderr, "dagent: history: %s\n", store.error().message.c_str());
    return 1;
  }
  return list ? list_runs(*store, options) : show_run(*store, options.args[1], options);
}

}  // namespace dagent::cli
