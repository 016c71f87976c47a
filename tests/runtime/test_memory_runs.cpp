// The memory in goal runs, through the embedding API against the scripted server: background
// memory updates stored after the result is returned, and recall in the planning prompt.

#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "config/config.hpp"
#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"
#include "dagent/tool.hpp"
#include "support/process.hpp"
#include "support/test_server_process.hpp"
#include "support/scripted_prompts.hpp"

namespace {

namespace json = boost::json;
using dagent::test::k_answer;
using dagent::test::k_plan;
using dagent::test::rule;
using dagent::Runtime;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;


std::vector<std::string> plan_bodies(const TestServer& server) {
  std::vector<std::string> out;
  const auto stats = server.stats();
  for (const auto& r : stats.at("recent").as_array()) {
    std::string body(r.at("body").as_string());
    if (body.find(k_plan) != std::string::npos) out.push_back(std::move(body));
  }
  return out;
}

dagent::config::Config config_for(const TestServer& server, const TempDir& dir) {
  dagent::config::Config cfg;
  cfg.llm.base_url = server.base_url();
  cfg.base_dir = dir.path();
  cfg.tools.workspace = "ws";
  cfg.planner.intent_analysis = false;
  cfg.tasks["capital"] = dagent::config::Task{.name = "capital", .goal = "Find the capital of Zorblandia in notes.txt"};
  cfg.tasks["trip"] = dagent::config::Task{.name = "trip", .goal = "Plan a trip to the capital of Zorblandia"};
  return cfg;
}

json::object script() {
  const char* plan = R"({"steps": [{"id": 1, "action": "read_file", "parameters": {"path": "notes.txt"}},
      {"id": 2, "action": "llm", "parameters": {"prompt": "Which city is the capital? $step1.content"}}]})";
  return json::object{{"rules", json::array{rule(k_plan, plan), rule(k_answer, "The capital of Zorblandia is Quuxville.")}}};
}

}  // namespace

TEST_CASE("a goal run stores its answer after returning and the next plan recalls it", "[runtime][memory]") {
  TestServer server(TestServerOptions{.script = script()});
  TempDir dir;
  dir.write("ws/notes.txt", "Zorblandia: capital Quuxville, river Fnord.");
  auto cfg = config_for(server, dir);
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  auto first = runtime.run_task("capital");
  INFO((first.problems.empty() ? first.result.error : first.problems.front()));
  REQUIRE(first.exit_code() == 0);
  CHECK(first.result.answer == "The capital of Zorblandia is Quuxville.");
  // The result came back before anything was embedded: the update is pending, not awaited.
  CHECK(server.requests_to("/v1/embeddings") == 0);
  CHECK(runtime.finish_background().empty());
  CHECK(server.requests_to("/v1/embeddings") == 1);  // goal + answer and the llm step's text, in one batch

  auto found = runtime.search_memory("capital of Zorblandia", 5);
  REQUIRE(found.error.empty());
  REQUIRE(found.hits.size() == 2);
  bool run_entry = false, step_entry = false;
  for (const auto& hit : found.hits) {
    const auto kind = std::string(hit.metadata.at("kind").as_string());
    if (kind == "run") {
      run_entry = true;
      CHECK(hit.text.find("Answer: The capital of Zorblandia is Quuxville.") != std::string::npos);
      CHECK(hit.metadata.at("run_id") == first.result.run_id.c_str());
    } else if (kind == "step") {
      step_entry = true;
      CHECK(hit.metadata.at("step") == 2);
    }
  }
  CHECK(run_entry);
  CHECK(step_entry);

  // The next goal's planning prompt carries what the first run learned.
  auto second = runtime.run_task("trip");
  REQUIRE(second.exit_code() == 0);
  const auto plans = plan_bodies(server);
  REQUIRE(plans.size() == 2);
  CHECK(plans[0].find("Quuxville.") == std::string::npos);
  CHECK(plans[1].find("Answer: The capital of Zorblandia is Quuxville.") != std::string::npos);
}

TEST_CASE("memory updates and recall can be switched off", "[runtime][memory]") {
  TestServer server(TestServerOptions{.script = script()});
  TempDir dir;
  dir.write("ws/notes.txt", "Zorblandia: capital Quuxville.");
  auto cfg = config_for(server, dir);
  SECTION("background_tasks.memory_updates: false stores nothing") {
    cfg.performance.background_tasks.memory_updates = false;
    {
      Runtime runtime = dagent::runtime::make_runtime(cfg);
      REQUIRE(runtime.run_task("capital").exit_code() == 0);
    }  // the destructor would store pending updates
    CHECK(server.requests_to("/v1/embeddings") == 0);
    Runtime reopened = dagent::runtime::make_runtime(cfg);
    auto found = reopened.search_memory("capital of Zorblandia");
    REQUIRE(found.error.empty());
    CHECK(found.hits.empty());
  }
  SECTION("the destructor stores what is pending; memory.enabled: false opens nothing") {
    {
      Runtime runtime = dagent::runtime::make_runtime(cfg);
      REQUIRE(runtime.run_task("capital").exit_code() == 0);
    }
    CHECK(server.requests_to("/v1/embeddings") == 1);
    cfg.memory.enabled = false;
    Runtime off = dagent::runtime::make_runtime(cfg);
    REQUIRE(off.run_task("trip").exit_code() == 0);
    CHECK(server.requests_to("/v1/embeddings") == 1);  // no recall
    CHECK(plan_bodies(server).back().find("Quuxville.") == std::string::npos);
    CHECK_FALSE(off.search_memory("x").error.empty());
  }
}

TEST_CASE("memory recall runs beside the intent call in the planner's parallel phase", "[runtime][memory][planner]") {
  json::array rules = script().at("rules").as_array();
  // Each reply waits until the other request has arrived: if they were sent one after the
  // other, the first would get the server's 500 for a hold not met within 20 s.
  rules.push_back(json::object{{"path", "/v1/chat/completions"}, {"contains", "intent analyser"},
                               {"hold_until", json::object{{"path", "/v1/embeddings"}}},
                               {"reply", R"({"intent": "trip planning", "tools": []})"}});
  rules.push_back(json::object{{"path", "/v1/embeddings"},
                               {"hold_until", json::object{{"contains", "intent analyser"}}}});
  TestServer server(TestServerOptions{.script = script()});  // the holds only once the notes are ingested
  TempDir dir;
  dir.write("ws/notes.txt", "Zorblandia: capital Quuxville.");
  auto cfg = config_for(server, dir);
  cfg.planner.intent_analysis = true;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  dir.write("notes/zorblandia.md", "Zorblandia's capital Quuxville lies on the river Fnord.");
  REQUIRE(runtime.ingest({dir.path() / "notes"}).error.empty());
  server.reset();
  server.set_script(json::object{{"rules", rules}});

  std::vector<dagent::PlanningEvent> events;
  dagent::RunOptions options;
  options.on_planning = [&events](const dagent::PlanningEvent& e) { events.push_back(e); };
  auto outcome = runtime.run_task("trip", options);
  REQUIRE(outcome.exit_code() == 0);
  // The intent call and the recall's embedding request were at the server at the same time.
  CHECK(server.stats().at("max_concurrent_requests").to_number<int>() >= 2);
  // In the planner's own timeline too: each phase started before the other finished.
  auto index_of = [&events](dagent::PlanningPhase phase, bool finished) {
    for (std::size_t i = 0; i < events.size(); ++i)
      if (events[i].phase == phase && events[i].finished == finished) return i;
    return events.size();
  };
  using dagent::PlanningPhase;
  REQUIRE(index_of(PlanningPhase::intent, true) < events.size());
  REQUIRE(index_of(PlanningPhase::recall, true) < events.size());
  CHECK(index_of(PlanningPhase::intent, false) < index_of(PlanningPhase::recall, true));
  CHECK(index_of(PlanningPhase::recall, false) < index_of(PlanningPhase::intent, true));
  const auto plans = plan_bodies(server);
  REQUIRE(plans.size() == 1);
  CHECK(plans[0].find("river Fnord") != std::string::npos);
}

namespace {

// `{"d": {"d": ... "bottom"}}` with `depth` objects.
json::value nested(int depth) {
  json::value v = "bottom";
  for (int i = 0; i < depth; ++i) v = json::object{{"d", std::move(v)}};
  return v;
}

json::value add_plan(std::string text, json::value metadata) {
  return json::array{json::object{{"id", 1},
                                  {"action", "memory_add"},
                                  {"parameters", json::object{{"text", std::move(text)}, {"metadata", std::move(metadata)}}}}};
}

}  // namespace

// Issue 12: memory_add saved metadata nested 32 levels deep, and every later open failed with
// "metadata line 2 is not JSON: too deep": one entry made the whole index unreadable.
TEST_CASE("memory_add refuses what the index could not read back and reads back what it accepts", "[runtime][memory]") {
  TestServer server;
  TempDir dir;
  auto cfg = config_for(server, dir);
  cfg.performance.background_tasks.memory_updates = false;
  std::filesystem::create_directories(dir.path() / "ws");
  {
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto refused = dagent::runtime::run_plan(runtime, add_plan("a deeply nested note", nested(65)), {}, dir.path() / "ws");
    INFO((refused.problems.empty() ? std::string() : refused.problems.front()));
    REQUIRE(refused.problems.empty());
    CHECK(refused.exit_code() == 1);
    REQUIRE(refused.result.steps.size() == 1);
    const auto& step = refused.result.steps[0];
    CHECK(step.status == dagent::StepStatus::failed);
    CHECK(step.error_code == dagent::ToolErrc::invalid_parameters);
    CHECK_THAT(step.error, Catch::Contains("metadata") && Catch::Contains("64"));
  }
  // Refused before anything was stored: the index still opens and holds nothing of it.
  {
    Runtime reopened = dagent::runtime::make_runtime(cfg);
    auto found = reopened.search_memory("a deeply nested note", 5);
    INFO(found.error);
    CHECK(found.error.empty());
    CHECK(found.hits.empty());
  }

  // At the limit, and the other values JSON can carry: all read back as they were given.
  json::value inner = json::array{1, 2};
  for (int i = 0; i < 62; ++i) inner = json::array{std::move(inner)};
  json::object metadata{{"deep", nested(63)},
                        {"arrays", std::move(inner)},
                        {"unicode \u00e9\u4e2d\U0001f600", "\"quoted\" \\ line\nbreak\ttab \x01 control"},
                        {"numbers", json::array{0, -1, INT64_MIN, INT64_MAX, UINT64_MAX, 0.1, -2.5e-300, 1e300, -0.0}},
                        {"empty", json::object{}},
                        {"none", json::array{}},
                        {"flags", json::array{true, false, nullptr}},
                        {"long", std::string(100000, 'x')}};
  std::int64_t id = -1;
  {
    Runtime runtime = dagent::runtime::make_runtime(cfg);
    auto accepted = runtime.run_plan(add_plan("a note at the nesting limit", metadata), {}, dir.path() / "ws");
    INFO((accepted.problems.empty() ? accepted.result.error : accepted.problems.front()));
    REQUIRE(accepted.exit_code() == 0);
    id = accepted.result.steps[0].output.at("id").to_number<std::int64_t>();
  }
  Runtime reopened = dagent::runtime::make_runtime(cfg);
  auto found = reopened.search_memory("a note at the nesting limit", 1);
  INFO(found.error);
  REQUIRE(found.error.empty());
  REQUIRE(found.hits.size() == 1);
  CHECK(found.hits[0].id == id);
  CHECK(found.hits[0].text == "a note at the nesting limit");
  CHECK(found.hits[0].metadata == metadata);
}
