#include "cli/live_view.hpp"

#include <catch2/catch.hpp>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "support/captured_file.hpp"

namespace {

using dagent::test::Captured;

using namespace dagent;
using dagent::cli::LiveView;

// What a terminal shows after `bytes`: the lines left once the cursor-up (ESC[nF) and erase-below
// (ESC[J) sequences the live view draws with are applied; colours are ignored.
std::vector<std::string> screen(const std::string& bytes) {
  std::vector<std::string> lines{""};
  std::size_t row = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (c == '\x1b' && i + 1 < bytes.size() && bytes[i + 1] == '[') {
      std::size_t j = i + 2;
      std::size_t n = 0;
      while (j < bytes.size() && std::isdigit(static_cast<unsigned char>(bytes[j]))) n = n * 10 + (bytes[j++] - '0');
      if (j < bytes.size() && bytes[j] == 'F') row = row >= n ? row - n : 0;
      if (j < bytes.size() && bytes[j] == 'J') lines.resize(row + 1), lines[row].clear();
      i = j;
      continue;
    }
    if (c == '\n') {
      if (++row == lines.size()) lines.emplace_back();
      continue;
    }
    lines[row] += c;
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

}  // namespace

TEST_CASE("live_view_stale_progress_line: the plan's arrival clears the planning progress line", "[cli][live_view]") {
  Captured out;
  REQUIRE(out.file);
  LiveView view(LiveView::Mode::terminal, out.file, out.file);
  view.on_planning(PlanningEvent{PlanningPhase::planning, false, 1.0, {}});
  view.on_planning(PlanningEvent{PlanningPhase::planning, true, 2.0, {}});
  RunResult skeleton;
  skeleton.run_id = "r1";
  skeleton.task = "goal";
  skeleton.levels = {{1}};
  view.start(skeleton);
  view.on_event(StepEvent{1, "echo", StepStatus::running, VerificationStatus::not_requested, 1, 3.0, {}});
  view.on_event(StepEvent{1, "echo", StepStatus::succeeded, VerificationStatus::not_requested, 1, 4.0, {}});
  const auto lines = screen(out.text());
  INFO(out.text());
  bool run_line = false;
  for (const auto& line : lines) {
    CHECK(line.find("[0/0]") == std::string::npos);  // drawn while planning, stale once the plan is known
    run_line = run_line || line.rfind("run r1: task goal", 0) == 0;
  }
  CHECK(run_line);  // and the run's own line was not erased in its place
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.back().find("[1/1] 0 running") != std::string::npos);
}

TEST_CASE("live_view_untrusted_text: escape sequences in step text, errors and the streamed answer never reach the terminal",
          "[cli][live_view]") {
  Captured out;
  REQUIRE(out.file);
  LiveView view(LiveView::Mode::terminal, out.file, out.file);
  RunResult skeleton;
  skeleton.run_id = "r1";
  skeleton.task = "goal\x1b]0;owned\x07";
  skeleton.levels = {{1, 2}};
  view.start(skeleton);
  view.on_planning(PlanningEvent{PlanningPhase::intent, true, 1.0, "intent \x1b[2J"});
  view.on_event(StepEvent{1, "tool\x1b[31m", StepStatus::running, VerificationStatus::not_requested, 1, 3.0, {}});
  view.on_event(StepEvent{1, "tool\x1b[31m", StepStatus::failed, VerificationStatus::not_requested, 1, 4.0,
                          "boom\r\x1b]52;c;cm0gLXJm\x07"});
  // The answer streams in pieces that cut the sequences in two.
  view.on_answer("The answer \x1b]0;ti");
  view.on_answer("tle\x07is \x1b[");
  view.on_answer("1mbold\x1b[0m.");
  view.on_planning(PlanningEvent{PlanningPhase::synthesis, true, 5.0, {}});
  RunResult result = skeleton;
  result.steps.resize(1);
  result.steps[0].id = 1;
  result.steps[0].action = "tool\x1b[31m";
  result.steps[0].status = StepStatus::failed;
  result.steps[0].error = "boom\x1b[8m";
  view.finish(result);
  const std::string bytes = out.text();
  INFO(bytes);
  // Only the view's own cursor (ESC[nF, ESC[J) and colour (ESC[36m, ESC[0m) codes remain.
  std::string stripped = bytes;
  for (const char* own : {"\x1b[J", "\x1b[36m", "\x1b[0m"}) {
    for (auto at = stripped.find(own); at != std::string::npos; at = stripped.find(own)) stripped.erase(at, std::string(own).size());
  }
  for (auto at = stripped.find("\x1b["); at != std::string::npos; at = stripped.find("\x1b[", at)) {
    auto end = at + 2;
    while (end < stripped.size() && std::isdigit(static_cast<unsigned char>(stripped[end]))) ++end;
    REQUIRE(end < stripped.size());
    CHECK(stripped[end] == 'F');
    stripped.erase(at, end + 1 - at);
  }
  CHECK(stripped.find('\x1b') == std::string::npos);
  CHECK(stripped.find('\x07') == std::string::npos);
  CHECK(stripped.find('\r') == std::string::npos);
  CHECK(stripped.find("The answer is bold.") != std::string::npos);
  CHECK(stripped.find("step 1 tool failed: boom\n") != std::string::npos);
  CHECK(stripped.find("run r1: task goal,") != std::string::npos);
}

TEST_CASE("live_view_progress: a running step's progress shows beside it, its start time stays", "[cli][live_view]") {
  Captured out;
  REQUIRE(out.file);
  LiveView view(LiveView::Mode::terminal, out.file, out.file);
  RunResult skeleton;
  skeleton.run_id = "r1";
  skeleton.task = "t";
  skeleton.levels = {{1}};
  view.start(skeleton);
  view.on_event(StepEvent{1, "srv.long", StepStatus::running, VerificationStatus::not_requested, 1, 10.0, {}});
  view.on_event(StepEvent{1, "srv.long", StepStatus::running, VerificationStatus::not_requested, 1, 510.0,
                          "progress 3/10: copying \x1b[2J"});
  view.on_planning(PlanningEvent{PlanningPhase::planning, false, 1010.0, {}});  // forces a redraw at 1010 ms
  const auto lines = screen(out.text());
  INFO(out.text());
  bool shown = false;
  for (const auto& line : lines)
    shown = shown || (line.find("step 1 srv.long  1000 ms  progress 3/10: copying") != std::string::npos &&
                      line.find("\x1b[2J") == std::string::npos);
  CHECK(shown);
}
