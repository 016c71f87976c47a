#include "planner/planner.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "config/config.hpp"
#include "runtime/lazy_provider.hpp"
#include "support/process.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"
#include "support/test_tools.hpp"
#include "tools/registry.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using dagent::PlanningEvent;
using dagent::PlanningPhase;
using dagent::planner::Planner;
using dagent::planner::PlanningContext;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

// The recall seam filled with a real embedding request, so the server sees it beside the intent call.
class EmbeddingRecall final : public dagent::planner::Recall {
 public:
  explicit EmbeddingRecall(dagent::net::LlmProvider& llm) : llm_(llm) {}
  asio::awaitable<std::vector<std::string>> recall(std::string goal, int) override {
    dagent::net::EmbedRequest request;
    request.model = "text-embedding-3-small";
    request.inputs.push_back(std::move(goal));
    auto reply = co_await llm_.embed(std::move(request));
    co_return std::vector<std::string>{reply ? "remembered: the goal was embedded" : "no memory"};
  }

 private:
  dagent::net::LlmProvider& llm_;
};

struct Timeline {
  std::vector<PlanningEvent>* events;
  std::vector<std::string>* details;
  void operator()(const PlanningEvent& e) const {
    events->push_back(e);
    details->emplace_back(e.detail);
    events->back().detail = {};
  }
};

const PlanningEvent& find(const std::vector<PlanningEvent>& events, PlanningPhase phase, bool finished) {
  for (const auto& e : events)
    if (e.phase == phase && e.finished == finished) return e;
  FAIL("no such planning event");
  return events.front();
}

}  // namespace

TEST_CASE("intent analysis recall and catalog building overlap in time", "[planner]") {
  json::value script = json::parse(R"({"rules": [
    {"path": "/v1/chat/completions", "contains": "intent analyser", "latency_ms": 300,
     "reply": "{\"intent\": \"file work\", \"tools\": [\"read_file\"]}"},
    {"path": "/v1/embeddings", "latency_ms": 300}]})");
  TestServer server(TestServerOptions{.script = script});
  dagent::config::Config cfg;
  cfg.llm.base_url = server.base_url();
  asio::io_context io;
  dagent::runtime::LazyProvider llm(io.get_executor(), cfg);
  REQUIRE_FALSE(llm.prepare().has_value());
  auto registry = dagent::tools::make_builtin_registry(cfg.tools.enabled);
  Planner planner(llm, registry, cfg);
  EmbeddingRecall recall(llm);
  planner.set_recall(&recall);
  std::vector<PlanningEvent> events;
  std::vector<std::string> details;
  planner.on_event(Timeline{&events, &details}, std::chrono::steady_clock::now());

  auto prepared = dagent::test::run_on(io, planner.prepare("read the notes", {}));
  REQUIRE(prepared.has_value());
  CHECK(prepared->intent == "file work");
  CHECK(prepared->tools == std::vector<std::string>{"read_file"});
  CHECK(prepared->memories == std::vector<std::string>{"remembered: the goal was embedded"});
  // Both requests were in flight at once: the phase took one latency, not two.
  CHECK(server.stats().at("max_concurrent_requests").to_number<int>() >= 2);
  const auto& intent_start = find(events, PlanningPhase::intent, false);
  const auto& intent_end = find(events, PlanningPhase::intent, true);
  const auto& recall_end = find(events, PlanningPhase::recall, true);
  const auto& catalog_start = find(events, PlanningPhase::catalog, false);
  const auto& catalog_end = find(events, PlanningPhase::catalog, true);
  CHECK(intent_start.at_ms <= catalog_start.at_ms);
  CHECK(catalog_end.at_ms < intent_end.at_ms);  // the catalog was built while the intent call was out
  CHECK(intent_end.at_ms >= 300);
  CHECK(std::abs(intent_end.at_ms - recall_end.at_ms) < 250);
}

TEST_CASE("the tool catalog is cached until the registered tools change", "[planner]") {
  const bool cache = GENERATE(true, false);
  dagent::planner::ToolCatalog catalog(cache);
  auto registry = dagent::tools::make_builtin_registry({"read_file", "list_dir"});
  const auto first = catalog.entries(registry);
  REQUIRE(first.size() == 2);
  CHECK(first[1].name == "read_file");
  CHECK_THAT(first[1].full, Catch::Contains("\"path\""));
  catalog.entries(registry);
  CHECK(catalog.builds() == (cache ? 1 : 2));
  REQUIRE(registry.add(std::make_shared<dagent::test::EchoTool>()).has_value());
  CHECK(catalog.entries(registry).size() == 3);  // a new tool invalidates the cache
  CHECK(catalog.builds() == (cache ? 2 : 3));
  std::vector<std::string> only{"list_dir"};
  const auto narrowed = dagent::planner::ToolCatalog::full(catalog.entries(registry), only);
  CHECK_THAT(narrowed, Catch::StartsWith("- list_dir:"));
  CHECK(narrowed.find("read_file") == std::string::npos);
}

TEST_CASE("prompt templates come from files named in config and are read once when cached", "[planner]") {
  TempDir dir;
  dir.write("my-answer.txt", "SYSTEM {{goal}}\n@@user\nUSER {{results}} {{unknown}}");
  dagent::config::PromptFiles files;
  files.answer = "my-answer.txt";
  const bool cache = GENERATE(true, false);
  dagent::planner::PromptLibrary library(files, dir.path(), cache);
  const std::pair<std::string_view, std::string_view> vars[] = {{"goal", "G"}, {"results", "R"}};
  auto p = library.render(dagent::planner::PromptKind::answer, vars);
  REQUIRE(p.has_value());
  CHECK(p->system == "SYSTEM G");
  CHECK(p->user == "USER R {{unknown}}");
  dir.write("my-answer.txt", "CHANGED");
  auto again = library.render(dagent::planner::PromptKind::answer, vars);
  REQUIRE(again.has_value());
  CHECK(again->user == (cache ? "USER R {{unknown}}" : "CHANGED"));
  CHECK(library.file_reads() == (cache ? 1 : 2));
  // Built-in templates need no file.
  auto plan = library.text(dagent::planner::PromptKind::plan);
  REQUIRE(plan.has_value());
  CHECK_THAT(*plan, Catch::Contains("{{tools}}"));
  files.answer = "missing.txt";
  dagent::planner::PromptLibrary broken(files, dir.path(), cache);
  auto error = broken.text(dagent::planner::PromptKind::answer);
  REQUIRE_FALSE(error.has_value());
  CHECK_THAT(error.error(), Catch::Contains("planner.prompts.answer"));
}
