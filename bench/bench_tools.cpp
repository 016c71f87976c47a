// bench_tools: the cost of the file tools' sandbox. Runs read_file, write_file, list_dir and
// search_files directly (no scheduler) in a workspace of FILES small files spread over 20
// folders, once with the kernel sandbox (openat2 beneath the workspace descriptor) and once with
// the userspace walk it falls back to on kernels without openat2 (the checks dagent made before
// the kernel sandbox). Prints microseconds per call for each.
// Usage: bench_tools [FILES (2000)] [REPEAT (5)]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <boost/json.hpp>

#include "dagent/workspace.hpp"
#include "tools/file_handle.hpp"
#include "tools/list_dir_tool.hpp"
#include "tools/read_file_tool.hpp"
#include "tools/search_files_tool.hpp"
#include "tools/write_file_tool.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

std::string name_of(int i) { return "d" + std::to_string(i % 20) + "/sub/f" + std::to_string(i) + ".txt"; }

template <class F>
double best_us_per_call(int repeat, int calls, F&& body) {
  double best = 1e300;
  for (int r = 0; r < repeat; ++r) {
    const auto t0 = Clock::now();
    body();
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / calls;
    if (us < best) best = us;
  }
  return best;
}

void must(const dagent::ToolResult& r) {
  if (!r) {
    std::fprintf(stderr, "tool failed: %s\n", r.error().message.c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int files = argc > 1 ? std::atoi(argv[1]) : 2000;
  const int repeat = argc > 2 ? std::atoi(argv[2]) : 5;
  const fs::path root = fs::temp_directory_path() / ("bench_tools." + std::to_string(::getpid()));
  fs::create_directories(root);
  for (int i = 0; i < files; ++i) {
    fs::create_directories((root / name_of(i)).parent_path());
    std::ofstream(root / name_of(i)) << "line one of file " << i << "\nthe needle is here\nlast line\n";
  }
  auto ws = dagent::Workspace::open(root);
  if (!ws) return 1;
  dagent::ToolContext ctx;
  ctx.workspace = &*ws;
  dagent::tools::ReadFileTool read;
  dagent::tools::WriteFileTool write;
  dagent::tools::ListDirTool list;
  dagent::tools::SearchFilesTool search;
  std::vector<json::object> reads, writes;
  for (int i = 0; i < files; ++i) {
    reads.push_back(json::object{{"path", name_of(i)}});
    writes.push_back(json::object{{"path", "out/" + name_of(i)}, {"content", "written\n"}});
  }
  const json::object list_all{{"path", "."}, {"recursive", true}};
  const json::object search_all{{"pattern", "**/*.txt"}, {"query", "needle"}, {"max_results", files * 2}};

  std::printf("| sandbox | read_file µs/call | write_file µs/call | list_dir (recursive, %d files) ms | search_files (%d files) ms |\n",
              files, files);
  std::printf("|---|---|---|---|---|\n");
  for (const bool fallback : {false, true}) {
    dagent::tools::force_workspace_fallback(fallback);
    const double r = best_us_per_call(repeat, files, [&] {
      for (const auto& p : reads) must(read.run(p, ctx));
    });
    const double w = best_us_per_call(repeat, files, [&] {
      for (const auto& p : writes) must(write.run(p, ctx));
    });
    const double l = best_us_per_call(repeat, 1, [&] { must(list.run(list_all, ctx)); }) / 1000;
    const double s = best_us_per_call(repeat, 1, [&] { must(search.run(search_all, ctx)); }) / 1000;
    std::printf("| %s | %.1f | %.1f | %.2f | %.2f |\n", fallback ? "userspace walk (fallback)" : "openat2 (kernel)", r, w, l, s);
  }
  dagent::tools::force_workspace_fallback(false);
  fs::remove_all(root);
  return 0;
}
