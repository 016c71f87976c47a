#include "planner/planner.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "config/config.hpp"
#include "net/net_error.hpp"
#include "runtime/lazy_provider.hpp"
#include "support/process.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"
#include "support/test_tools.hpp"
#include "tools/registry.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using dagent::planner::PlanningEvent;
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
     "hold_until": {"path": "/v1/embeddings"},
     "reply": "{\"intent\": \"file work\", \"tools\": [\"read_file\"]}"},
    {"path": "/v1/embeddings", "hold_until": {"contains": "intent analyser"}}]})");
  TestServer server(TestServerOptions{.script = script});
  dagent::config::Config cfg;
  cfg.llm.base_url = server.base_url();
  cfg.planner.intent_mode = dagent::config::IntentMode::sequential;  // prepare() runs the intent call
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
  // Both requests were in flight at once.
  CHECK(server.stats().at("max_concurrent_requests").to_number<int>() >= 2);
  const auto& intent_start = find(events, PlanningPhase::intent, false);
  const auto& intent_end = find(events, PlanningPhase::intent, true);
  const auto& recall_end = find(events, PlanningPhase::recall, true);
  const auto& catalog_start = find(events, PlanningPhase::catalog, false);
  const auto& catalog_end = find(events, PlanningPhase::catalog, true);
  CHECK(intent_start.at_ms <= catalog_start.at_ms);
  CHECK(catalog_end.at_ms < intent_end.at_ms);  // the catalog was built while the intent call was out
  // Each reply was held until the other request arrived: the phases overlap.
  const auto& recall_start = find(events, PlanningPhase::recall, false);
  CHECK(intent_start.at_ms <= recall_end.at_ms);
  CHECK(recall_start.at_ms <= intent_end.at_ms);
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

namespace {

using dagent::runtime::LazyProvider;

// A planner talking plain text (no structured output, no intent call) to the scripted server.
struct PlannerRig {
  explicit PlannerRig(const json::value& script, void (*adjust)(dagent::config::Config&) = nullptr)
      : server(TestServerOptions{.script = script}), cfg(config_for(server, adjust)), llm(io.get_executor(), cfg) {
    REQUIRE_FALSE(llm.prepare().has_value());
  }

  static dagent::config::Config config_for(const TestServer& server, void (*adjust)(dagent::config::Config&)) {
    dagent::config::Config cfg;
    cfg.llm.base_url = server.base_url();
    cfg.llm.structured_output = false;
    cfg.planner.intent_analysis = false;
    if (adjust) adjust(cfg);
    return cfg;
  }

  PlanningContext context() {
    auto ctx = dagent::test::run_on(io, planner.prepare("list the folder and read a file", {}));
    REQUIRE(ctx.has_value());
    return std::move(*ctx);
  }

  std::int64_t chat_requests() const { return server.requests_to("/v1/chat/completions"); }

  TestServer server;
  dagent::config::Config cfg;
  asio::io_context io;
  LazyProvider llm;
  dagent::tools::Registry registry = dagent::tools::make_builtin_registry({"read_file", "list_dir"});
  Planner planner{llm, registry, cfg};
};

json::value one_rule(json::object rule) {
  rule["path"] = "/v1/chat/completions";
  return json::object{{"rules", json::array{std::move(rule)}}};
}

struct StepCollector {
  std::vector<json::object>* out;
  void operator()(json::object step) const { out->push_back(std::move(step)); }
};

std::string problems_of(const dagent::planner::PlanDraft& draft) {
  std::string out;
  for (const auto& p : draft.problems) out += p + "\n";
  return out;
}

constexpr std::string_view k_valid_plan =
    R"({"steps": [{"id": 1, "action": "list_dir", "parameters": {"path": "."}}]})";

}  // namespace

TEST_CASE("Planner regression: a streamed plan after prose with a bracket (Plan [v2]: {...}) streams exactly the "
          "plan's steps",
          "[planner]") {
  const bool stream = GENERATE(true, false);
  PlannerRig rig(one_rule({{"stream_chunks",
                            json::array{R"(Plan [v2]: {"steps": [{"id": 1, "action": "list_dir", "parameters": {"path": "."}})",
                                        R"(, {"id": 2, "action": "read_file", "parameters": {"path": "a [1].txt"}, )",
                                        R"("dependencies": [1]}]})", "\n[done] {ok}"}}}));
  auto ctx = rig.context();
  std::vector<json::object> streamed;
  dagent::planner::StepSink sink;
  if (stream) sink = StepCollector{&streamed};
  auto draft = dagent::test::run_on(rig.io, rig.planner.draft(ctx, sink));
  INFO(problems_of(draft));
  REQUIRE(draft.ok());
  REQUIRE(draft.steps.size() == 2);
  CHECK(draft.steps[1].at("parameters").at("path") == "a [1].txt");
  if (stream) {
    REQUIRE(streamed.size() == 2);
    CHECK(streamed[0] == draft.steps[0].as_object());
    CHECK(streamed[1] == draft.steps[1].as_object());
  }
}

TEST_CASE("Planner: planner.planning_timeout_ms ends a stalled planning call with an error", "[planner]") {
  const bool stream = GENERATE(false, true);
  PlannerRig rig(one_rule({{"fault", "stall"}}), [](dagent::config::Config& c) { c.planner.planning_timeout_ms = 300; });
  auto ctx = rig.context();
  std::vector<json::object> streamed;
  dagent::planner::StepSink sink;
  if (stream) sink = StepCollector{&streamed};
  auto draft = dagent::test::run_on(rig.io, rig.planner.draft(ctx, sink));
  REQUIRE_FALSE(draft.ok());
  REQUIRE(draft.error.has_value());
  CHECK(draft.error->message == "planning timed out after 300 ms");
  CHECK(draft.error->code == dagent::net::make_error_code(dagent::net::NetErrc::request_timeout));
  CHECK_THAT(problems_of(draft), Catch::Contains("planning timed out after 300 ms"));
  CHECK(streamed.empty());
}

TEST_CASE("Planner: the intent, plan and repair calls of one planning share planner.planning_timeout_ms",
          "[planner]") {
  PlannerRig rig(one_rule({{"fault", "stall"}}), [](dagent::config::Config& c) {
    c.planner.intent_analysis = true;
    c.planner.intent_mode = dagent::config::IntentMode::sequential;
    c.planner.planning_timeout_ms = 300;
  });
  // The intent call stalls until the deadline (not fatal: planning goes on with every tool)...
  auto ctx = rig.context();
  CHECK(rig.chat_requests() == 1);
  // ...and leaves no time for the plan: no second request is made.
  auto draft = dagent::test::run_on(rig.io, rig.planner.draft(ctx, {}));
  REQUIRE(draft.error.has_value());
  CHECK(draft.error->message == "planning timed out after 300 ms");
  auto repaired = dagent::test::run_on(rig.io, rig.planner.repair(ctx, draft));
  REQUIRE(repaired.error.has_value());
  CHECK(repaired.error->message == "planning timed out after 300 ms");
  CHECK(rig.chat_requests() == 1);
}

TEST_CASE("Planner: speculative planning, intent and plan calls stalled, ends at planner.planning_timeout_ms",
          "[planner][intent]") {
  PlannerRig rig(one_rule({{"fault", "stall"}}), [](dagent::config::Config& c) {
    c.planner.intent_analysis = true;
    c.planner.intent_mode = dagent::config::IntentMode::speculative;
    c.planner.planning_timeout_ms = 300;
  });
  auto ctx = rig.context();
  CHECK(ctx.intent_timing == dagent::planner::IntentTiming::speculative);
  CHECK(rig.chat_requests() == 0);  // prepare() left the intent call to plan()
  const bool streamed = GENERATE(false, true);
  std::vector<json::object> steps;
  dagent::planner::StepSink sink;
  if (streamed) sink = StepCollector{&steps};
  auto planned = dagent::test::run_on(rig.io, rig.planner.plan(ctx, sink));
  // Both calls were made at once and both met the one deadline; the intent failing is not fatal
  // and narrows nothing, so no third call is made past the deadline.
  CHECK(rig.chat_requests() == 2);
  REQUIRE(planned.draft.error.has_value());
  CHECK(planned.draft.error->message == "planning timed out after 300 ms");
  CHECK(planned.ctx.intent.empty());
  CHECK(planned.ctx.tools.empty());
  CHECK(steps.empty());
}

TEST_CASE("Planner: planner.answer_timeout_ms ends a stalled answer or replan call with an error", "[planner]") {
  PlannerRig rig(one_rule({{"fault", "stall"}}), [](dagent::config::Config& c) { c.planner.answer_timeout_ms = 300; });
  auto ctx = rig.context();
  SECTION("answer synthesis") {
    auto answer = dagent::test::run_on(rig.io, rig.planner.synthesize("goal", {}, true, {}));
    REQUIRE(answer.error.has_value());
    CHECK(answer.error->message == "answer synthesis timed out after 300 ms");
    CHECK(answer.text.empty());
  }
  SECTION("replanning") {
    json::array kept{json::parse(R"({"id": 1, "action": "list_dir", "parameters": {"path": "."}})")};
    auto more = dagent::test::run_on(rig.io, rig.planner.replan(ctx, kept, "step 1: []", "need more", 2));
    REQUIRE_FALSE(more.ok());
    REQUIRE(more.error.has_value());
    CHECK(more.error->message == "replanning timed out after 300 ms");
  }
}

TEST_CASE("Planner: synthesize reports a cut or empty answer stream as an error, never as an answer", "[planner]") {
  SECTION("a stream without [DONE]") {
    PlannerRig rig(one_rule({{"fault", "truncate"}, {"stream_chunks", json::array{"The ", "answer ", "is ", "42", "."}}}));
    auto answer = dagent::test::run_on(rig.io, rig.planner.synthesize("goal", {}, false, {}));
    REQUIRE(answer.error.has_value());
    CHECK(answer.error->code == dagent::net::make_error_code(dagent::net::NetErrc::truncated));
    CHECK_THAT(answer.error->message, Catch::Contains("truncated"));
    CHECK(answer.text.empty());
  }
  SECTION("a complete stream that says nothing") {
    PlannerRig rig(one_rule({{"stream_chunks", json::array{" ", "\n"}}}));
    auto answer = dagent::test::run_on(rig.io, rig.planner.synthesize("goal", {}, false, {}));
    REQUIRE(answer.error.has_value());
    CHECK(answer.error->message == "the model's answer is empty");
  }
  SECTION("a complete answer is an answer") {
    PlannerRig rig(one_rule({{"stream_chunks", json::array{"The answer ", "is 42."}}}));
    auto answer = dagent::test::run_on(rig.io, rig.planner.synthesize("goal", {}, false, {}));
    CHECK_FALSE(answer.error.has_value());
    CHECK(answer.text == "The answer is 42.");
  }
}

TEST_CASE("Planner regression: an invalid or empty replan reply is a problem, never an empty success", "[planner]") {
  json::array kept{json::parse(R"({"id": 1, "action": "list_dir", "parameters": {"path": "."}})")};
  SECTION("prose without a plan") {
    PlannerRig rig(one_rule({{"reply", "I would rather not."}}));
    auto more = dagent::test::run_on(rig.io, rig.planner.replan(rig.context(), kept, "step 1: []", "need more", 2));
    CHECK_FALSE(more.ok());
    CHECK(problems_of(more) == "plan: the reply contains no JSON value\n");
  }
  SECTION("no new steps") {
    PlannerRig rig(one_rule({{"reply", R"({"steps": []})"}}));
    auto more = dagent::test::run_on(rig.io, rig.planner.replan(rig.context(), kept, "step 1: []", "need more", 2));
    CHECK_FALSE(more.ok());
    CHECK(problems_of(more) == "plan: the reply adds no new steps\n");
  }
  SECTION("new steps that do not fit the kept ones") {
    PlannerRig rig(one_rule({{"reply", R"([{"id": 1, "action": "list_dir", "parameters": {"path": "."}}])"}}));
    auto more = dagent::test::run_on(rig.io, rig.planner.replan(rig.context(), kept, "step 1: []", "need more", 2));
    CHECK_FALSE(more.ok());
    CHECK_THAT(problems_of(more), Catch::Contains("duplicate step id 1"));
  }
}

TEST_CASE("Planner regression: a prompt template that cannot be read fails the planning without a repair call that "
          "would show the model its path",
          "[planner]") {
  PlannerRig rig(one_rule({{"reply", std::string(k_valid_plan)}}), [](dagent::config::Config& c) {
    c.planner.prompts.plan = "nope.txt";
  });
  auto draft = dagent::test::run_on(rig.io, rig.planner.create_plan("goal", {}));
  REQUIRE_FALSE(draft.ok());
  REQUIRE(draft.error.has_value());
  CHECK_THAT(draft.error->message, Catch::Contains("planner.prompts.plan: cannot read template"));
  CHECK(rig.chat_requests() == 0);  // neither the plan nor a repair call was made
}

TEST_CASE("Planner regression: a repair prompt quotes a long invalid reply within planner.quote_budget_tokens",
          "[planner]") {
  const std::string long_reply = R"({"steps": [{"id": 1, "action": "list_dir", "parameters": {"path": ")" +
                                 std::string(200'000, 'x') + "é\"}}";  // never closed
  json::value script = json::object{
      {"rules", json::array{json::object{{"path", "/v1/chat/completions"}, {"nth", 1}, {"reply", long_reply}},
                            json::object{{"path", "/v1/chat/completions"}, {"reply", std::string(k_valid_plan)}}}}};
  PlannerRig rig(script, [](dagent::config::Config& c) { c.planner.quote_budget_tokens = 100; });
  auto plan = dagent::test::run_on(rig.io, rig.planner.create_plan("goal", {}));
  INFO(problems_of(plan));
  CHECK(plan.ok());
  REQUIRE(rig.chat_requests() == 2);
  const json::value stats = rig.server.stats();
  const json::object* repair = nullptr;
  for (const auto& r : stats.at("recent").as_array())
    if (r.at("path") == "/v1/chat/completions") repair = &r.as_object();  // the last one
  REQUIRE(repair != nullptr);
  CHECK(repair->at("body_bytes").to_number<std::int64_t>() < 20'000);
  CHECK_THAT(std::string(repair->at("body").as_string()), Catch::Contains("[cut: "));
}
