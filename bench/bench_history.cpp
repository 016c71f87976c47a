// The run history's query times with many runs stored (issue 17: each query under 100 ms with
// 100 000 runs of 20 steps). Fills a fresh database through HistoryStore::record (batches of
// runs, one transaction each, prepared statements), then times each query `--repeat` times.
// Prints a `json {…}` line and a Markdown table.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "history/history_store.hpp"

namespace {

using namespace dagent::history;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Args {
  std::filesystem::path path = "/tmp/dagent_bench_history.db";
  int runs = 100000;
  int steps = 20;
  int repeat = 20;
  int batch = 2000;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const char* v = argv[i + 1];
    if (flag == "--db") a.path = v;
    else if (flag == "--runs") a.runs = std::atoi(v);
    else if (flag == "--steps") a.steps = std::atoi(v);
    else if (flag == "--repeat") a.repeat = std::atoi(v);
    else if (flag == "--batch") a.batch = std::atoi(v);
    else {
      std::fprintf(stderr, "usage: bench_history [--db FILE] [--runs N] [--steps N] [--repeat N] [--batch N]\n");
      std::exit(2);
    }
  }
  return a;
}

// Run i of the synthetic history: 100 tasks, 1 in 10 failed, started over the last 60 days.
RunRecord synthetic_run(int i, int steps, std::int64_t now_ms, std::mt19937_64& rng) {
  RunRecord r;
  char id[32];
  std::snprintf(id, sizeof id, "run-%010d", i);
  r.run.run_id = id;
  r.run.task = "task-" + std::to_string(i % 100);
  r.run.goal = "Summarize the reports of batch " + std::to_string(i) + " and write the findings to a file";
  r.run.status = rng() % 10 == 0 ? "failed" : "succeeded";
  r.run.error = r.run.status == "failed" ? "step 7 failed" : "";
  r.run.started_at_ms = now_ms - static_cast<std::int64_t>(rng() % (60ull * 86'400'000));
  r.run.ended_at_ms = r.run.started_at_ms + 2000 + static_cast<std::int64_t>(rng() % 30000);
  r.run.prompt_tokens = 1000 + static_cast<std::int64_t>(rng() % 9000);
  r.run.completion_tokens = 100 + static_cast<std::int64_t>(rng() % 900);
  r.run.llm_calls = 2 + static_cast<std::int64_t>(rng() % 10);
  std::string steps_json;
  for (int s = 1; s <= steps; ++s) {
    const char* action = s % 3 == 0 ? "llm" : s % 3 == 1 ? "read_file" : "write_file";
    r.steps.push_back(StepRow{s, action, "succeeded", 1, s * 100.0, s * 100.0 + 80, s % 3 == 0 ? "passed" : "not_requested", ""});
    steps_json += std::string(s > 1 ? "," : "") + R"({"id":)" + std::to_string(s) + R"(,"action":")" + action +
                  R"(","status":"succeeded","attempts":1,"output":{"text":"a short output of the step"}})";
  }
  r.result_json = R"({"run_id":")" + r.run.run_id + R"(","task":")" + r.run.task + R"(","status":")" + r.run.status +
                  R"(","steps":[)" + steps_json + R"(],"answer":"The findings were written to findings.md."})";
  return r;
}

struct Timing {
  std::string name;
  double median = 0, max = 0, first = 0;
  std::size_t rows = 0;
};

template <class Query>
Timing time_query(std::string name, int repeat, Query query) {
  Timing t{std::move(name)};
  std::vector<double> samples;
  for (int i = 0; i < repeat; ++i) {
    const auto start = Clock::now();
    t.rows = query(i);
    samples.push_back(ms_since(start));
  }
  t.first = samples.front();
  std::sort(samples.begin(), samples.end());
  t.median = samples[samples.size() / 2];
  t.max = samples.back();
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(args.path.string() + suffix);
  auto store = HistoryStore::open(args.path);
  if (!store) {
    std::fprintf(stderr, "bench_history: %s\n", store.error().message.c_str());
    return 1;
  }
  using namespace std::chrono;
  const auto now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  std::mt19937_64 rng(1);

  const auto fill_start = Clock::now();
  std::vector<RunRecord> batch;
  for (int i = 0; i < args.runs; ++i) {
    batch.push_back(synthetic_run(i, args.steps, now, rng));
    if (static_cast<int>(batch.size()) == args.batch || i + 1 == args.runs) {
      if (auto written = store->record(batch); !written) {
        std::fprintf(stderr, "bench_history: %s\n", written.error().message.c_str());
        return 1;
      }
      batch.clear();
    }
  }
  const double fill_ms = ms_since(fill_start);
  const auto db_bytes = std::filesystem::file_size(args.path) + std::filesystem::file_size(args.path.string() + "-wal");

  // Queries on a fresh connection, as `dagent runs` makes one.
  store = HistoryStore::open(args.path);
  if (!store) return 1;
  std::vector<Timing> timings;
  auto list = [&](RunFilter filter) {
    return [&store, filter](int) {
      auto rows = store->list(filter);
      return rows ? rows->size() : 0;
    };
  };
  timings.push_back(time_query("list (limit 50)", args.repeat, list({})));
  timings.push_back(time_query("list --status failed", args.repeat, list({.status = "failed"})));
  timings.push_back(time_query("list --task task-42", args.repeat, list({.task = "task-42"})));
  timings.push_back(time_query("list --since 1d", args.repeat, list({.since_ms = now - 86'400'000})));
  timings.push_back(time_query("list --status failed --task task-42 --since 7d", args.repeat,
                               list({.status = "failed", .task = "task-42", .since_ms = now - 7 * 86'400'000LL})));
  timings.push_back(time_query("list --since 30d --limit 1000", args.repeat,
                               list({.since_ms = now - 30 * 86'400'000LL, .limit = 1000})));
  timings.push_back(time_query("show ID", args.repeat, [&](int i) -> std::size_t {
    char id[32];
    std::snprintf(id, sizeof id, "run-%010d", static_cast<int>((static_cast<std::uint64_t>(i) * 7919u) % args.runs));
    auto r = store->show(id);
    return r ? r->steps.size() : 0;
  }));

  std::printf("json {\"runs\":%d,\"steps\":%d,\"fill_ms\":%.0f,\"db_bytes\":%ju", args.runs, args.steps, fill_ms,
              static_cast<std::uintmax_t>(db_bytes));
  for (const auto& t : timings)
    std::printf(",\"%s\":{\"median_ms\":%.3f,\"max_ms\":%.3f,\"first_ms\":%.3f,\"rows\":%zu}", t.name.c_str(), t.median,
                t.max, t.first, t.rows);
  std::printf("}\n\n");
  std::printf("%d runs × %d steps stored in %.1f s (%.0f runs/s), %.0f MB\n\n", args.runs, args.steps, fill_ms / 1000,
              args.runs / (fill_ms / 1000), static_cast<double>(db_bytes) / 1e6);
  std::printf("| query | rows | first (ms) | median (ms) | max (ms) |\n|---|---:|---:|---:|---:|\n");
  for (const auto& t : timings)
    std::printf("| `%s` | %zu | %.2f | %.2f | %.2f |\n", t.name.c_str(), t.rows, t.first, t.median, t.max);
  return 0;
}
