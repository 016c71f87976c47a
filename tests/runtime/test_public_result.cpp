#include "runtime/public_result.hpp"

#include <catch2/catch.hpp>

#include <boost/json/parse.hpp>

#include "dagent/tool.hpp"

namespace {

namespace json = boost::json;
using dagent::StepStatus;

// A failed fan-out step whose tool could not be reached, and a succeeded step, as the scheduler fills them.
dagent::executor::RunResult executor_result() {
  dagent::executor::RunResult r;
  r.run_id = "r1";
  r.task = "t";
  r.status = dagent::RunStatus::failed;
  r.metrics.llm_calls = 2;
  dagent::executor::StepResult down;
  down.id = 1;
  down.action = "srv.fetch";
  down.status = StepStatus::failed;
  down.slot = 3;
  down.error = "srv.fetch: the server is not running";
  down.error_code = make_error_code(dagent::ToolErrc::unavailable);
  down.fan_out = true;
  down.items = {{.index = 0, .status = StepStatus::failed, .attempts = 1, .started_ms = 1, .finished_ms = 2,
                 .slot = 1, .error = "gone"}};
  dagent::executor::StepResult ok;
  ok.id = 2;
  ok.action = "echo";
  ok.status = StepStatus::succeeded;
  ok.slot = 0;
  ok.output = json::object{{"x", 1}};
  r.steps = {down, ok};
  return r;
}

}  // namespace

TEST_CASE("the public result keeps every field but the scheduler's slots and error codes", "[runtime][public]") {
  const auto internal = executor_result();
  const auto r = dagent::runtime::to_public(internal);
  REQUIRE(r.steps.size() == 2);
  CHECK(r.run_id == "r1");
  CHECK(r.metrics.llm_calls == 2);
  CHECK(r.steps[0].unavailable);
  CHECK_FALSE(r.steps[1].unavailable);
  CHECK(r.steps[0].items.at(0).error == "gone");
  CHECK(r.steps[1].output == json::value(json::object{{"x", 1}}));

  // One SPEC §5 writer: the same JSON, with `slot` only where the executor's result has it.
  auto with_slots = dagent::executor::to_json(internal);
  auto without = dagent::to_json(r);
  CHECK(with_slots.at("steps").as_array()[0].as_object().at("slot") == 3);
  CHECK(with_slots.at("steps").as_array()[0].at("items").as_array()[0].as_object().at("slot") == 1);
  CHECK_FALSE(without.at("steps").as_array()[0].as_object().contains("slot"));
  CHECK_FALSE(without.at("steps").as_array()[0].at("items").as_array()[0].as_object().contains("slot"));
  for (auto& s : with_slots.at("steps").as_array()) {
    auto& step = s.as_object();
    step.erase("slot");
    if (auto* items = step.if_contains("items"))
      for (auto& i : items->as_array()) i.as_object().erase("slot");
  }
  CHECK(with_slots == without);
}

TEST_CASE("both outcomes give one exit code: 3 for a step whose tool was unavailable", "[runtime][public]") {
  dagent::runtime::Outcome o{.problems = {}, .unreachable = false, .result = executor_result()};
  CHECK(o.exit_code() == 3);
  CHECK(dagent::runtime::to_public(o).exit_code() == 3);
  o.result.steps[0].error_code = make_error_code(dagent::ToolErrc::invalid_parameters);
  CHECK(o.exit_code() == 1);
  CHECK(dagent::runtime::to_public(o).exit_code() == 1);
  o.problems = {"plan: bad"};
  CHECK(o.exit_code() == 2);
  CHECK(dagent::runtime::to_public(o).exit_code() == 2);
}

TEST_CASE("a step event reaches the public observer without its slot", "[runtime][public]") {
  dagent::executor::StepEvent e;
  e.step_id = 4;
  e.action = "llm";
  e.status = StepStatus::running;
  e.slot = 2;
  e.item = 7;
  e.items = 9;
  std::vector<dagent::StepEvent> seen;
  struct Keep {
    std::vector<dagent::StepEvent>* seen;
    void operator()(const dagent::StepEvent& ev) const { seen->push_back(ev); }
  };
  dagent::runtime::PublicStepEvents{Keep{&seen}}(e);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].step_id == 4);
  CHECK(seen[0].action == "llm");
  CHECK(seen[0].item == 7);
  CHECK(seen[0].items == 9);
}
