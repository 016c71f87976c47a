#include "report/report.hpp"

#include <catch2/catch.hpp>

#include <regex>
#include <string>

#include <openssl/evp.h>

#include <boost/json.hpp>

namespace {

namespace json = boost::json;
using dagent::report::html_escape;
using dagent::report::render_report;

constexpr const char* k_hostile =
    R"(</details><script>document.body.dataset.pwned=1</script><img src=x onerror="document.body.dataset.pwned=2">)";

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// A result as `dagent run --json` prints it: steps 1 and 2 first, 3 refers to step 1 and lists
// step 2, 4 refers to step 3. Steps 1 and 2 ran in slots 0 and 1 at once; step 3 was retried and
// verified.
json::object small_result() {
  return json::parse(R"({
    "run_id": "0123456789abcdef", "task": "demo", "status": "succeeded",
    "plan": [
      {"id": 1, "action": "read_file", "parameters": {"path": "a.txt"}},
      {"id": 2, "action": "read_file", "parameters": {"path": "b.txt"}},
      {"id": 3, "action": "llm", "parameters": {"prompt": "Sum up $step1.content"}, "dependencies": [2],
       "verify": {"non_empty": true}, "critical": true},
      {"id": 4, "action": "write_file", "parameters": {"path": "out.txt", "content": "$step3.text"}}],
    "levels": [[1, 2], [3], [4]], "critical_path": [1, 3, 4],
    "steps": [
      {"id": 1, "action": "read_file", "level": 0, "status": "succeeded", "attempts": 1, "started_ms": 1.0,
       "finished_ms": 3.0, "slot": 0, "output": {"content": "alpha"}, "error": null,
       "verification": {"status": "not_requested", "reason": ""}},
      {"id": 2, "action": "read_file", "level": 0, "status": "succeeded", "attempts": 1, "started_ms": 1.2,
       "finished_ms": 2.5, "slot": 1, "output": {"content": "beta"}, "error": null,
       "verification": {"status": "not_requested", "reason": ""}},
      {"id": 3, "action": "llm", "level": 1, "status": "succeeded", "attempts": 2, "started_ms": 3.1,
       "finished_ms": 9.0, "slot": 0, "output": {"text": "alpha, summed up"}, "error": null,
       "verification": {"status": "passed", "reason": "non_empty holds"}},
      {"id": 4, "action": "write_file", "level": 2, "status": "failed", "attempts": 1, "started_ms": 9.2,
       "finished_ms": 9.4, "slot": 0, "output": null, "error": "disk full",
       "verification": {"status": "not_requested", "reason": ""}}],
    "answer": "Line one\nLine two", "error": null,
    "metrics": {"wall_ms": 10.5, "llm_calls": 2, "prompt_tokens": 120, "completion_tokens": 30, "retries": 1,
                "cache_hits": 0, "max_concurrent_steps": 2, "planning_ms": 0.5}})")
      .as_object();
}

std::string page_of(const json::object& result, const dagent::report::ReportOptions& options = {}) {
  auto page = render_report(result, options);
  REQUIRE(page.has_value());
  return *page;
}

std::string sha256_base64(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  REQUIRE(EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr) == 1);
  unsigned char out[128];
  const int n = EVP_EncodeBlock(out, digest, static_cast<int>(size));
  return std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
}

}  // namespace

TEST_CASE("html_escape replaces the five characters that end text or attributes", "[report]") {
  CHECK(html_escape(R"(<a href="x" title='y'>&amp;</a>)") ==
        "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;");
  CHECK(html_escape("plain é text") == "plain é text");
}

TEST_CASE("render_report draws the plan by level with its dependencies and the critical path", "[report]") {
  const auto page = page_of(small_result());
  SECTION("one node per step, the path's nodes marked in order") {
    CHECK(count(page, "<g class=\"node ") == 4);
    CHECK(page.find(R"(<g class="node succeeded critical" data-id="1" data-step="0" data-target="step-0" data-cp="0")") !=
          std::string::npos);
    CHECK(page.find(R"(class="node succeeded" data-id="2")") != std::string::npos);
    CHECK(page.find(R"(class="node succeeded critical" data-id="3" data-step="2" data-target="step-2" data-cp="1")") !=
          std::string::npos);
    CHECK(page.find(R"(class="node failed critical" data-id="4" data-step="3" data-target="step-3" data-cp="2")") !=
          std::string::npos);
    CHECK(count(page, "level 0</text>") == 1);
    CHECK(count(page, "level 2</text>") == 1);
  }
  SECTION("edges come from the references and the explicit lists, those on the path highlighted") {
    CHECK(count(page, "<path class=\"edge") == 3);  // 1->3 ($step1), 2->3 (listed), 3->4 ($step3)
    CHECK(count(page, "<path class=\"edge critical\"") == 2);
  }
  SECTION("each step is a collapsed section with its parameters, output, error and verdict") {
    CHECK(count(page, "<section class=\"step ") == 4);
    CHECK(count(page, "<details>") == 4);  // closed: no `open` attribute
    CHECK(page.find("Sum up $step1.content") != std::string::npos);
    CHECK(page.find("alpha, summed up") != std::string::npos);
    CHECK(page.find("<pre class=\"error\">disk full</pre>") != std::string::npos);
    CHECK(page.find("non_empty holds") != std::string::npos);
    CHECK(page.find("2 attempts") != std::string::npos);
  }
  SECTION("totals and the answer with its newlines") {
    CHECK(page.find("<pre class=\"answer\">Line one\nLine two</pre>") != std::string::npos);
    CHECK(page.find("150 <small>(120 + 30)</small>") != std::string::npos);
    CHECK(page.find("10.5 ms") != std::string::npos);
  }
}

TEST_CASE("render_report puts steps on their slots with retries and verdicts marked", "[report]") {
  SECTION("one row per slot the result names") {
    const auto page = page_of(small_result());
    CHECK(count(page, ">slot 0</text>") == 1);
    CHECK(count(page, ">slot 1</text>") == 1);
    CHECK(count(page, ">slot 2</text>") == 0);
    CHECK(count(page, ">planning</text>") == 1);
    CHECK(count(page, "<g class=\"bar-group\"") == 4);
    CHECK(count(page, "class=\"retry-mark\"") == 1);
    CHECK(page.find("↻2</tspan>") != std::string::npos);
    CHECK(count(page, "<path class=\"verdict passed\"") == 1);
  }
  SECTION("a result without slots (an older one) gets rows where no bars overlap") {
    auto result = small_result();
    for (auto& s : result.at("steps").as_array()) s.as_object().erase("slot");
    const auto page = page_of(result);
    CHECK(count(page, ">slot 1</text>") == 1);
    CHECK(count(page, ">slot 2</text>") == 0);
  }
  SECTION("absurd slot numbers do not make empty rows") {
    auto result = small_result();
    result.at("steps").as_array()[1].as_object()["slot"] = 1000000;
    const auto page = page_of(result);
    CHECK(count(page, ">slot 1</text>") == 1);
    CHECK(count(page, ">slot 2</text>") == 0);
  }
  SECTION("for_each items are bars of their own, a step that never ran is counted") {
    auto result = small_result();
    auto& step = result.at("steps").as_array()[1].as_object();
    step["items"] = json::parse(R"([
      {"index": 0, "status": "succeeded", "attempts": 1, "duration_ms": 1, "started_ms": 1.2, "finished_ms": 2.2, "slot": 1},
      {"index": 1, "status": "failed", "attempts": 3, "duration_ms": 1, "started_ms": 1.3, "finished_ms": 2.3, "slot": 2,
       "error": "gone"}])");
    auto& last = result.at("steps").as_array()[3].as_object();
    last["status"] = "skipped";
    last["slot"] = -1;
    const auto page = page_of(result);
    CHECK(count(page, "<g class=\"bar-group\"") == 2 + 2);
    CHECK(page.find("#2[1] read_file") != std::string::npos);
    CHECK(page.find("1 step did not run") != std::string::npos);
    const auto skipped = page.substr(page.find("id=\"step-3\""));
    CHECK(skipped.substr(0, skipped.find("</summary>")).find("class=\"time\"") == std::string::npos);
    CHECK(page.find("↻3</tspan>") != std::string::npos);
  }
}

TEST_CASE("render_report escapes all model and tool text and can load nothing", "[report]") {
  auto result = small_result();
  result["run_id"] = std::string(k_hostile);
  result["task"] = std::string(k_hostile);
  result["error"] = std::string(k_hostile);
  result["answer"] = std::string(k_hostile) + "<a href=\"https://evil.example/\">x</a>";
  auto& steps = result.at("steps").as_array();
  steps[0].as_object()["action"] = std::string(k_hostile);
  steps[0].as_object()["status"] = std::string(k_hostile);
  steps[1].as_object()["output"] = std::string(k_hostile);
  steps[2].as_object()["verification"] = json::object{{"status", k_hostile}, {"reason", k_hostile}};
  steps[3].as_object()["error"] = std::string(k_hostile);
  result.at("plan").as_array()[1].as_object()["parameters"] = json::object{{k_hostile, k_hostile}};
  result.at("metrics").as_object()[k_hostile] = 1;
  dagent::report::ReportOptions options;
  options.goal = k_hostile;
  const auto page = page_of(result, options);
  CHECK(page.find("<div class=\"goal\">&lt;/details&gt;&lt;script&gt;") != std::string::npos);

  CHECK(page.find("<img") == std::string::npos);
  CHECK(page.find("<a href=\"https") == std::string::npos);
  CHECK(page.find("pwned=1</script>") == std::string::npos);
  CHECK(page.find("&lt;script&gt;document.body.dataset.pwned=1&lt;/script&gt;") != std::string::npos);
  CHECK(count(page, "<script>") == 2);   // the page's own, in head and at the end of body
  CHECK(count(page, "</script>") == 2);
  CHECK(count(page, "</details>") == 4 + 1);  // one per step and the metrics: none came from the text
  // Nothing is loaded from anywhere: no URL outside escaped text, and a policy that forbids it.
  std::string outside_text = std::regex_replace(page, std::regex(">[^<]*<"), "><");
  CHECK(outside_text.find("http://") == std::string::npos);
  CHECK(outside_text.find("https://") == std::string::npos);
  CHECK(page.find("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src "
                  "'unsafe-inline'; script-src 'sha256-") != std::string::npos);
}

TEST_CASE("the page's policy allows exactly its own scripts, by hash", "[report]") {
  const auto page = page_of(small_result());
  const std::regex script("<script>([^<]*)</script>");
  std::vector<std::string> hashes;
  for (auto it = std::sregex_iterator(page.begin(), page.end(), script); it != std::sregex_iterator(); ++it)
    hashes.push_back("'sha256-" + sha256_base64((*it)[1].str()) + "'");
  REQUIRE(hashes.size() == 2);
  CHECK(page.find("script-src " + hashes[0] + " " + hashes[1] + ";") != std::string::npos);
  CHECK(page.find("unsafe-inline'; img-src") == std::string::npos);  // scripts: hashes only
  CHECK(std::regex_search(page, std::regex(R"(<[^>]* on[a-z]+=)")) == false);  // no inline handlers
}

TEST_CASE("render_report cuts each text and the whole of them", "[report]") {
  auto result = small_result();
  result.at("steps").as_array()[0].as_object()["output"] = std::string(200000, 'x');
  result.at("steps").as_array()[1].as_object()["output"] = std::string(300000, 'y');
  SECTION("a field is cut at max_field_bytes, saying how much is left out") {
    const auto page = page_of(result);
    CHECK(page.find("… (" + std::to_string(200000 - 65536) + " bytes more)") != std::string::npos);
    CHECK(count(page, std::string(65536, 'x')) == 1);
    CHECK(page.find(std::string(65537, 'x')) == std::string::npos);
  }
  SECTION("the texts together stop at max_text_bytes") {
    dagent::report::ReportOptions options;
    options.max_text_bytes = 100000;
    const auto page = page_of(result, options);
    // 65 536 x, then the y take what the two small parameter texts left of the 100 000.
    CHECK(count(page, std::string(34000, 'y')) == 1);
    CHECK(page.find(std::string(34500, 'y')) == std::string::npos);
    CHECK(count(page, "(left out: the report is at its size limit)") >= 1);
    CHECK(page.size() < 150000);
  }
  SECTION("a multi-byte character is never split") {
    std::string wide;
    for (int i = 0; i < 60000; ++i) wide += "é";  // 2 bytes each: byte 65 536 is inside one
    result.at("steps").as_array()[0].as_object()["output"] = "a" + wide;
    const auto page = page_of(result);
    CHECK(page.find("… (" + std::to_string(120001 - 65535) + " bytes more)") != std::string::npos);
  }
}

TEST_CASE("render_report gives a page or a clear error for any JSON", "[report]") {
  SECTION("no steps list: not a result") {
    auto r = render_report(json::object{{"run_id", "x"}});
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == "not a dagent run result: it has no \"steps\" list");
    CHECK_FALSE(render_report(json::object{{"steps", "many"}}).has_value());
  }
  SECTION("every field of the wrong type or out of range") {
    const auto odd = json::parse(R"({
      "run_id": 7, "task": ["x"], "status": {"a": 1}, "plan": "nope", "levels": [[1, "x"], 3, [999999999999]],
      "critical_path": [1, 1, -5, "x", 2.5, 1e300], "answer": {"not": "text"}, "error": 12,
      "metrics": {"wall_ms": -4, "planning_ms": 1e308, "prompt_tokens": "many"},
      "steps": [7, null, "x", {"id": "one"}, {"id": 1, "level": -3, "started_ms": 1e300, "finished_ms": -1,
                "slot": 1e12, "attempts": -2, "items": [1, {"index": "x", "slot": -9}], "verification": 3},
                {"id": 1, "level": 2147483647, "status": "succeeded", "started_ms": 5, "finished_ms": 1},
                {"id": 2, "items": "no"}]})");
    auto page = render_report(odd.as_object());
    REQUIRE(page.has_value());
    CHECK(count(*page, "<section class=\"step ") == 7);
    CHECK(page->find("<body>") != std::string::npos);  // data-* are the script's to set
  }
  SECTION("a duration past any real run is written as a number, not converted to minutes") {
    auto result = small_result();
    result["metrics"].as_object()["wall_ms"] = 1.85185e49;  // fuzz/report found it: whole minutes overflowed
    const auto page = page_of(result);
    CHECK(page.find("1.85e+49 ms") != std::string::npos);
  }
  SECTION("a plan with a cycle and a dangling reference still draws its steps") {
    auto result = small_result();
    result["plan"] = json::parse(R"([
      {"id": 1, "action": "read_file", "parameters": {"path": "$step4.x"}},
      {"id": 3, "action": "llm", "parameters": {"prompt": "$step9.text"}, "dependencies": [1]},
      {"id": 4, "action": "write_file", "parameters": {"content": "$step3.text"}}])");
    const auto page = page_of(result);
    CHECK(count(page, "<g class=\"node ") == 4);
    CHECK(count(page, "<path class=\"edge") == 3);  // 4->1, 1->3, 3->4; step 9 is not there
  }
  SECTION("deep output is shown without running out of stack") {
    json::value deep = json::array();
    json::value* at = &deep;
    for (int i = 0; i < 5000; ++i) at = &at->as_array().emplace_back(json::array());
    auto result = small_result();
    result.at("steps").as_array()[0].as_object()["output"] = deep;
    const auto page = page_of(result);
    CHECK(page.find("[[[[") != std::string::npos);
  }
  SECTION("invalid UTF-8, control characters and bidi overrides do not reach the page") {
    auto result = small_result();
    result.at("steps").as_array()[0].as_object()["output"] = std::string("a\xff\xfe b\x1b[31m c\xe2\x80\xae d\x01");
    const auto page = page_of(result);
    CHECK(page.find("a\xef\xbf\xbd\xef\xbf\xbd b c d") != std::string::npos);
  }
  SECTION("too many steps to draw: a note instead of a graph, and past a limit no sections") {
    json::object result = small_result();
    json::array steps, plan;
    for (int i = 1; i <= 30; ++i) {
      steps.push_back(json::object{{"id", i}, {"action", "x"}, {"status", "succeeded"}, {"started_ms", i},
                                   {"finished_ms", i + 1}, {"slot", i % 3}});
      plan.push_back(json::object{{"id", i}, {"action", "x"}, {"parameters", json::object{}}});
    }
    result["steps"] = steps;
    result["plan"] = plan;
    dagent::report::ReportOptions options;
    options.max_drawn_steps = 10;
    const auto page = page_of(result, options);
    CHECK(page.find("30 steps: too many to draw") != std::string::npos);
    CHECK(page.find("Only the first 10 of 30 bars are drawn") != std::string::npos);
    CHECK(count(page, "<section class=\"step ") == 30);
    options.max_listed_steps = 25;
    const auto listed = page_of(result, options);
    CHECK(count(listed, "<section class=\"step ") == 25);
    CHECK(listed.find("… 5 steps more, not listed (the report lists 25).") != std::string::npos);
  }
}
