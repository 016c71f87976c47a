// for_each in what a run leaves behind: recorded item calls answered by --replay-tools, items
// kept by --resume, the result JSON's items and the trace's item spans.
#include "runtime/resume.hpp"

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include "runtime/run_recorder.hpp"
#include "runtime/tool_replay.hpp"
#include "runtime/trace_writer.hpp"
#include "support/process.hpp"

namespace {

namespace json = boost::json;
using namespace dagent;

record::Recording recording_of(std::initializer_list<const char*> lines) {
  record::Recording r;
  for (const char* line : lines) r.events.push_back(json::parse(line).as_object());
  return r;
}

}  // namespace

TEST_CASE("ToolReplay (--replay-tools) answers each item of a for_each step by its index", "[runtime][fanout]") {
  auto rec = recording_of({
      R"({"type":"tool","step":2,"action":"read_file","params":{"path":"a"},"item":0,"output":{"content":"A"}})",
      R"({"type":"tool","step":2,"action":"read_file","params":{"path":"a"},"item":1,"output":{"content":"A again"}})",
      R"({"type":"tool","step":2,"action":"read_file","params":{"path":"b"},"output":{"content":"plain"}})",
  });
  runtime::ToolReplay replay(rec, nullptr);
  const json::object a{{"path", "a"}};
  auto first = replay.answer({2, 0}, "read_file", a);
  REQUIRE(first);
  REQUIRE(first->has_value());
  CHECK(**first == json::parse(R"({"content":"A"})"));
  auto second = replay.answer({2, 1}, "read_file", a);
  CHECK(**second == json::parse(R"({"content":"A again"})"));
  auto missing = replay.answer({2, 2}, "read_file", a);
  REQUIRE(missing);
  REQUIRE_FALSE(missing->has_value());
  CHECK_THAT(missing->error().message, Catch::Contains("no call of step 2 item 2 (read_file)"));
  CHECK(replay.answer({2, -1}, "read_file", json::object{{"path", "b"}})->has_value());
  CHECK_FALSE(replay.answer({2, 0}, "read_file", json::object{{"path", "b"}})->has_value());
}

TEST_CASE("RunRecorder writes the item index of a call and of an item's step event", "[runtime][fanout]") {
  dagent::test::TempDir dir;
  auto writer = record::RecordWriter::open(dir.path() / "r.jsonl", false);
  REQUIRE(writer.has_value());
  runtime::RunRecorder recorder(*writer);
  recorder.called({4, 7}, "llm", json::object{{"prompt", "p"}}, ToolResult(json::value("out")));
  executor::StepEvent ev;
  ev.step_id = 4;
  ev.action = "llm";
  ev.status = StepStatus::running;
  ev.items = 9;
  recorder.step(ev);
  ev.item = 7;
  ev.status = StepStatus::succeeded;
  recorder.step(ev);
  const auto text = dagent::test::read_text(dir.path() / "r.jsonl");
  CHECK(text.find(R"("step":4,"action":"llm","params":{"prompt":"p"},"item":7,"output":"out")") != std::string::npos);
  CHECK(text.find(R"("status":"running")") != std::string::npos);
  CHECK(text.find(R"("items":9)") != std::string::npos);
  CHECK(text.find(R"("item":7})") != std::string::npos);
}

TEST_CASE("resume_point keeps the finished items of a fan-out cut short, and a finished fan-out whole",
          "[runtime][fanout]") {
  auto rec = recording_of({
      R"({"type":"step","step":1,"action":"list_dir","status":"succeeded","verification":"not_requested","attempt":1})",
      R"({"type":"tool","step":1,"action":"list_dir","params":{},"output":{"entries":[1,2,3,4]}})",
      R"({"type":"step","step":2,"action":"pick","status":"running","verification":"not_requested","attempt":0,"items":4})",
      R"({"type":"tool","step":2,"action":"pick","params":{},"item":2,"output":"two"})",
      R"({"type":"tool","step":2,"action":"pick","params":{},"item":0,"error":{"code":"tool:2","message":"x"}})",
      R"({"type":"tool","step":2,"action":"pick","params":{},"item":0,"output":"zero"})",
      R"({"type":"tool","step":2,"action":"pick","params":{},"item":3,"output":"three"})",
      R"({"type":"tool","step":2,"action":"pick","params":{},"item":3,"error":{"code":"tool:2","message":"rerun failed"}})",
      R"({"type":"step","step":3,"action":"pick","status":"running","verification":"not_requested","attempt":0,"items":2})",
      R"({"type":"tool","step":3,"action":"pick","params":{},"item":1,"output":"b"})",
      R"({"type":"tool","step":3,"action":"pick","params":{},"item":0,"output":"a"})",
      R"({"type":"step","step":3,"item":1,"action":"pick","status":"succeeded","verification":"not_requested","attempt":1})",
      R"({"type":"step","step":3,"action":"pick","status":"succeeded","verification":"not_requested","attempt":1,"items":2})",
      R"({"type":"step","step":4,"action":"pick","status":"running","verification":"not_requested","attempt":0,"items":3})",
  });
  auto point = runtime::resume_point(rec);
  REQUIRE(point.kept.size() == 3);
  CHECK(point.kept[0].id == 1);
  const auto& partial = point.kept[1];
  CHECK(partial.id == 2);
  CHECK(partial.status == StepStatus::pending);
  CHECK(partial.fan_out);
  REQUIRE(partial.items.size() == 2);  // item 3's last call failed: it runs again
  CHECK(partial.items[0].index == 0);
  CHECK(partial.items[1].index == 2);
  CHECK(partial.output == json::parse(R"(["zero", null, "two"])"));
  const auto& whole = point.kept[2];
  CHECK(whole.id == 3);
  CHECK(whole.status == StepStatus::succeeded);
  CHECK(whole.output == json::parse(R"(["a", "b"])"));
  CHECK(whole.items.size() == 2);
}

TEST_CASE("the result JSON lists a for_each step's items and the trace has a span per item", "[runtime][fanout]") {
  executor::RunResult r;
  r.task = "t";
  executor::StepResult s;
  s.id = 3;
  s.action = "read_file";
  s.status = StepStatus::failed;
  s.fan_out = true;
  s.error = "item 1 failed: gone";
  s.items = {executor::ItemResult{0, StepStatus::succeeded, 1, 1.0, 3.5, 0, ""},
             executor::ItemResult{1, StepStatus::failed, 2, 1.0, 2.0, 1, "gone"},
             executor::ItemResult{2, StepStatus::skipped, 0, 0, 0, -1, "the run was interrupted"}};
  executor::StepResult plain;
  plain.id = 4;
  r.steps = {s, plain};
  const auto j = to_json(r);
  const auto& items = j.at("steps").as_array()[0].at("items").as_array();
  REQUIRE(items.size() == 3);
  CHECK(items[0] == json::parse(R"({"index":0,"status":"succeeded","attempts":1,"duration_ms":2.5,"started_ms":1.0,"finished_ms":3.5,"slot":0})"));
  CHECK(items[1] == json::parse(R"({"index":1,"status":"failed","attempts":2,"duration_ms":1.0,"started_ms":1.0,"finished_ms":2.0,"slot":1,"error":"gone"})"));
  CHECK(items[2].at("status") == "skipped");
  CHECK_FALSE(j.at("steps").as_array()[1].as_object().contains("items"));

  dagent::test::TempDir dir;
  REQUIRE(runtime::write_trace(r, dir.path() / "t.json").has_value());
  const auto doc = json::parse(dagent::test::read_text(dir.path() / "t.json"));
  std::vector<std::string> names;
  for (const auto& e : doc.at("traceEvents").as_array())
    if (e.at("ph") == "X") names.emplace_back(e.at("name").as_string());
  CHECK(names == std::vector<std::string>{"step 3 read_file [0]", "step 3 read_file [1]"});
}
