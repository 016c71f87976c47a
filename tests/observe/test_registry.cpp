#include "observe/registry.hpp"

#include <catch2/catch.hpp>

#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using dagent::observe::Gauge;
using dagent::observe::GaugeLease;
using dagent::observe::Registry;

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.starts_with(line + "\n");
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    out.push_back(text.substr(start, nl - start));
  return out;
}

}  // namespace

TEST_CASE("Registry renders counters and gauges with HELP and TYPE lines", "[metrics]") {
  Registry r;
  auto& calls = r.counter("demo_calls_total", "Calls made.\nSecond line with a \\ backslash", {"endpoint"});
  calls.counter({"chat"}).inc(3);
  calls.counter({"embeddings"}).inc();
  r.gauge("demo_open", "Open things").gauge().set(-2);
  r.counter("demo_plain_total", "No labels").counter().inc(0);
  const auto text = r.render();
  CHECK(lines_of(text) == std::vector<std::string>{
                              "# HELP demo_calls_total Calls made.\\nSecond line with a \\\\ backslash",
                              "# TYPE demo_calls_total counter",
                              "demo_calls_total{endpoint=\"chat\"} 3",
                              "demo_calls_total{endpoint=\"embeddings\"} 1",
                              "# HELP demo_open Open things",
                              "# TYPE demo_open gauge",
                              "demo_open -2",
                              "# HELP demo_plain_total No labels",
                              "# TYPE demo_plain_total counter",
                              "demo_plain_total 0",
                          });
  CHECK(text.ends_with("\n"));
  CHECK(calls.counter({"chat"}).value() == 3);
}

TEST_CASE("Registry escapes label values: backslash, double quote and newline", "[metrics]") {
  Registry r;
  auto& f = r.counter("demo_total", "h", {"action"});
  f.counter({"a\\b\"c\nd"}).inc();
  CHECK(has_line(r.render(), "demo_total{action=\"a\\\\b\\\"c\\nd\"} 1"));
  CHECK(dagent::observe::escape_label_value("plain") == "plain");
}

TEST_CASE("Registry cuts long label values and repairs bytes that are not UTF-8", "[metrics]") {
  Registry r;
  auto& f = r.counter("demo_total", "h", {"action"});
  f.counter({std::string(1000, 'x')}).inc();
  f.counter({std::string("bad\xff")}).inc();
  const auto text = r.render();
  CHECK(has_line(text, "demo_total{action=\"" + std::string(dagent::observe::k_max_label_value, 'x') + "\"} 1"));
  CHECK(has_line(text, "demo_total{action=\"bad\xEF\xBF\xBD\"} 1"));  // U+FFFD
}

TEST_CASE("Histogram buckets are cumulative, +Inf equals the count, sum adds the values", "[metrics]") {
  Registry r;
  auto h = r.histogram("demo_seconds", "h", {"action"}, {0.005, 0.5, 1}).histogram({"llm"});
  for (double v : {0.001, 0.005, 0.3, 0.7, 2.0, 100.0}) h.observe(v);
  CHECK(h.count() == 6);
  CHECK(h.cumulative(0) == 2);  // le is inclusive
  CHECK(h.cumulative(1) == 3);
  CHECK(h.cumulative(2) == 4);
  CHECK(h.sum() == Approx(103.006));
  const auto text = r.render();
  CHECK(has_line(text, "# TYPE demo_seconds histogram"));
  CHECK(has_line(text, "demo_seconds_bucket{action=\"llm\",le=\"0.005\"} 2"));
  CHECK(has_line(text, "demo_seconds_bucket{action=\"llm\",le=\"0.5\"} 3"));
  CHECK(has_line(text, "demo_seconds_bucket{action=\"llm\",le=\"1\"} 4"));
  CHECK(has_line(text, "demo_seconds_bucket{action=\"llm\",le=\"+Inf\"} 6"));
  CHECK(has_line(text, "demo_seconds_sum{action=\"llm\"} 103.006"));
  CHECK(has_line(text, "demo_seconds_count{action=\"llm\"} 6"));

  SECTION("without labels, le is the only label") {
    Registry plain;
    auto p = plain.histogram("demo_inputs", "h", {}, {1, 2}).histogram();
    p.observe(2);
    const auto t = plain.render();
    CHECK(has_line(t, "demo_inputs_bucket{le=\"1\"} 0"));
    CHECK(has_line(t, "demo_inputs_bucket{le=\"2\"} 1"));
    CHECK(has_line(t, "demo_inputs_bucket{le=\"+Inf\"} 1"));
    CHECK(has_line(t, "demo_inputs_sum 2"));
    CHECK(has_line(t, "demo_inputs_count 1"));
  }
}

TEST_CASE("A family holds at most its cap of label sets, the rest count under the first label other",
          "[metrics]") {
  Registry r;
  auto& f = r.histogram("demo_step_seconds", "h", {"action", "status"}, {1}, 3);
  for (int i = 0; i < 10; ++i) f.histogram({"tool" + std::to_string(i), "succeeded"}).observe(0.5);
  f.histogram({"tool99", "failed"}).observe(0.5);
  CHECK(f.series() == 5);  // three, and other for each status
  CHECK(f.histogram({"other", "succeeded"}).count() == 7);
  CHECK(f.histogram({"other", "failed"}).count() == 1);
  CHECK(f.histogram({"tool0", "succeeded"}).count() == 1);  // an existing set is still its own
  const auto text = r.render();
  CHECK(has_line(text, "demo_step_seconds_count{action=\"other\",status=\"succeeded\"} 7"));
  CHECK(text.find("tool5") == std::string::npos);
}

TEST_CASE("Registry refuses bad names and a name registered twice differently", "[metrics]") {
  Registry r;
  CHECK_THROWS_AS(r.counter("demo_calls", "a counter must end in _total"), std::invalid_argument);
  CHECK_THROWS_AS(r.gauge("1demo", "h"), std::invalid_argument);
  CHECK_THROWS_AS(r.gauge("demo-x", "h"), std::invalid_argument);
  CHECK_THROWS_AS(r.histogram("demo_h", "h", {"le"}, {1}), std::invalid_argument);
  CHECK_THROWS_AS(r.histogram("demo_h", "h", {}, {2, 1}), std::invalid_argument);
  auto& once = r.counter("demo_total", "h", {"a"});
  CHECK(&r.counter("demo_total", "again", {"a"}) == &once);
  CHECK_THROWS_AS(r.counter("demo_total", "h", {"b"}), std::invalid_argument);
  CHECK_THROWS_AS(r.gauge("demo_total", "h", {"a"}), std::invalid_argument);
  CHECK_THROWS_AS(once.counter({"x", "y"}), std::invalid_argument);
  CHECK_THROWS_AS(once.gauge({"x"}), std::invalid_argument);
}

TEST_CASE("GaugeLease holds one on its gauge until released, moved from or destroyed", "[metrics]") {
  Registry r;
  const Gauge g = r.gauge("demo_open", "h").gauge();
  {
    GaugeLease a;
    a.take(g);
    CHECK(g.value() == 1);
    a.take(g);  // taking again does not count twice
    CHECK(g.value() == 1);
    GaugeLease b(std::move(a));
    CHECK(g.value() == 1);
    a.release();  // moved from: holds nothing
    CHECK(g.value() == 1);
    GaugeLease c;
    c.take(g);
    CHECK(g.value() == 2);
    c = std::move(b);
    CHECK(g.value() == 1);
  }
  CHECK(g.value() == 0);
}

TEST_CASE("format_number writes the shortest form and the special values", "[metrics]") {
  using dagent::observe::format_number;
  CHECK(format_number(0.005) == "0.005");
  CHECK(format_number(1) == "1");
  CHECK(format_number(2.5) == "2.5");
  constexpr double inf = std::numeric_limits<double>::infinity();
  CHECK(format_number(inf) == "+Inf");
  CHECK(format_number(-inf) == "-Inf");
  CHECK(format_number(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}
