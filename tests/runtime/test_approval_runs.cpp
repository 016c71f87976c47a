// tools.approval through the embedding API: the approval callback is a coroutine awaited on the
// runtime's loop; decisions are recorded, replayed, and asked again for steps a resume re-runs.

#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <fstream>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "config/config.hpp"
#include "support/process.hpp"
#include "support/test_tools.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent;
using namespace std::chrono_literals;

config::Config approval_config(std::vector<std::string> patterns = {"write_*"}) {
  config::Config cfg;
  cfg.memory.enabled = false;
  cfg.tools.approval = std::move(patterns);
  return cfg;
}

// What the test's approval callback saw and answers.
struct Asker {
  std::vector<ApprovalAnswer> answers;       // in order; the last one repeats
  std::string reason;
  std::chrono::milliseconds delay{5};        // a timer awaited before answering: the callback suspends
  std::vector<ApprovalRequest> seen;
  int outstanding = 0;
  int max_outstanding = 0;
  bool raise_sigint = false;                 // Ctrl-C while asking, then wait "for ever"
  bool completed_after_sigint = false;
  bool hold_first = false;                   // the first request waits until ReleaseWhenDone cancels `hold`
  std::unique_ptr<asio::steady_timer> hold;
  bool released_by_event = false;
};

asio::awaitable<ApprovalDecision> answer(Asker* a, ApprovalRequest request) {
  ++a->outstanding;
  a->max_outstanding = std::max(a->max_outstanding, a->outstanding);
  a->seen.push_back(request);
  const auto index = a->seen.size() - 1;
  asio::steady_timer timer(co_await asio::this_coro::executor, a->delay);
  if (a->raise_sigint) {
    std::raise(SIGINT);
    timer.expires_after(1h);
  }
  if (a->hold_first && index == 0) {
    // A generous bound, so that a scheduler that blocks other steps fails the test instead of hanging it.
    a->hold = std::make_unique<asio::steady_timer>(co_await asio::this_coro::executor, 60s);
    co_await a->hold->async_wait(asio::as_tuple(asio::use_awaitable));
  } else {
    co_await timer.async_wait(asio::use_awaitable);  // throws when the run is interrupted
  }
  if (a->raise_sigint) a->completed_after_sigint = true;
  --a->outstanding;
  ApprovalDecision d;
  d.answer = a->answers.empty() ? ApprovalAnswer::allow : a->answers[std::min(index, a->answers.size() - 1)];
  d.reason = a->reason;
  co_return d;
}

struct AskerHook {
  Asker* asker;
  asio::awaitable<ApprovalDecision> operator()(const ApprovalRequest& r) const { return answer(asker, r); }
};

// Releases the held first request once step `id` has succeeded: proof that it ran meanwhile.
struct ReleaseWhenDone {
  Asker* asker;
  int id;
  void operator()(const StepEvent& e) const {
    if (e.step_id == id && e.status == StepStatus::succeeded && asker->hold) {
      asker->released_by_event = true;
      asker->hold->cancel();
    }
  }
};

std::vector<json::object> events_of(const std::filesystem::path& recording, std::string_view type) {
  std::vector<json::object> out;
  std::ifstream in(recording);
  for (std::string line; std::getline(in, line);) {
    auto v = json::parse(line).as_object();
    if (v.at("type").as_string() == type) out.push_back(std::move(v));
  }
  return out;
}

const auto k_plan = json::parse(R"([
  {"id": 1, "action": "read_file", "parameters": {"path": "src.txt"}},
  {"id": 2, "action": "write_file", "parameters": {"path": "out.txt", "content": "$step1.content"}},
  {"id": 3, "action": "write_file", "parameters": {"path": "more.txt", "content": "more"}, "dependencies": [2]}
])");

}  // namespace

TEST_CASE("the approval callback is a coroutine asked with resolved parameters: allow, deny, always", "[runtime][approval]") {
  test::TempDir dir;
  dir.write("src.txt", "alpha");
  Runtime runtime = dagent::runtime::make_runtime(approval_config());
  Asker asker;
  RunOptions options;
  options.approve = AskerHook{&asker};

  SECTION("allow: each matching call is asked, with its references resolved; read_file is not") {
    asker.answers = {ApprovalAnswer::allow};
    auto outcome = runtime.run_plan(k_plan, {}, dir.path(), options);
    REQUIRE(outcome.exit_code() == 0);
    REQUIRE(asker.seen.size() == 2);
    CHECK(asker.seen[0].step_id == 2);
    CHECK(asker.seen[0].tool == "write_file");
    CHECK(asker.seen[0].pattern == "write_*");
    CHECK(asker.seen[0].run_id == outcome.result.run_id);
    CHECK(asker.seen[0].parameters.at("content") == "alpha");  // $step1.content, resolved
    CHECK(asker.seen[1].step_id == 3);
    CHECK(test::read_text(dir.path() / "out.txt") == "alpha");
    CHECK(test::step_of(outcome.result, 2).approval == "allow");
    CHECK(test::step_of(outcome.result, 2).approval_by == "callback");
    CHECK(test::step_of(outcome.result, 1).approval.empty());
    auto j = to_json(outcome.result);
    CHECK(j.at("steps").as_array()[1].at("approval") == json::parse(R"({"decision": "allow", "by": "callback"})"));
    CHECK_FALSE(j.at("steps").as_array()[0].as_object().contains("approval"));
  }
  SECTION("deny: the step fails saying so, nothing is written, its dependents are skipped") {
    asker.answers = {ApprovalAnswer::deny};
    asker.reason = "not today";
    auto outcome = runtime.run_plan(k_plan, {}, dir.path(), options);
    CHECK(outcome.exit_code() == 1);
    CHECK(asker.seen.size() == 1);
    const auto& s2 = test::step_of(outcome.result, 2);
    CHECK(s2.status == StepStatus::failed);
    CHECK(s2.error == "denied by the user (tools.approval): not today");
    CHECK(s2.approval == "deny");
    CHECK(test::step_of(outcome.result, 3).status == StepStatus::skipped);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "out.txt"));
  }
  SECTION("allow_always: asked once for two calls of the same tool") {
    asker.answers = {ApprovalAnswer::allow_always, ApprovalAnswer::deny};
    auto outcome = runtime.run_plan(k_plan, {}, dir.path(), options);
    REQUIRE(outcome.exit_code() == 0);
    CHECK(asker.seen.size() == 1);
    CHECK(test::step_of(outcome.result, 2).approval == "allow_always");
    CHECK(test::step_of(outcome.result, 3).approval == "allow");
    CHECK(test::step_of(outcome.result, 3).approval_by == "always");
    CHECK(test::read_text(dir.path() / "more.txt") == "more");
  }
  SECTION("a pattern that matches nothing asks nothing") {
    Runtime other = dagent::runtime::make_runtime(approval_config({"memory_*", "she?l", "[x]*"}));
    auto outcome = other.run_plan(k_plan, {}, dir.path(), options);
    CHECK(outcome.exit_code() == 0);
    CHECK(asker.seen.empty());
  }
}

TEST_CASE("without a callback a step that needs approval fails, unless approved in advance", "[runtime][approval]") {
  test::TempDir dir;
  dir.write("src.txt", "alpha");
  Runtime runtime = dagent::runtime::make_runtime(approval_config({"write_file", "llm"}));
  RunOptions options;
  SECTION("no callback: needs approval, nothing written") {
    auto outcome = runtime.run_plan(k_plan, {}, dir.path(), options);
    CHECK(outcome.exit_code() == 1);
    CHECK(test::step_of(outcome.result, 2).error ==
          "needs approval (tools.approval: write_file); give --approve write_file or --yes");
    CHECK(test::step_of(outcome.result, 2).approval.empty());
    CHECK_FALSE(std::filesystem::exists(dir.path() / "out.txt"));
  }
  SECTION("approve_tools (--approve) by name or glob") {
    options.approve_tools = {GENERATE(std::string("write_file"), std::string("write_*"))};
    auto outcome = runtime.run_plan(k_plan, {}, dir.path(), options);
    CHECK(outcome.exit_code() == 0);
    CHECK(test::step_of(outcome.result, 2).approval_by == "flag");
  }
  SECTION("approve_tools for another tool does not approve this one") {
    options.approve_tools = {"llm"};
    CHECK(runtime.run_plan(k_plan, {}, dir.path(), options).exit_code() == 1);
  }
  SECTION("approve_all (--yes)") {
    options.approve_all = true;
    auto outcome = runtime.run_plan(k_plan, {}, dir.path(), options);
    CHECK(outcome.exit_code() == 0);
    CHECK(test::read_text(dir.path() / "more.txt") == "more");
  }
}

TEST_CASE("concurrent approvals are asked one at a time, in order, while other steps run", "[runtime][approval]") {
  test::TempDir dir;
  dir.write("src.txt", "alpha");
  Runtime runtime = dagent::runtime::make_runtime(approval_config());
  Asker asker;
  asker.answers = {ApprovalAnswer::allow};
  RunOptions options;
  options.approve = AskerHook{&asker};
  options.on_event = ReleaseWhenDone{&asker, 3};
  auto plan = json::parse(R"([
    {"id": 1, "action": "write_file", "parameters": {"path": "a.txt", "content": "a"}},
    {"id": 2, "action": "write_file", "parameters": {"path": "b.txt", "content": "b"}},
    {"id": 3, "action": "read_file", "parameters": {"path": "src.txt"}}
  ])");
  // The first request is held until step 3 has succeeded: it can only succeed while step 1 waits.
  asker.hold_first = true;
  auto outcome = runtime.run_plan(plan, {}, dir.path(), options);
  REQUIRE(outcome.exit_code() == 0);
  CHECK(asker.max_outstanding == 1);
  REQUIRE(asker.seen.size() == 2);
  CHECK(asker.seen[0].step_id == 1);
  CHECK(asker.seen[1].step_id == 2);
  CHECK(asker.released_by_event);
  CHECK(test::read_text(dir.path() / "b.txt") == "b");
}

TEST_CASE("the wait for approval is not part of executor.step_timeout_ms", "[runtime][approval]") {
  test::TempDir dir;
  dir.write("src.txt", "alpha");
  auto cfg = approval_config();
  cfg.executor.step_timeout_ms = 20;
  Runtime runtime = dagent::runtime::make_runtime(cfg);
  Asker asker;
  asker.delay = 200ms;  // ten step timeouts
  RunOptions options;
  options.approve = AskerHook{&asker};
  auto outcome = runtime.run_plan(k_plan, {}, dir.path(), options);
  INFO(test::step_of(outcome.result, 2).error);
  CHECK(outcome.exit_code() == 0);
  CHECK(asker.seen.size() == 2);
}

TEST_CASE("Ctrl-C while the callback is asked interrupts the run and cancels the question", "[runtime][approval]") {
  test::TempDir dir;
  dir.write("src.txt", "alpha");
  Runtime runtime = dagent::runtime::make_runtime(approval_config());
  Asker asker;
  asker.raise_sigint = true;
  RunOptions options;
  options.approve = AskerHook{&asker};
  options.stop_on_sigint = true;
  auto outcome = runtime.run_plan(k_plan, {}, dir.path(), options);
  CHECK(outcome.exit_code() == 1);
  CHECK(outcome.result.interrupted);
  CHECK(outcome.result.error == "interrupted");
  CHECK(asker.seen.size() == 1);
  CHECK_FALSE(asker.completed_after_sigint);  // its hour-long wait was cancelled
  CHECK(test::step_of(outcome.result, 2).status == StepStatus::failed);
  CHECK_THAT(test::step_of(outcome.result, 2).error, Catch::Contains("cancelled"));
  CHECK(test::step_of(outcome.result, 3).status == StepStatus::skipped);
  CHECK_FALSE(std::filesystem::exists(dir.path() / "out.txt"));
}

TEST_CASE("decisions are recorded, a replay answers them from the recording, never the callback", "[runtime][approval]") {
  test::TempDir dir;
  dir.write("src.txt", "alpha");
  Runtime runtime = dagent::runtime::make_runtime(approval_config());
  const auto plan = json::parse(R"([
    {"id": 1, "action": "write_file", "parameters": {"path": "a.txt", "content": "a"}},
    {"id": 2, "action": "write_file", "parameters": {"path": "b.txt", "content": "b"}, "dependencies": [1]},
    {"id": 3, "action": "write_file", "parameters": {"path": "c.txt", "content": "c"}, "dependencies": [2]},
    {"id": 4, "action": "write_file", "parameters": {"path": "d.txt", "content": "d"}}
  ])");
  Asker asker;
  // Ready order: 1 and 4 first (1 on the longer chain), then 2, then 3.
  asker.answers = {ApprovalAnswer::allow, ApprovalAnswer::deny, ApprovalAnswer::allow};
  asker.reason = "no d";
  RunOptions options;
  options.approve = AskerHook{&asker};
  options.record_file = dir.path() / "run.jsonl";
  auto recorded = runtime.run_plan(plan, {}, dir.path(), options);
  CHECK(recorded.exit_code() == 1);
  REQUIRE(asker.seen.size() == 4);
  CHECK(asker.seen[0].step_id == 1);
  CHECK(asker.seen[1].step_id == 4);
  CHECK(test::step_of(recorded.result, 4).error == "denied by the user (tools.approval): no d");
  auto events = events_of(options.record_file, "approval");
  REQUIRE(events.size() == 4);
  CHECK(events[1].at("step") == 4);
  CHECK(events[1].at("action") == "write_file");
  CHECK(events[1].at("decision") == "deny");
  CHECK(events[1].at("by") == "callback");
  CHECK(events[1].at("reason") == "no d");
  CHECK(events[1].at("pattern") == "write_*");
  CHECK(events[1].at("params_sha256").as_string().size() == 64);
  for (const char* f : {"a.txt", "b.txt", "c.txt"}) std::filesystem::remove(dir.path() / f);

  SECTION("a replay makes the same decisions without asking") {
    Asker never;
    RunOptions replay;
    replay.approve = AskerHook{&never};
    replay.replay_file = options.record_file;
    auto again = runtime.run_plan(plan, {}, dir.path(), replay);
    CHECK(again.exit_code() == 1);
    CHECK(never.seen.empty());
    for (int id : {1, 2, 3, 4}) {
      INFO("step " << id);
      CHECK(test::step_of(again.result, id).status == test::step_of(recorded.result, id).status);
      CHECK(test::step_of(again.result, id).approval == test::step_of(recorded.result, id).approval);
      CHECK(test::step_of(again.result, id).approval_by == "recording");
    }
    CHECK(test::step_of(again.result, 4).error == "denied by the user (tools.approval): no d");
    CHECK(test::read_text(dir.path() / "c.txt") == "c");
  }
  SECTION("a replay of a call the recording has no decision for needs approval, unless approved in advance") {
    auto changed = plan;
    changed.as_array()[2].as_object()["parameters"].as_object()["content"] = "C!";
    RunOptions replay;
    replay.replay_file = options.record_file;
    auto again = runtime.run_plan(changed, {}, dir.path(), replay);
    CHECK(again.exit_code() == 1);
    CHECK(test::step_of(again.result, 2).status == StepStatus::succeeded);
    CHECK(test::step_of(again.result, 3).error ==
          "needs approval (tools.approval: write_*); give --approve write_file or --yes (the recording holds no "
          "decision for this call)");
    replay.approve_tools = {"write_file"};
    auto approved = runtime.run_plan(changed, {}, dir.path(), replay);
    CHECK(test::step_of(approved.result, 3).status == StepStatus::succeeded);
    CHECK(test::step_of(approved.result, 3).approval_by == "flag");
    CHECK(test::step_of(approved.result, 4).approval == "deny");  // the recording still answers first
  }
}

TEST_CASE("a recording made without tools.approval replays with it only when approved in advance", "[runtime][approval]") {
  test::TempDir dir;
  dir.write("src.txt", "alpha");
  RunOptions options;
  options.record_file = dir.path() / "old.jsonl";
  Runtime before = dagent::runtime::make_runtime(approval_config({}));
  REQUIRE(before.run_plan(k_plan, {}, dir.path(), options).exit_code() == 0);
  Runtime now = dagent::runtime::make_runtime(approval_config());
  RunOptions replay;
  replay.replay_file = options.record_file;
  auto refused = now.run_plan(k_plan, {}, dir.path(), replay);
  CHECK(refused.exit_code() == 1);
  CHECK_THAT(test::step_of(refused.result, 2).error, Catch::StartsWith("needs approval (tools.approval: write_*)"));
  replay.approve_all = true;
  CHECK(now.run_plan(k_plan, {}, dir.path(), replay).exit_code() == 0);
}

TEST_CASE("a resumed run asks again only for the steps it runs again", "[runtime][approval]") {
  test::TempDir dir;
  dir.write("src.txt", "alpha");
  Runtime runtime = dagent::runtime::make_runtime(approval_config());
  Asker first;
  first.answers = {ApprovalAnswer::allow, ApprovalAnswer::deny};  // step 2 allowed, step 3 denied
  RunOptions options;
  options.approve = AskerHook{&first};
  options.record_file = dir.path() / "run.jsonl";
  auto failed = runtime.run_plan(k_plan, {}, dir.path(), options);
  REQUIRE(failed.exit_code() == 1);
  CHECK(test::step_of(failed.result, 3).approval == "deny");

  Asker second;
  second.answers = {ApprovalAnswer::allow};
  RunOptions resume;
  resume.approve = AskerHook{&second};
  resume.resume_file = options.record_file;
  auto resumed = runtime.run_plan(k_plan, {}, dir.path(), resume);
  INFO((resumed.problems.empty() ? std::string() : resumed.problems[0]));
  REQUIRE(resumed.exit_code() == 0);
  REQUIRE(second.seen.size() == 1);  // step 2 kept its recorded output: not asked, not run
  CHECK(second.seen[0].step_id == 3);
  CHECK(test::read_text(dir.path() / "more.txt") == "more");
  auto events = events_of(options.record_file, "approval");
  REQUIRE(events.size() == 3);
  CHECK(events[2].at("step") == 3);
  CHECK(events[2].at("decision") == "allow");
}

TEST_CASE("a tools.approval name that names no tool is refused before anything runs", "[runtime][approval]") {
  test::TempDir dir;
  dir.write("src.txt", "alpha");
  Runtime typo = dagent::runtime::make_runtime(approval_config({"write-file"}));
  auto outcome = typo.run_plan(k_plan, {}, dir.path());
  CHECK(outcome.exit_code() == 2);
  REQUIRE(outcome.problems.size() == 1);
  CHECK_THAT(outcome.problems[0], Catch::StartsWith("tools.approval: 'write-file' names no tool"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "out.txt"));
  // A built-in tool left out of tools.enabled, a registered tool and any glob are fine.
  auto cfg = approval_config({"memory_add", "echo", "nothing_*"});
  Runtime fine = dagent::runtime::make_runtime(cfg);
  REQUIRE(fine.register_tool(std::make_shared<test::EchoTool>()).has_value());
  CHECK(fine.run_plan(k_plan, {}, dir.path()).exit_code() == 0);
}
