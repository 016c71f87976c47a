// `dagent ingest PATH...` and `dagent memory search QUERY [-k N]`.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <boost/json/serialize.hpp>

#include "cli/terminal_out.hpp"
#include "cli/commands.hpp"
#include "dagent/runtime.hpp"
#include "text/json_utf8.hpp"
#include "tools/memory_search_tool.hpp"

namespace dagent::cli {

namespace {

namespace json = boost::json;

// Ingest progress on stderr: a redrawn bar on a terminal, a line per tenth otherwise.
struct ProgressBar {
  bool terminal = false;
  bool quiet = false;
  std::size_t last_tenth = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

  void operator()(const IngestProgress& p) {
    if (quiet || p.chunks_total == 0) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double rate = s > 0 ? static_cast<double>(p.chunks_done) / s : 0;
    if (terminal) {
      constexpr int k_width = 30;
      const int filled = static_cast<int>(k_width * p.chunks_done / p.chunks_total);
      std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu chunks, %zu/%zu files, %.0f chunks/s ", filled,  // only numbers
                   "##############################", k_width - filled, "", p.chunks_done, p.chunks_total,
                   p.files_done, p.files_total, rate);
    } else {
      const std::size_t tenth = 10 * p.chunks_done / p.chunks_total;
      if (tenth == last_tenth && p.chunks_done != p.chunks_total) return;
      last_tenth = tenth;
      print_safe(stderr, "ingest: %zu chunks embedded (%zu/%zu files), %.0f chunks/s\n", p.chunks_done, p.files_done,
                   p.files_total, rate);
    }
    std::fflush(stderr);
  }
};

// Text on one line, at most `max` bytes (cut at a character boundary).
std::string one_line(std::string_view text, std::size_t max) {
  std::string out;
  for (char c : text) {
    if (out.size() >= max) break;
    out.push_back(c == '\n' || c == '\r' || c == '\t' ? ' ' : c);
  }
  if (out.size() < text.size()) {
    std::size_t cut = out.size();
    while (cut > 0 && (static_cast<unsigned char>(out[cut - 1]) & 0xC0) == 0x80) --cut;
    if (cut > 0 && (static_cast<unsigned char>(out[cut - 1]) & 0xC0) == 0xC0) --cut;  // a lead byte cut short
    out.resize(cut);
    out += "…";
  }
  return out;
}

// A stored (absolute) source path, relative to the current folder when it is inside it.
std::string shown_path(const std::string& source) {
  std::error_code ec;
  const auto relative = std::filesystem::path(source).lexically_relative(std::filesystem::current_path(ec));
  if (ec || relative.empty() || *relative.begin() == "..") return source;
  return relative.string();
}

json::object to_json(const IngestReport& r, double seconds) {
  json::array warnings;
  for (const auto& w : r.warnings) warnings.emplace_back(w);
  return json::object{{"files_seen", r.files_seen},           {"files_ingested", r.files_ingested},
                      {"files_unchanged", r.files_unchanged}, {"files_skipped", r.files_skipped},
                      {"chunks_added", r.chunks_added},       {"chunks_replaced", r.chunks_replaced},
                      {"seconds", seconds},                   {"warnings", std::move(warnings)}};
}

}  // namespace

int ingest_command(const Options& options) {
  if (options.args.empty()) {
    print_safe(stderr, "dagent: ingest takes one or more files or folders\n");
    return 2;
  }
  auto runtime = load_runtime(options);
  if (!runtime) return 2;
  std::vector<std::filesystem::path> paths(options.args.begin(), options.args.end());
  ProgressBar bar;
  bar.terminal = ::isatty(STDERR_FILENO) == 1;
  bar.quiet = options.verbosity < 0;
  const auto start = std::chrono::steady_clock::now();
  auto outcome = runtime->ingest(paths, bar);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (bar.terminal && !bar.quiet) std::fputc('\n', stderr);
  const auto& r = outcome.ingest;
  for (const auto& w : r.warnings) print_safe(stderr, "dagent: %s\n", w.c_str());
  if (!outcome.error.empty()) {
    print_safe(stderr, "dagent: ingest failed: %s\n", outcome.error.c_str());
    return outcome.exit_code;
  }
  if (options.verbosity >= 0) {
    print_safe(stderr,
                 "ingested %zu file%s (%zu chunks added, %zu replaced), %zu unchanged, %zu skipped, in %.2f s\n",
                 r.files_ingested, r.files_ingested == 1 ? "" : "s", r.chunks_added, r.chunks_replaced,
                 r.files_unchanged, r.files_skipped, seconds);
  }
  if (options.json) std::printf("%s\n", json_for_terminal(text::serialize_valid(to_json(r, seconds))).c_str());
  return 0;
}

int memory_command(const Options& options) {
  if (options.args.size() != 2 || options.args[0] != "search") {
    print_safe(stderr, "dagent: usage: dagent memory search QUERY [-k N] [--json]\n");
    return 2;
  }
  auto runtime = load_runtime(options);
  if (!runtime) return 2;
  auto outcome = runtime->search_memory(options.args[1], options.k);
  if (!outcome.error.empty()) {
    print_safe(stderr, "dagent: memory search failed: %s\n", outcome.error.c_str());
    return outcome.exit_code;
  }
  if (options.json) {
    json::array hits;
    for (const auto& hit : outcome.hits) hits.push_back(tools::to_json(hit));
    std::printf("%s\n", json_for_terminal(text::serialize_valid(json::object{{"query", options.args[1]}, {"hits", std::move(hits)}})).c_str());
    return 0;
  }
  if (outcome.hits.empty()) print_safe(stderr, "no memories match (the memory is empty)\n");
  int rank = 0;
  for (const auto& hit : outcome.hits) {
    std::string where = hit.source.empty() ? "memory #" + std::to_string(hit.id)
                                           : shown_path(hit.source) + ":" + std::to_string(hit.begin) + "-" +
                                                 std::to_string(hit.end);
    print_safe(stdout, "%2d. %.3f  %s\n    %s\n", ++rank, hit.score, where.c_str(), one_line(hit.text, 240).c_str());
  }
  return 0;
}

}  // namespace dagent::cli
