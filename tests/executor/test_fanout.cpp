// for_each: a step that runs once per element of a list (issue 14, part 4), through the real
// scheduler: outputs in item order, failures, nested references, limits, cancellation, resume.
#include "executor/scheduler.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <map>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "dagent/approval.hpp"
#include "dagent/workspace.hpp"
#include "support/test_tools.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent;
using namespace dagent::executor;

// "pick" {ms?, value?, fail?}: waits `ms` on a timer, then returns {"value": value}, or fails when
// `fail` is true. Counts its calls per value and the calls running at once (on the loop).
class PickTool final : public Tool {
 public:
  std::string_view name() const override { return "pick"; }
  std::string_view description() const override { return "waits, then returns its value or fails"; }
  const json::object& parameters_schema() const override {
    static const json::object schema{{"type", "object"},
                                     {"properties", json::object{{"ms", json::object{{"type", "integer"}}},
                                                                 {"value", json::object{}},
                                                                 {"fail", json::object{{"type", "boolean"}}}}},
                                     {"additionalProperties", false}};
    return schema;
  }
  asio::awaitable<ToolResult> invoke(json::object params, ToolContext) override {
    ++running;
    peak = std::max(peak, running);
    const json::value value = params.contains("value") ? params.at("value") : json::value();
    ++calls[json::serialize(value)];
    const auto ms = params.contains("ms") ? params.at("ms").to_number<std::int64_t>() : 0;
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
    // Decremented however the call ends (a cancelled wait throws).
    struct Leave {
      int* running;
      ~Leave() { --*running; }
    } leave{&running};
    co_await timer.async_wait(asio::use_awaitable);
    if (const auto* fail = params.if_contains("fail"); fail && fail->is_bool() && fail->get_bool())
      co_return tool_error(ToolErrc::failed, "picked to fail");
    co_return json::value(json::object{{"value", value}});
  }
  int running = 0;
  int peak = 0;
  std::map<std::string, int> calls;
};

struct Harness {
  test::TestTools tools;
  std::shared_ptr<PickTool> pick = std::make_shared<PickTool>();
  std::filesystem::path dir;
  asio::thread_pool pool{2};
  std::function<void(const executor::StepEvent&, Scheduler&, asio::io_context&)> on_event;
  std::vector<std::pair<std::size_t, executor::StepResult>> reused;

  Harness() {
    REQUIRE(tools.registry.add(pick).has_value());
    static int counter = 0;
    dir = std::filesystem::temp_directory_path() /
          ("dagent-fanout-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(dir);
  }
  ~Harness() {
    pool.join();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  Analysis analyse(std::string_view plan_text, Plan& plan, AnalysisOptions options = {}) {
    auto value = parse_json_text(plan_text);
    REQUIRE(value.has_value());
    auto parsed = parse_plan(*value);
    for (const auto& p : parsed.problems) FAIL(p.to_string());
    plan = std::move(parsed.plan);
    options.max_steps = 1000;
    return analyze(plan, tools.registry, options);
  }

  ExecutionReport run(std::string_view plan_text, SchedulerOptions options) {
    Plan plan;
    auto analysis = analyse(plan_text, plan);
    for (const auto& p : analysis.problems) FAIL(p.to_string());
    auto ws = Workspace::open(dir);
    REQUIRE(ws.has_value());
    ToolContext base;
    base.workspace = &*ws;
    base.worker = pool.get_executor();
    RuleVerifier verifier;
    asio::io_context io;
    Scheduler scheduler(plan, analysis, options, base, json::object{}, verifier);
    for (auto& [index, previous] : reused) scheduler.reuse(index, previous);
    if (on_event) scheduler.on_event([&](const executor::StepEvent& ev) { on_event(ev, scheduler, io); });
    ExecutionReport report;
    std::exception_ptr failure;
    asio::co_spawn(io, scheduler.run(), [&](std::exception_ptr e, ExecutionReport r) {
      failure = e;
      report = std::move(r);
    });
    io.run();
    if (failure) std::rethrow_exception(failure);
    return report;
  }
};

const executor::StepResult& step(const ExecutionReport& r, int id) {
  for (const auto& s : r.steps)
    if (s.id == id) return s;
  FAIL("no step " << id);
  return r.steps.front();
}

SchedulerOptions opts(int parallel = 8) {
  SchedulerOptions o;
  o.max_parallel_steps = parallel;
  o.step_timeout = std::chrono::milliseconds(20000);
  return o;
}

// A plan whose step 1 outputs {"list": items} and whose step 2 fans out over it.
std::string over(const json::array& items, std::string_view step2_params, std::string_view more = "") {
  return R"([{"id": 1, "action": "echo", "parameters": {"list": )" + json::serialize(items) +
         R"(}}, {"id": 2, "action": "pick", "for_each": "$step1.list", "parameters": )" + std::string(step2_params) +
         "}" + std::string(more) + "]";
}

std::vector<std::string> problems_of(Harness& h, std::string_view plan_text, AnalysisOptions options = {}) {
  Plan plan;
  auto a = h.analyse(plan_text, plan, options);
  std::vector<std::string> out;
  for (const auto& p : a.problems) out.push_back(p.to_string());
  return out;
}

}  // namespace

TEST_CASE("for_each over 0 items succeeds with [] and its dependents run", "[executor][fanout]") {
  Harness h;
  auto r = h.run(over(json::array{}, R"({"value": "$item"})",
                      R"(, {"id": 3, "action": "echo", "parameters": {"got": "$step2"}})"),
                 opts());
  CHECK(step(r, 2).status == StepStatus::succeeded);
  CHECK(step(r, 2).fan_out);
  CHECK(step(r, 2).items.empty());
  CHECK(step(r, 2).output == json::array{});
  CHECK(step(r, 3).status == StepStatus::succeeded);
  CHECK(step(r, 3).output == json::parse(R"({"got": []})"));
  CHECK(h.pick->calls.empty());
}

TEST_CASE("for_each over 1 item outputs a list of one", "[executor][fanout]") {
  Harness h;
  auto r = h.run(over(json::array{"only"}, R"({"value": "$item"})"), opts());
  REQUIRE(step(r, 2).status == StepStatus::succeeded);
  CHECK(step(r, 2).output == json::parse(R"([{"value": "only"}])"));
  REQUIRE(step(r, 2).items.size() == 1);
  CHECK(step(r, 2).items[0].status == StepStatus::succeeded);
  CHECK(step(r, 2).items[0].attempts == 1);
  CHECK(step(r, 2).items[0].slot >= 0);
}

TEST_CASE("for_each over 500 items keeps item order though items finish out of order", "[executor][fanout]") {
  // Item i waits (7 * i) % 13 ms: item 1 waits 7 ms, item 2 1 ms, so later items finish first.
  json::array items;
  for (int i = 0; i < 500; ++i) items.push_back(json::object{{"ms", (7 * i) % 13}, {"n", i}});
  Harness h;
  std::vector<int> finish_order;
  h.on_event = [&](const executor::StepEvent& ev, Scheduler&, asio::io_context&) {
    if (ev.item >= 0 && ev.status == StepStatus::succeeded) finish_order.push_back(ev.item);
  };
  auto r = h.run(over(items, R"({"ms": "$item.ms", "value": "$item.n"})"), opts(64));
  const auto& s = step(r, 2);
  REQUIRE(s.status == StepStatus::succeeded);
  REQUIRE(s.output.as_array().size() == 500);
  for (int i = 0; i < 500; ++i) {
    CHECK(s.output.as_array()[static_cast<std::size_t>(i)] == json::object{{"value", i}});
    CHECK(s.items[static_cast<std::size_t>(i)].index == i);
    CHECK(s.items[static_cast<std::size_t>(i)].status == StepStatus::succeeded);
  }
  REQUIRE(finish_order.size() == 500);
  CHECK_FALSE(std::is_sorted(finish_order.begin(), finish_order.end()));  // the premise of the test
  CHECK(r.max_concurrent == 64);
  CHECK(h.pick->peak == 64);
}

TEST_CASE("a failed item fails the step, the other items finish and dependents are skipped", "[executor][fanout]") {
  json::array items;
  for (int i = 0; i < 6; ++i) items.push_back(json::object{{"fail", i == 3}, {"n", i}});
  Harness h;
  auto r = h.run(over(items, R"({"fail": "$item.fail", "value": "$item.n"})",
                      R"(, {"id": 3, "action": "echo", "parameters": {"got": "$step2"}})"),
                 opts(2));
  const auto& s = step(r, 2);
  CHECK(s.status == StepStatus::failed);
  CHECK(s.error == "item 3 failed: picked to fail");
  CHECK(s.output.is_null());
  REQUIRE(s.items.size() == 6);
  for (int i = 0; i < 6; ++i)
    CHECK(s.items[static_cast<std::size_t>(i)].status == (i == 3 ? StepStatus::failed : StepStatus::succeeded));
  CHECK(s.items[3].error == "picked to fail");
  CHECK(h.pick->calls.size() == 6);  // every item ran
  CHECK(step(r, 3).status == StepStatus::skipped);
  CHECK(step(r, 3).error == "dependency step 2 failed");

  SECTION("several failures are counted, the first one named") {
    Harness h2;
    json::array two{json::object{{"fail", true}}, json::object{{"fail", false}}, json::object{{"fail", true}}};
    auto r2 = h2.run(over(two, R"({"fail": "$item.fail"})"), opts());
    CHECK(step(r2, 2).error == "2 of 3 items failed; item 0: picked to fail");
  }
}

TEST_CASE("$item, $item.field, $item.list[0] and $index resolve per item, and $stepN[k] downstream",
          "[executor][fanout]") {
  json::array items{json::object{{"name", "a.md"}, {"tags", json::array{"x", "y"}}, {"size", 3}},
                    json::object{{"name", "b.md"}, {"tags", json::array{"z"}}, {"size", 5}},
                    json::object{{"name", "c.md"}, {"tags", json::array{"w"}}, {"size", 8}}};
  const char* params =
      R"J({"value": {"whole": "$item", "name": "$item.name", "first": "$item.tags[0]", "size": "$item.size",
                    "index": "$index", "text": "#$index: $item.name ($item.size)", "file": "out_$index.md",
                    "literal": "$$item and $$index"}})J";
  const char* more = R"(, {"id": 3, "action": "echo", "parameters": {"third": "$step2[2].value.text",
                                                                      "all": "$step2", "count": "$step1.list[1].size"}})";
  Harness h;
  auto r = h.run(over(items, params, more), opts());
  REQUIRE(step(r, 2).status == StepStatus::succeeded);
  const auto& out = step(r, 2).output.as_array();
  REQUIRE(out.size() == 3);
  const auto& second = out[1].at("value");
  CHECK(second.at("whole") == items[1]);
  CHECK(second.at("name") == "b.md");
  CHECK(second.at("first") == "z");
  CHECK(second.at("size") == 5);  // a whole reference keeps its JSON type
  CHECK(second.at("index").is_number());
  CHECK(second.at("index") == 1);
  CHECK(second.at("text") == "#1: b.md (5)");
  CHECK(second.at("file") == "out_1.md");
  CHECK(second.at("literal") == "$item and $index");
  REQUIRE(step(r, 3).status == StepStatus::succeeded);
  CHECK(step(r, 3).output.at("third") == "#2: c.md (8)");
  CHECK(step(r, 3).output.at("all") == step(r, 2).output);
  CHECK(step(r, 3).output.at("count") == 5);
}

TEST_CASE("an inline for_each list, with references inside it", "[executor][fanout]") {
  Harness h;
  auto r = h.run(R"([{"id": 1, "action": "echo", "parameters": {"x": 7}},
                     {"id": 2, "action": "pick", "for_each": ["a", {"k": "$step1.x"}, 3], "parameters": {"value": "$item"}}])",
                 opts());
  REQUIRE(step(r, 2).status == StepStatus::succeeded);
  CHECK(step(r, 2).output == json::parse(R"([{"value": "a"}, {"value": {"k": 7}}, {"value": 3}])"));
}

TEST_CASE("for_each is checked before anything runs", "[executor][fanout][analysis]") {
  Harness h;
  SECTION("$item or $index outside a for_each step") {
    auto p = problems_of(h, R"([{"id": 1, "action": "echo", "parameters": {"a": "see $item.name"}},
                                {"id": 2, "action": "echo", "parameters": {"i": "$index"}}])");
    REQUIRE(p.size() == 2);
    CHECK(p[0] == "step 1: parameter a: $item.name is defined only in a step with for_each");
    CHECK(p[1] == "step 2: parameter i: $index is defined only in a step with for_each");
  }
  SECTION("the list's step is a dependency, derived from the reference") {
    Plan plan;
    auto a = h.analyse(R"([{"id": 2, "action": "pick", "for_each": "$step1.list", "parameters": {"value": "$item"}},
                           {"id": 1, "action": "echo", "parameters": {"list": [1]}}])",
                       plan);
    REQUIRE(a.ok());
    REQUIRE(a.steps[0].deps.size() == 1);
    CHECK(a.steps[0].deps[0] == 1);
    CHECK(a.steps[0].level == 1);
  }
  SECTION("a missing step, itself, or a cycle through the list") {
    auto p = problems_of(h, R"([{"id": 1, "action": "pick", "for_each": "$step9.list", "parameters": {}},
                                {"id": 2, "action": "pick", "for_each": "$step2", "parameters": {}}])");
    REQUIRE(p.size() == 2);
    CHECK(p[0] == "step 1: for_each $step9.list refers to step 9, which is not in the plan");
    CHECK(p[1] == "step 2: refers to itself (for_each $step2)");
    auto c = problems_of(h, R"([{"id": 1, "action": "pick", "for_each": "$step2", "parameters": {}},
                                {"id": 2, "action": "pick", "parameters": {"value": "$step1"}}])");
    REQUIRE(c.size() == 1);
    CHECK_THAT(c[0], Catch::Contains("dependency cycle: 1 -> 2 -> 1"));
  }
  SECTION("with dependency analysis off the list's step must be listed") {
    AnalysisOptions off;
    off.dependency_analysis = false;
    auto p = problems_of(h, R"([{"id": 1, "action": "echo", "parameters": {}},
                                {"id": 2, "action": "pick", "for_each": "$step1.list", "parameters": {}}])", off);
    REQUIRE(p.size() == 1);
    CHECK(p[0] == "step 2: for_each $step1.list: step 1 must be in \"dependencies\" (dependency_analysis is off)");
    CHECK(problems_of(h, R"([{"id": 1, "action": "echo", "parameters": {}},
                             {"id": 2, "action": "pick", "for_each": "$step1.list", "dependencies": [1], "parameters": {}}])",
                      off)
              .empty());
  }
  SECTION("$item inside the for_each itself") {
    auto p = problems_of(h, R"([{"id": 1, "action": "pick", "for_each": ["$item"], "parameters": {}}])");
    REQUIRE(p.size() == 1);
    CHECK_THAT(p[0], Catch::Contains("for_each cannot refer to $item or $index"));
  }
  SECTION("the for_each value's form, precisely") {
    auto parsed = [](const char* text) {
      auto plan = parse_plan(*parse_json_text(text));
      REQUIRE(plan.problems.size() == 1);
      return plan.problems[0].to_string();
    };
    CHECK(parsed(R"([{"id": 4, "action": "pick", "for_each": 3, "parameters": {}}])") ==
          "step 4: for_each must be a reference like $step2.entries or a list, got 3");
    CHECK(parsed(R"([{"id": 4, "action": "pick", "for_each": "files: $step2.entries", "parameters": {}}])") ==
          "step 4: for_each must be a reference like $step2.entries or a list, got \"files: $step2.entries\"");
    CHECK_THAT(parsed(R"([{"id": 4, "action": "pick", "for_each": "$step", "parameters": {}}])"),
               Catch::StartsWith("step 4: for_each must be a reference like $step2.entries or a list: malformed reference"));
  }
  SECTION("parameters built from $item are checked against the tool's schema by type") {
    auto p = problems_of(h, R"([{"id": 1, "action": "pick", "for_each": [1], "parameters": {"ms": "wait $item"}}])");
    REQUIRE(p.size() == 1);
    CHECK_THAT(p[0], Catch::Contains("parameters.ms"));
  }
}

TEST_CASE("a for_each value that is not a list at run time fails the step naming it and its type",
          "[executor][fanout]") {
  Harness h;
  auto r = h.run(R"([{"id": 1, "action": "echo", "parameters": {"list": {"a": 1}}},
                     {"id": 2, "action": "pick", "for_each": "$step1.list", "parameters": {}},
                     {"id": 3, "action": "pick", "for_each": "$step1.missing", "parameters": {}}])",
                 opts());
  CHECK(step(r, 2).status == StepStatus::failed);
  CHECK(step(r, 2).error == "for_each $step1.list is an object, not a list");
  CHECK(step(r, 3).status == StepStatus::failed);
  CHECK(step(r, 3).error == "reference $step1.missing: $step1 has no field 'missing'");
}

TEST_CASE("executor.max_fan_out bounds the items of one step", "[executor][fanout]") {
  Harness h;
  auto o = opts();
  o.max_fan_out = 3;
  auto r = h.run(over(json::array{1, 2, 3, 4}, R"({"value": "$item"})"), o);
  CHECK(step(r, 2).status == StepStatus::failed);
  CHECK(step(r, 2).error == "for_each $step1.list has 4 items, more than executor.max_fan_out (3)");
  CHECK(h.pick->calls.empty());
  auto ok = h.run(over(json::array{1, 2, 3}, R"({"value": "$item"})"), o);
  CHECK(step(ok, 2).status == StepStatus::succeeded);
}

TEST_CASE("items count against max_parallel_steps and max_parallel_llm_calls", "[executor][fanout]") {
  json::array items;
  for (int i = 0; i < 40; ++i) items.push_back(json::object{{"ms", i % 3}, {"n", i}});
  Harness h;
  // Another step runs beside the fan-out and shares the slots.
  auto r = h.run(over(items, R"({"ms": "$item.ms", "value": "$item.n"})",
                      R"(, {"id": 3, "action": "pick", "parameters": {"ms": 5, "value": "beside"}})"),
                 opts(4));
  CHECK(step(r, 2).status == StepStatus::succeeded);
  CHECK(h.pick->peak == 4);
  CHECK(r.max_concurrent == 4);
  for (const auto& item : step(r, 2).items) {
    CHECK(item.slot >= 0);
    CHECK(item.slot < 4);
  }

  SECTION("LLM-bound items") {
    Harness h2;
    int running = 0, peak = 0;
    h2.on_event = [&](const executor::StepEvent& ev, Scheduler&, asio::io_context&) {
      if (ev.item < 0) return;
      if (ev.status == StepStatus::running) peak = std::max(peak, ++running);
      if (ev.status == StepStatus::succeeded) --running;
    };
    auto o = opts(8);
    o.max_parallel_llm_calls = 2;
    auto r2 = h2.run(R"([{"id": 1, "action": "slow_llm", "for_each": [1, 2, 3, 4, 5, 6, 7], "parameters": {"ms": "$item"}}])",
                     o);
    CHECK(step(r2, 1).status == StepStatus::succeeded);
    CHECK(peak == 2);
  }
}

TEST_CASE("each item has its own timeout and retries", "[executor][fanout]") {
  Harness h;
  auto o = opts();
  o.step_timeout = std::chrono::milliseconds(300);
  auto r = h.run(over(json::array{0, 30000, 0}, R"({"ms": "$item"})"), o);
  const auto& s = step(r, 2);
  CHECK(s.status == StepStatus::failed);
  CHECK(s.items[0].status == StepStatus::succeeded);
  CHECK(s.items[2].status == StepStatus::succeeded);
  CHECK(s.items[1].status == StepStatus::failed);
  CHECK_THAT(s.items[1].error, Catch::Contains("timed out after 300 ms"));
  CHECK(s.error == "item 1 failed: timed out after 300 ms");

  SECTION("retries per item") {
    Harness h2;
    auto o2 = opts();
    o2.step_retries = 2;
    auto r2 = h2.run(R"([{"id": 1, "action": "flaky", "for_each": [1, 2], "parameters": {"fails": 1}}])", o2);
    CHECK(step(r2, 1).status == StepStatus::succeeded);
    CHECK(step(r2, 1).items[0].attempts + step(r2, 1).items[1].attempts == 3);  // one failure among the two
    CHECK(r2.retries == 1);
  }
}

TEST_CASE("interrupting a fan-out cancels its running items and skips the rest", "[executor][fanout]") {
  Harness h;
  h.on_event = [](const executor::StepEvent& ev, Scheduler& s, asio::io_context& io) {
    if (ev.item == 1 && ev.status == StepStatus::running) asio::post(io, [&s] { s.interrupt(); });
  };
  auto r = h.run(over(json::array{30000, 30000, 30000, 30000, 30000}, R"({"ms": "$item"})",
                      R"(, {"id": 3, "action": "echo", "parameters": {"got": "$step2"}})"),
                 opts(2));
  CHECK(r.interrupted);
  const auto& s = step(r, 2);
  CHECK(s.status == StepStatus::failed);
  CHECK_THAT(s.error, Catch::Contains("cancelled"));
  CHECK(s.items[0].status == StepStatus::failed);
  CHECK(s.items[1].status == StepStatus::failed);
  for (std::size_t k = 2; k < 5; ++k) {
    CHECK(s.items[k].status == StepStatus::skipped);
    CHECK(s.items[k].error == "the run was interrupted");
  }
  CHECK(h.pick->calls.size() == 1);  // two calls of one value: items 0 and 1 only
  CHECK(h.pick->calls.begin()->second == 2);
  CHECK(step(r, 3).status == StepStatus::skipped);
}

TEST_CASE("a fan-out cut short runs only its unfinished items (resume)", "[executor][fanout]") {
  Harness h;
  executor::StepResult partial;
  partial.id = 2;
  partial.action = "pick";
  partial.status = StepStatus::pending;
  partial.fan_out = true;
  partial.output = json::parse(R"([{"value": "kept-0"}, null, {"value": "kept-2"}])");
  for (int k : {0, 2}) partial.items.push_back(executor::ItemResult{k, StepStatus::succeeded});
  h.reused.emplace_back(1, partial);
  auto r = h.run(over(json::array{"a", "b", "c", "d"}, R"({"value": "$item"})"), opts());
  const auto& s = step(r, 2);
  REQUIRE(s.status == StepStatus::succeeded);
  CHECK(s.output == json::parse(R"([{"value": "kept-0"}, {"value": "b"}, {"value": "kept-2"}, {"value": "d"}])"));
  CHECK(h.pick->calls == std::map<std::string, int>{{"\"b\"", 1}, {"\"d\"", 1}});
  CHECK(s.items[0].attempts == 0);
  CHECK(s.items[1].attempts == 1);
}

TEST_CASE("a for_each step's verify checks the whole list", "[executor][fanout]") {
  Harness h;
  auto r = h.run(R"([{"id": 1, "action": "pick", "for_each": [1, 2], "parameters": {"value": "$item"},
                      "verify": {"contains": "\"value\":2"}, "critical": true},
                     {"id": 2, "action": "pick", "for_each": [1, 2], "parameters": {"value": "$item"},
                      "verify": {"contains": "\"value\":3"}, "critical": true}])",
                 opts());
  CHECK(step(r, 1).status == StepStatus::succeeded);
  CHECK(step(r, 1).verification == VerificationStatus::passed);
  CHECK(step(r, 2).status == StepStatus::failed);
  CHECK_THAT(step(r, 2).error, Catch::StartsWith("verification failed"));
  CHECK(h.pick->calls.at("2") == 2 + 1);  // step 2 was re-run once (max_reruns 1), items and all
}

TEST_CASE("tool calls of items reach the observer with their item index", "[executor][fanout]") {
  struct Seen final : ToolObserver {
    std::vector<std::pair<int, int>> calls;
    std::optional<ToolResult> answer(CallId call, std::string_view, const json::object&) override {
      if (call.item == 1) return ToolResult(json::value("answered"));
      return std::nullopt;
    }
    void called(CallId call, std::string_view, const json::object&, const ToolResult&) override {
      calls.emplace_back(call.step_id, call.item);
    }
  } seen;
  Harness h;
  auto o = opts(1);
  o.observer = &seen;
  auto r = h.run(over(json::array{"a", "b", "c"}, R"({"value": "$item"})"), o);
  CHECK(step(r, 2).output == json::parse(R"([{"value": "a"}, "answered", {"value": "c"}])"));
  CHECK(seen.calls == std::vector<std::pair<int, int>>{{1, -1}, {2, 0}, {2, 1}, {2, 2}});
}

namespace {

struct Asked {
  std::vector<std::string> values;
};

// Allows every item but the one whose value is "b" (a named coroutine: no capturing lambda).
asio::awaitable<ApprovalDecision> decide(Asked* asked, ApprovalRequest request) {
  const auto value = json::serialize(request.parameters.at("value"));
  asked->values.push_back(value);
  ApprovalDecision d;
  d.answer = value == "\"b\"" ? ApprovalAnswer::deny : ApprovalAnswer::allow;
  co_return d;
}

struct Decider {
  Asked* asked;
  asio::awaitable<ApprovalDecision> operator()(const ApprovalRequest& r) const { return decide(asked, r); }
};

}  // namespace

TEST_CASE("tools.approval asks for each item with its own parameters", "[executor][fanout]") {
  Asked asked;
  ApprovalGateOptions gate_options;
  gate_options.patterns = {"pick"};
  gate_options.ask = Decider{&asked};
  ApprovalGate gate(std::move(gate_options));
  Harness h;
  auto o = opts();
  o.approval = &gate;
  auto r = h.run(over(json::array{"a", "b", "c"}, R"({"value": "$item"})"), o);
  const auto& s = step(r, 2);
  CHECK(asked.values == std::vector<std::string>{"\"a\"", "\"b\"", "\"c\""});
  CHECK(s.status == StepStatus::failed);
  CHECK(s.items[0].status == StepStatus::succeeded);
  CHECK(s.items[1].status == StepStatus::failed);
  CHECK_THAT(s.items[1].error, Catch::Contains("denied by the user"));
  CHECK(s.items[2].status == StepStatus::succeeded);
  CHECK(h.pick->calls.count("\"b\"") == 0);  // the denied item never ran
}

TEST_CASE("a fan-out under levels scheduling holds its level's barrier until its last item", "[executor][fanout]") {
  Harness h;
  auto o = opts(3);
  o.scheduling = config::Scheduling::levels;
  auto r = h.run(over(json::array{3, 1, 2, 0, 1}, R"({"ms": "$item", "value": "$index"})",
                      R"(, {"id": 3, "action": "pick", "parameters": {"value": "$step2[4].value"}},
                          {"id": 4, "action": "pick", "dependencies": [1], "parameters": {"value": "same level"}})"),
                 o);
  REQUIRE(step(r, 2).status == StepStatus::succeeded);
  CHECK(step(r, 3).output == json::object{{"value", 4}});
  double last_item = 0;
  for (const auto& item : step(r, 2).items) last_item = std::max(last_item, item.finished_ms);
  CHECK(step(r, 3).started_ms >= last_item);
}

TEST_CASE("a streamed plan admits a for_each step once its list's step is admitted", "[executor][fanout]") {
  Harness h;
  AnalysisOptions options;
  IncrementalAnalysis inc(h.tools.registry, options);
  auto step_of = [](const char* text) {
    auto parsed = parse_plan(json::array{*parse_json_text(text)});
    REQUIRE(parsed.problems.empty());
    return parsed.plan.steps.front();
  };
  CHECK(inc.add(step_of(R"({"id": 2, "action": "pick", "for_each": "$step1.list", "parameters": {"value": "$item"}})")).empty());
  CHECK(inc.waiting() == 1);
  auto admitted = inc.add(step_of(R"({"id": 1, "action": "echo", "parameters": {"list": [1, 2]}})"));
  CHECK(admitted == std::vector<std::size_t>{0, 1});
  CHECK(inc.analysis().steps[1].fan_out);
  CHECK(inc.analysis().steps[1].level == 1);
  CHECK(inc.add(step_of(R"({"id": 3, "action": "pick", "parameters": {"value": "$item"}})")).empty());  // invalid: never admitted
}
