#include "runtime/trace_writer.hpp"

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include "support/process.hpp"

TEST_CASE("write_trace writes one span per step that ran, on its slot's track", "[runtime]") {
  dagent::test::TempDir dir;
  dagent::executor::RunResult r;
  r.task = "t";
  dagent::executor::StepResult a;
  a.id = 1, a.action = "read_file", a.status = dagent::StepStatus::succeeded, a.slot = 0, a.started_ms = 1.5,
  a.finished_ms = 4.0;
  dagent::executor::StepResult b = a;
  b.id = 2, b.slot = 1, b.status = dagent::StepStatus::failed, b.error = "boom";
  dagent::executor::StepResult c;
  c.id = 3, c.status = dagent::StepStatus::skipped;  // never ran: no span
  r.steps = {a, b, c};
  auto path = dir.path() / "trace.json";
  REQUIRE(dagent::runtime::write_trace(r, path).has_value());
  auto doc = boost::json::parse(dagent::test::read_text(path));
  std::vector<boost::json::object> spans;
  int tracks = 0;
  for (const auto& e : doc.at("traceEvents").as_array()) {
    if (e.at("ph") == "X") spans.push_back(e.as_object());
    if (e.at("ph") == "M" && e.at("name") == "thread_name") ++tracks;
  }
  REQUIRE(spans.size() == 2);
  CHECK(tracks == 2);
  CHECK(spans[0].at("name") == "step 1 read_file");
  CHECK(spans[0].at("ts").to_number<double>() == Approx(1500));
  CHECK(spans[0].at("dur").to_number<double>() == Approx(2500));
  CHECK(spans[0].at("tid") == 1);
  CHECK(spans[1].at("tid") == 2);
  CHECK(spans[1].at("args").at("error") == "boom");
  CHECK_FALSE(dagent::runtime::write_trace(r, dir.path() / "no" / "such" / "dir" / "t.json").has_value());
}
