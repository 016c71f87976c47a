// LLM DAG benchmark helper for bench/run_net.sh: a seeded random DAG of `llm` steps, each with
// its own server-side latency, run through the `dagent` CLI against the scripted test server.
//
//   llm_dag gen --dir D [--steps 200] [--seed 1] [--min-latency 20] [--max-latency 80]
//       writes D/plan.json (the steps), D/task.yaml (workspace: ., plan: plan.json),
//       D/script.json (one server rule per step: contains "[step K]", latency_ms, reply) and
//       D/latency.json (the latency of every step).
//   llm_dag analyze --dir D --result RESULT.json
//       reads the run's JSON (dagent run --json) and prints the makespan, the weighted critical
//       path and where the makespan goes, as a JSON line (prefixed "json ") and a human line.
//
// The DAG: step i (id i+1) depends on 0-3 distinct steps among the previous W = 4·sqrt(N)
// (0 with 10 % probability, else 1, 2 or 3 equally likely), as in bench_scheduler. Each
// dependency is written either as an explicit `dependencies` entry or as a reference
// "$stepN.text" inside the prompt, chosen evenly. Every prompt starts with the step's unique
// marker "[step K]"; the scripted replies contain no marker, so a prompt that embeds an earlier
// reply still matches only its own rule.

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "net_bench_common.hpp"

namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using dagent::bench::Args;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

int gen(const Args& args) {
  const fs::path dir = args.str("dir", "");
  const int n = static_cast<int>(args.integer("steps", 200));
  const auto seed = static_cast<std::uint64_t>(args.integer("seed", 1));
  const int min_ms = static_cast<int>(args.integer("min-latency", 20));
  const int max_ms = static_cast<int>(args.integer("max-latency", 80));
  if (dir.empty() || n < 1) throw std::runtime_error("gen needs --dir and --steps >= 1");
  fs::create_directories(dir);

  std::mt19937_64 rng(seed);
  const int window = std::max(1, static_cast<int>(4 * std::sqrt(static_cast<double>(n))));
  std::uniform_int_distribution<int> latency(min_ms, max_ms);
  json::array steps, rules;
  json::object latencies;
  for (int i = 0; i < n; ++i) {
    const int id = i + 1;
    int deps = 0;
    if (i > 0 && std::uniform_real_distribution<double>(0, 1)(rng) >= 0.1)
      deps = std::uniform_int_distribution<int>(1, 3)(rng);
    std::set<int> chosen;
    const int lo = std::max(0, i - window);
    for (int tries = 0; static_cast<int>(chosen.size()) < std::min(deps, i - lo) && tries < 100; ++tries)
      chosen.insert(std::uniform_int_distribution<int>(lo, i - 1)(rng) + 1);
    std::string prompt = "[step " + std::to_string(id) + "] Write one short sentence about topic " + std::to_string(id);
    json::array explicit_deps;
    for (int dep : chosen) {
      if (std::uniform_int_distribution<int>(0, 1)(rng) == 0) explicit_deps.push_back(dep);
      else prompt += ", building on: $step" + std::to_string(dep) + ".text";
    }
    prompt += ".";
    json::object step{{"id", id},
                      {"action", "llm"},
                      {"parameters", json::object{{"prompt", prompt}, {"max_tokens", 16}}},
                      {"dependencies", explicit_deps}};
    steps.push_back(std::move(step));
    const int ms = latency(rng);
    latencies[std::to_string(id)] = ms;
    rules.push_back(json::object{{"path", "/v1/chat/completions"},
                                 {"contains", "[step " + std::to_string(id) + "]"},
                                 {"latency_ms", ms},
                                 {"reply", "reply " + std::to_string(id)}});
  }
  write_text(dir / "plan.json", json::serialize(json::object{{"steps", steps}}) + "\n");
  write_text(dir / "task.yaml", "workspace: .\nplan: plan.json\n");
  write_text(dir / "script.json", json::serialize(json::object{{"rules", rules}}) + "\n");
  write_text(dir / "latency.json", json::serialize(latencies) + "\n");
  std::printf("wrote %d steps (seed %llu, window %d) to %s\n", n, static_cast<unsigned long long>(seed), window,
              dir.c_str());
  return 0;
}

// The dependencies of each step: explicit ones and "$stepN." references in its prompt.
std::map<int, std::vector<int>> dependencies_of(const json::array& steps) {
  std::map<int, std::vector<int>> deps;
  for (const auto& v : steps) {
    const auto& s = v.as_object();
    const int id = static_cast<int>(s.at("id").to_number<int>());
    auto& d = deps[id];
    for (const auto& dep : s.at("dependencies").as_array()) d.push_back(dep.to_number<int>());
    const std::string prompt(s.at("parameters").at("prompt").as_string());
    for (std::size_t at = prompt.find("$step"); at != std::string::npos; at = prompt.find("$step", at + 1)) {
      std::size_t end = at + 5;
      while (end < prompt.size() && std::isdigit(static_cast<unsigned char>(prompt[end]))) ++end;
      if (end > at + 5) d.push_back(std::stoi(prompt.substr(at + 5, end - at - 5)));
    }
    std::sort(d.begin(), d.end());
    d.erase(std::unique(d.begin(), d.end()), d.end());
  }
  return deps;
}

int analyze(const Args& args) {
  const fs::path dir = args.str("dir", "");
  const fs::path result_path = args.str("result", "");
  const auto plan = json::parse(read_text(dir / "plan.json"));
  const auto lat = json::parse(read_text(dir / "latency.json")).as_object();
  const auto result = json::parse(read_text(result_path)).as_object();
  const auto& plan_steps = plan.at("steps").as_array();
  const auto deps = dependencies_of(plan_steps);

  std::map<int, double> latency, started, finished;
  for (const auto& [key, v] : lat) latency[std::stoi(std::string(key))] = v.to_number<double>();
  int failed = 0;
  for (const auto& v : result.at("steps").as_array()) {
    const auto& s = v.as_object();
    const int id = s.at("id").to_number<int>();
    started[id] = s.at("started_ms").to_number<double>();
    finished[id] = s.at("finished_ms").to_number<double>();
    if (s.at("status").as_string() != "succeeded") ++failed;
  }

  // Weighted critical path (ids are in topological order: every dependency has a smaller id).
  std::map<int, double> longest;  // longest chain ending with the step, its latency included
  std::map<int, int> depth;
  double critical = 0;
  int levels = 0;
  for (const auto& [id, d] : deps) {
    double before = 0;
    int lvl = 0;
    for (int dep : d) {
      before = std::max(before, longest.at(dep));
      lvl = std::max(lvl, depth.at(dep));
    }
    longest[id] = before + latency.at(id);
    depth[id] = lvl + 1;
    critical = std::max(critical, longest[id]);
    levels = std::max(levels, depth[id]);
  }
  double makespan = 0;
  int last = 0;
  for (const auto& [id, t] : finished) {
    if (t > makespan) {
      makespan = t;
      last = id;
    }
  }

  // Where the makespan goes: the chain of latest-finishing dependencies ending at the last step.
  double chain_latency = 0, ready_delay = 0, overhead = 0;
  int chain_steps = 0;
  for (int id = last; id != 0;) {
    ++chain_steps;
    chain_latency += latency.at(id);
    overhead += finished.at(id) - started.at(id) - latency.at(id);
    int prev = 0;
    double prev_finish = 0;
    for (int dep : deps.at(id)) {
      if (finished.at(dep) >= prev_finish) {
        prev_finish = finished.at(dep);
        prev = dep;
      }
    }
    ready_delay += started.at(id) - prev_finish;  // from time 0 for the first step of the chain
    id = prev;
  }
  const auto& metrics = result.at("metrics").as_object();
  json::object out{{"steps", plan_steps.size()},
                   {"failed", failed},
                   {"levels", levels},
                   {"critical_path_ms", critical},
                   {"makespan_ms", makespan},
                   {"ratio", makespan / critical},
                   {"chain_steps", chain_steps},
                   {"chain_latency_ms", chain_latency},
                   {"ready_delay_ms", ready_delay},
                   {"step_overhead_ms", overhead},
                   {"mean_step_overhead_ms", chain_steps ? overhead / chain_steps : 0.0},
                   {"wall_ms", metrics.at("wall_ms")},
                   {"llm_calls", metrics.at("llm_calls")},
                   {"connections_opened", metrics.at("connections_opened")},
                   {"max_concurrent_steps", metrics.at("max_concurrent_steps")},
                   {"rate_limit_wait_ms", metrics.at("rate_limit_wait_ms")},
                   {"retries", metrics.at("retries")}};
  std::printf("json %s\n", json::serialize(out).c_str());
  std::printf("%zu llm steps (%d failed), %d levels: makespan %.1f ms, weighted critical path %.1f ms, ratio %.4f; "
              "final chain %d steps: latency %.1f + ready delay %.1f + step overhead %.1f ms\n",
              plan_steps.size(), failed, levels, makespan, critical, makespan / critical, chain_steps, chain_latency,
              ready_delay, overhead);
  return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) throw std::runtime_error("usage: llm_dag gen|analyze [--options]");
    const std::string command = argv[1];
    Args args(argc - 1, argv + 1);
    if (command == "gen") return gen(args);
    if (command == "analyze") return analyze(args);
    throw std::runtime_error("unknown command " + command);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llm_dag: %s\n", e.what());
    return 2;
  }
}
