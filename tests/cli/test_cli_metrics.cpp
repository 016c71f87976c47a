// dagent run --metrics-file: the Prometheus exposition after the run, and what it says about it.

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "support/process.hpp"
#include "support/scripted_prompts.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace json = boost::json;
using dagent::test::read_text;
using dagent::test::run_process;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

// The samples of a text exposition (format 0.0.4) by `name{labels}`; a line that is not a HELP,
// a TYPE or a sample of a family announced by them fails the test.
std::map<std::string, double> parse_exposition(const std::string& text) {
  static const std::regex help(R"(# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*)");
  static const std::regex type(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram))");
  static const std::regex sample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\\\|\\"|\\n)*")*\})? ([-+0-9.eE]+|\+Inf|NaN))");
  std::map<std::string, double> out;
  std::set<std::string> helped;
  std::map<std::string, std::string> types;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    INFO(line);
    std::smatch m;
    if (std::regex_match(line, m, help)) {
      helped.insert(m[1]);
    } else if (std::regex_match(line, m, type)) {
      CHECK(helped.count(m[1]) == 1);
      types[m[1]] = m[2];
    } else {
      REQUIRE(std::regex_match(line, m, sample));
      std::string family = m[1];
      for (const char* suffix : {"_bucket", "_sum", "_count"})
        if (!types.count(family) && family.ends_with(suffix)) family.resize(family.size() - std::string(suffix).size());
      CHECK(types.count(family) == 1);
      CHECK(out.count(m[1].str() + m[2].str()) == 0);
      out[m[1].str() + m[2].str()] = std::stod(m[3]);
    }
  }
  return out;
}

const char* k_task = R"(workspace: .
plan:
  - {id: 1, action: llm, parameters: {prompt: "Same question"}}
  - {id: 2, action: llm, parameters: {prompt: "Same question"}, dependencies: [1]}
  - {id: 3, action: write_file, parameters: {path: out.txt, content: "$step2.text"}}
)";

}  // namespace

TEST_CASE("dagent run --metrics-file writes an exposition whose counters match the result JSON",
          "[cli][metrics]") {
  json::array rules{json::object{{"path", dagent::test::k_chat},
                                 {"nth", 1},
                                 {"status", 429},
                                 {"headers", json::object{{"retry-after-ms", "1"}}}}};
  TestServer server(TestServerOptions{.script = json::object{{"rules", rules}}});
  TempDir dir;
  dir.write("task.yaml", k_task);
  const std::vector<std::string> env{"OPENAI_BASE_URL=" + server.base_url(), "OPENAI_API_KEY=sk-test"};
  auto r = run_process({DAGENT_BINARY, "run", "task.yaml", "--json", "--metrics-file", "metrics.prom", "--set",
                        "performance.caching.llm_responses=true"},
                       dir.path(), env);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto m = json::parse(r.out).at("metrics").as_object();
  const auto text = read_text(dir.path() / "metrics.prom");
  auto x = parse_exposition(text);
  auto at = [&](const std::string& key) {
    INFO(key);
    REQUIRE(x.count(key) == 1);
    return x.at(key);
  };
  auto json_int = [&](const char* key) { return m.at(key).to_number<double>(); };
  CHECK(at("dagent_runs_total{status=\"succeeded\"}") == 1);
  CHECK(at("dagent_runs_total{status=\"failed\"}") == 0);
  CHECK(at("dagent_model_calls_total{endpoint=\"chat\"}") == json_int("llm_calls"));
  CHECK(json_int("llm_calls") == 1);
  CHECK(at("dagent_model_tokens_total{kind=\"prompt\"}") + at("dagent_model_tokens_total{kind=\"embedding\"}") ==
        json_int("prompt_tokens"));
  CHECK(at("dagent_model_tokens_total{kind=\"completion\"}") == json_int("completion_tokens"));
  CHECK(at("dagent_model_retries_total") + at("dagent_step_retries_total") == json_int("retries"));
  CHECK(at("dagent_model_retries_total") == 1);
  CHECK(at("dagent_model_rate_limited_total") == 1);
  CHECK(at("dagent_model_requests_total{endpoint=\"chat\",class=\"4xx\"}") == 1);
  CHECK(at("dagent_model_requests_total{endpoint=\"chat\",class=\"2xx\"}") == 1);
  CHECK(at("dagent_cache_hits_total{level=\"memory\"}") + at("dagent_cache_hits_total{level=\"redis\"}") ==
        json_int("cache_hits"));
  CHECK(json_int("cache_hits") == 1);
  CHECK(at("dagent_http_connections_opened_total{peer=\"model\"}") == json_int("connections_opened"));
  CHECK(at("dagent_step_duration_seconds_count{action=\"llm\",status=\"succeeded\"}") == 2);
  CHECK(at("dagent_step_duration_seconds_bucket{action=\"llm\",status=\"succeeded\",le=\"+Inf\"}") == 2);
  CHECK(at("dagent_step_duration_seconds_count{action=\"write_file\",status=\"succeeded\"}") == 1);
  CHECK(at("dagent_rate_limiter_wait_seconds_count") == 2);
  CHECK(at("dagent_runs_in_flight") == 0);
  // No temporary file is left beside it.
  std::set<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) files.insert(e.path().filename().string());
  CHECK(files == std::set<std::string>{"metrics.prom", "out.txt", "task.yaml"});

  SECTION("a metrics file that cannot be written fails the run, naming the path") {
    auto bad = run_process({DAGENT_BINARY, "run", "task.yaml", "--json", "--metrics-file", "no/such/metrics.prom"},
                           dir.path(), env);
    CHECK(bad.exit_code == 1);
    CHECK_THAT(bad.err, Catch::Contains("cannot write metrics file 'no/such/metrics.prom': No such file or directory"));
    const auto o = json::parse(bad.out).as_object();
    CHECK(o.at("status") == "failed");
    CHECK_THAT(std::string(o.at("error").as_string()), Catch::Contains("cannot write metrics file"));
    CHECK(o.at("steps").as_array()[2].at("status") == "succeeded");
  }
  SECTION("--metrics-file needs a file") {
    auto none = run_process({DAGENT_BINARY, "run", "task.yaml", "--metrics-file="}, dir.path(), env);
    CHECK(none.exit_code == 2);
    CHECK_THAT(none.err, Catch::Contains("dagent run: --metrics-file: 1 required FILE missing"));
  }
}
