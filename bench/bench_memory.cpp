// Memory search latency (bench/README.md, "Memory"): MemoryIndex::search against the raw FAISS
// call on an identical index (same vectors, same parameters), query by query, interleaved and in
// alternating order so both see the same cache and clock state.
// Usage: bench_memory [N...] (default 10000 100000); env DIMS ("384 1536"), KINDS ("flat hnsw"),
// QUERIES (300), K (10), RAW_PARAMS (0), RAW_OMP (1 | default). Prints one Markdown table row per configuration.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <omp.h>

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>

#include "memory/memory_index.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using dagent::config::IndexKind;

std::vector<std::string> words(const char* env, const char* fallback) {
  std::istringstream in(std::getenv(env) ? std::getenv(env) : fallback);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

std::vector<float> random_unit_vectors(std::size_t n, std::size_t d, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> v(n * d);
  for (std::size_t i = 0; i < n; ++i) {
    float norm = 0;
    for (std::size_t j = 0; j < d; ++j) norm += (v[i * d + j] = g(rng)) * v[i * d + j];
    norm = std::sqrt(norm);
    for (std::size_t j = 0; j < d; ++j) v[i * d + j] /= norm;
  }
  return v;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

double us_since(Clock::time_point t) { return std::chrono::duration<double, std::micro>(Clock::now() - t).count(); }

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::strtoul(argv[i], nullptr, 10));
  if (sizes.empty()) sizes = {10000, 100000};
  const int queries = env_int("QUERIES", 300);
  const int k = env_int("K", 10);
  const dagent::memory::IndexOptions defaults;

  std::printf("| vectors | dim | index | build s | raw p50 µs | ours p50 µs | raw p99 µs | ours p99 µs | overhead p50 | overhead p99 | top-1 agree |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& kind_name : words("KINDS", "flat hnsw")) {
    const IndexKind kind = kind_name == "hnsw" ? IndexKind::hnsw : IndexKind::flat;
    for (const auto& dim_name : words("DIMS", "384 1536")) {
      const std::size_t d = std::stoul(dim_name);
      for (const auto n : sizes) {
        const auto data = random_unit_vectors(n, d, 42);
        const auto qs = random_unit_vectors(static_cast<std::size_t>(queries), d, 7);

        const auto build_start = Clock::now();
        std::unique_ptr<faiss::Index> raw;
        if (kind == IndexKind::flat) {
          raw = std::make_unique<faiss::IndexFlatIP>(static_cast<faiss::Index::idx_t>(d));
        } else {
          auto hnsw = std::make_unique<faiss::IndexHNSWFlat>(static_cast<int>(d), defaults.hnsw_m, faiss::METRIC_INNER_PRODUCT);
          hnsw->hnsw.efConstruction = defaults.hnsw_ef_construction;
          hnsw->hnsw.efSearch = std::max(defaults.hnsw_ef_search, k);
          raw = std::move(hnsw);
        }
        raw->add(static_cast<faiss::Index::idx_t>(n), data.data());
        const double raw_build = us_since(build_start) / 1e6;

        // Ours, in a folder that is never saved to.
        const auto folder = std::filesystem::temp_directory_path() / "dagent-bench-memory-unsaved";
        dagent::memory::IndexOptions options;
        options.kind = kind;
        auto opened = dagent::memory::MemoryIndex::open(folder, options);
        if (!opened) {
          std::fprintf(stderr, "open: %s\n", opened.error().message.c_str());
          return 1;
        }
        auto ours = std::move(*opened);
        std::vector<dagent::memory::Entry> entries(n);
        for (std::size_t i = 0; i < n; ++i) entries[i].text = "entry " + std::to_string(i);
        const auto ours_start = Clock::now();
        auto added = ours->add(data, d, std::move(entries));
        const double ours_build = us_since(ours_start) / 1e6;
        if (!added) {
          std::fprintf(stderr, "add: %s\n", added.error().message.c_str());
          return 1;
        }

        // RAW_PARAMS=1: the raw call passes SearchParametersHNSW as MemoryIndex does.
        std::optional<faiss::SearchParametersHNSW> hnsw_params;
        if (kind == IndexKind::hnsw && env_int("RAW_PARAMS", 0)) {
          hnsw_params.emplace();
          hnsw_params->efSearch = std::max(defaults.hnsw_ef_search, k);
        }
        // RAW_OMP=default: the raw call keeps FAISS's OpenMP team (MemoryIndex searches on one thread).
        const bool raw_single_thread = std::string(std::getenv("RAW_OMP") ? std::getenv("RAW_OMP") : "1") != "default";
        std::vector<double> raw_us, ours_us;
        std::vector<float> distances(static_cast<std::size_t>(k));
        std::vector<faiss::Index::idx_t> labels(static_cast<std::size_t>(k));
        int agree = 0;
        for (int q = -5; q < queries; ++q) {  // 5 warm-up queries
          const float* query = qs.data() + static_cast<std::size_t>(std::max(q, 0)) * d;
          double r_us = 0, o_us = 0;
          std::int64_t ours_top = -1;
          auto run_raw = [&] {
            const int threads = omp_get_max_threads();
            if (raw_single_thread) omp_set_num_threads(1);  // what MemoryIndex::search does
            const auto t = Clock::now();
            if (hnsw_params) {
              raw->search(1, query, k, distances.data(), labels.data(), &*hnsw_params);
            } else {
              raw->search(1, query, k, distances.data(), labels.data());
            }
            r_us = us_since(t);
            omp_set_num_threads(threads);
          };
          auto run_ours = [&] {
            const auto t = Clock::now();
            auto hits = ours->search(std::span<const float>(query, d), k);
            o_us = us_since(t);
            if (hits && !hits->empty()) ours_top = hits->front().id;
          };
          if (q % 2 == 0) {
            run_raw();
            run_ours();
          } else {
            run_ours();
            run_raw();
          }
          if (q < 0) continue;
          raw_us.push_back(r_us);
          ours_us.push_back(o_us);
          agree += ours_top == labels[0];
        }
        const double r50 = percentile(raw_us, 0.5), o50 = percentile(ours_us, 0.5);
        const double r99 = percentile(raw_us, 0.99), o99 = percentile(ours_us, 0.99);
        std::printf("| %zu | %zu | %s | %.1f / %.1f | %.1f | %.1f | %.1f | %.1f | %+.1f %% | %+.1f %% | %d/%d |\n", n, d,
                    kind_name.c_str(), raw_build, ours_build, r50, o50, r99, o99, 100 * (o50 / r50 - 1),
                    100 * (o99 / r99 - 1), agree, queries);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
