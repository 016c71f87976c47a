// BlockingTool::invoke with the built-in tools: run() on the worker pool, the step resumed on
// the loop, and cancellation that completes the step while run() is still blocked.

#include "tools/read_file_tool.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <future>
#include <optional>
#include <string_view>
#include <thread>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "tool_test_support.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using dagent::ToolErrc;
using dagent::ToolResult;
using dagent::tools::test::object;
using dagent::tools::test::WorkspaceFixture;

// A tool whose run() reports where it runs and then waits until the test releases it.
class GatedTool final : public dagent::BlockingTool {
 public:
  std::string_view name() const override { return "gated"; }
  std::string_view description() const override { return "blocks until released"; }
  const json::object& parameters_schema() const override { return schema_; }

  ToolResult run(const json::object&, const dagent::ToolContext&) override {
    ran_on_ = std::this_thread::get_id();
    started_.set_value();
    release_future_.wait();
    finished_ = true;
    return json::value("released");
  }

  void wait_until_started() { started_future_.wait(); }
  void release() { release_.set_value(); }
  bool finished() const { return finished_; }
  std::thread::id ran_on() const { return ran_on_; }

 private:
  json::object schema_{{"type", "object"}};
  std::promise<void> started_;
  std::future<void> started_future_ = started_.get_future();
  std::promise<void> release_;
  std::future<void> release_future_ = release_.get_future();
  std::atomic<bool> finished_{false};
  std::thread::id ran_on_;
};

struct Outcome {
  std::exception_ptr error;
  std::optional<ToolResult> result;
  std::thread::id resumed_on;
};

asio::awaitable<ToolResult> call_tool(dagent::Tool& tool, json::object params, dagent::ToolContext ctx,
                                      Outcome& outcome) {
  ToolResult result = co_await tool.invoke(std::move(params), std::move(ctx));
  outcome.resumed_on = std::this_thread::get_id();
  co_return result;
}

// The completion handler of co_spawn: records what the step produced.
struct Record {
  Outcome* outcome;
  void operator()(std::exception_ptr error, ToolResult result) const {
    outcome->error = error;
    outcome->result = std::move(result);
  }
};

}  // namespace

TEST_CASE("BlockingTool::invoke runs on the worker and resumes on the loop") {
  WorkspaceFixture fx;
  fx.write("a.txt", "hello");
  asio::io_context loop;
  asio::thread_pool pool(1);
  dagent::ToolContext ctx = fx.context();
  ctx.worker = pool.get_executor();
  Outcome outcome;

  SECTION("read_file through the pool") {
    dagent::tools::ReadFileTool tool;
    asio::co_spawn(loop, call_tool(tool, object(R"({"path": "a.txt"})"), ctx, outcome), Record{&outcome});
    loop.run();
    REQUIRE_FALSE(outcome.error);
    REQUIRE(outcome.result.has_value());
    REQUIRE(outcome.result->has_value());
    CHECK(outcome.result->value().at("content") == "hello");
    CHECK(outcome.resumed_on == std::this_thread::get_id());
  }
  SECTION("errors come back as values") {
    dagent::tools::ReadFileTool tool;
    asio::co_spawn(loop, call_tool(tool, object(R"({"path": "../x"})"), ctx, outcome), Record{&outcome});
    loop.run();
    REQUIRE(outcome.result.has_value());
    REQUIRE(outcome.result->has_error());
    CHECK(outcome.result->error().code == ToolErrc::outside_workspace);
  }
  SECTION("run() happens on a pool thread") {
    GatedTool tool;
    tool.release();
    asio::co_spawn(loop, call_tool(tool, {}, ctx, outcome), Record{&outcome});
    loop.run();
    REQUIRE(outcome.result.has_value());
    CHECK(outcome.result->value() == "released");
    CHECK(tool.ran_on() != std::this_thread::get_id());
    CHECK(outcome.resumed_on == std::this_thread::get_id());
  }
  SECTION("without a worker, run() happens inline") {
    GatedTool tool;
    tool.release();
    ctx.worker = {};
    asio::co_spawn(loop, call_tool(tool, {}, ctx, outcome), Record{&outcome});
    loop.run();
    REQUIRE(outcome.result.has_value());
    CHECK(tool.ran_on() == std::this_thread::get_id());
  }
  pool.join();
}

TEST_CASE("cancelling a step completes it at once while run() is still blocked") {
  WorkspaceFixture fx;
  asio::io_context loop;
  asio::thread_pool pool(1);
  dagent::ToolContext ctx = fx.context();
  ctx.worker = pool.get_executor();
  GatedTool tool;
  asio::cancellation_signal signal;
  Outcome outcome;

  asio::co_spawn(loop, call_tool(tool, {}, ctx, outcome),
                 asio::bind_cancellation_slot(signal.slot(), Record{&outcome}));
  loop.poll();                // the coroutine starts and hands run() to the pool
  tool.wait_until_started();  // run() is now blocked on the pool thread
  signal.emit(asio::cancellation_type::terminal);

  // Bounded only so that a broken cancellation fails the test instead of hanging it.
  for (int i = 0; i < 100 && !outcome.result; ++i) loop.run_one_for(std::chrono::seconds(1));
  const bool finished_before_release = tool.finished();
  tool.release();

  REQUIRE_FALSE(outcome.error);
  REQUIRE(outcome.result.has_value());
  REQUIRE(outcome.result->has_error());
  CHECK(outcome.result->error().code == ToolErrc::cancelled);
  CHECK_FALSE(finished_before_release);

  loop.run();  // the late result of run() arrives and is dropped
  CHECK(tool.finished());
  CHECK(outcome.result->error().code == ToolErrc::cancelled);
  pool.join();
}
