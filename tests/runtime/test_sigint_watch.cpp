// RunOptions::stop_on_sigint and the SigintWatch behind it: the program's own SIGINT handler is
// back after a run, and a SIGINT the run did not act on reaches it.

#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"
#include "runtime/sigint_watch.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "config/config.hpp"
#include "support/process.hpp"
#include "support/test_tools.hpp"

namespace {

namespace json = boost::json;
using namespace dagent;

volatile std::sig_atomic_t g_caught = 0;
extern "C" void count_sigint(int) { g_caught = g_caught + 1; }

/// Installs `handler` for SIGINT for the scope, then puts back what was there (Catch's own).
class HandlerScope {
 public:
  explicit HandlerScope(void (*handler)(int)) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &saved_);
    g_caught = 0;
  }
  ~HandlerScope() { ::sigaction(SIGINT, &saved_, nullptr); }
  HandlerScope(const HandlerScope&) = delete;
  HandlerScope& operator=(const HandlerScope&) = delete;

 private:
  struct sigaction saved_ {};
};

void (*current_handler())(int) {
  struct sigaction now {};
  ::sigaction(SIGINT, nullptr, &now);
  return now.sa_handler;
}

}  // namespace

TEST_CASE("stop_on_sigint puts back the SIGINT handler the program had before the run", "[runtime][sigint]") {
  test::TempDir dir;
  Runtime runtime = dagent::runtime::make_runtime(config::Config{});
  REQUIRE(runtime.register_tool(std::make_shared<test::SleepTool>()).has_value());
  HandlerScope scope(count_sigint);
  RunOptions options;
  options.stop_on_sigint = true;
  bool handler_was_ours = true;
  options.on_event = [&](const StepEvent& e) {
    if (e.step_id != 1 || e.status != StepStatus::running) return;
    handler_was_ours = current_handler() == count_sigint;
    std::raise(SIGINT);
  };
  const auto plan = json::parse(R"([{"id": 1, "action": "sleep", "parameters": {"ms": 30000}}])");

  SECTION("after a run the SIGINT interrupted") {
    auto outcome = runtime.run_plan(plan, {}, dir.path(), options);
    REQUIRE(outcome.problems.empty());
    CHECK(outcome.result.interrupted);
    CHECK_FALSE(handler_was_ours);  // the run had its own while it went
    CHECK(g_caught == 0);           // the run took that SIGINT, not the program
  }
  SECTION("after a run that saw none") {
    options.on_event = {};
    auto outcome = runtime.run_plan(json::parse(R"([{"id": 1, "action": "sleep", "parameters": {"ms": 1}}])"), {},
                                    dir.path(), options);
    REQUIRE(outcome.exit_code() == 0);
    CHECK_FALSE(outcome.result.interrupted);
  }
  CHECK(current_handler() == count_sigint);
  std::raise(SIGINT);  // the program's again
  CHECK(g_caught == 1);

  SECTION("and a second run takes SIGINT again") {
    auto again = runtime.run_plan(plan, {}, dir.path(), options);
    CHECK(again.result.interrupted);
    CHECK(g_caught == 1);
    CHECK(current_handler() == count_sigint);
  }
}

TEST_CASE("A SIGINT the run did not act on reaches the handler that was there before", "[runtime][sigint]") {
  boost::asio::io_context io;  // never run: the watch's read never completes
  HandlerScope scope(count_sigint);
  bool acted = false;
  {
    runtime::SigintWatch watch(io.get_executor(), [&] { acted = true; });
    REQUIRE(watch.active());
    CHECK(current_handler() != count_sigint);
    std::raise(SIGINT);
    CHECK(g_caught == 0);
  }
  CHECK(g_caught == 1);
  CHECK(current_handler() == count_sigint);
  io.run();  // the read, cancelled when the watch went, calls nothing
  CHECK_FALSE(acted);
}

TEST_CASE("SigintWatch leaves an ignored SIGINT ignored and lets only one watch take it", "[runtime][sigint]") {
  boost::asio::io_context io;
  SECTION("ignored") {
    HandlerScope scope(SIG_IGN);
    runtime::SigintWatch watch(io.get_executor(), [] {});
    CHECK_FALSE(watch.active());
    CHECK(current_handler() == SIG_IGN);
  }
  SECTION("one at a time") {
    HandlerScope scope(count_sigint);
    runtime::SigintWatch first(io.get_executor(), [] {});
    runtime::SigintWatch second(io.get_executor(), [] {});
    CHECK(first.active());
    CHECK_FALSE(second.active());
  }
}
