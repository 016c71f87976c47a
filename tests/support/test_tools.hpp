#pragma once
// Small real tools for executor and runtime tests: timer-driven latency, echo, failure,
// flakiness and a blocking tool released by the test.

#include <atomic>
#include <future>
#include <memory>
#include <string>

#include <boost/json/object.hpp>

#include "dagent/run_result.hpp"
#include "dagent/tool.hpp"
#include "executor/run_types.hpp"
#include "tools/registry.hpp"

namespace dagent::test {

/// "echo": returns its parameters as the output; runs inline on the loop.
class EchoTool final : public Tool {
 public:
  std::string_view name() const override { return "echo"; }
  std::string_view description() const override { return "returns its parameters"; }
  const boost::json::object& parameters_schema() const override;
  boost::asio::awaitable<ToolResult> invoke(boost::json::object params, ToolContext ctx) override;
};

/// "sleep" {ms, value?}: waits `ms` on a timer, then returns {"slept": ms, "value": value}.
/// With `llm` true it counts as an LLM-bound tool (name "slow_llm").
class SleepTool final : public Tool {
 public:
  explicit SleepTool(bool llm = false) : llm_(llm) {}
  std::string_view name() const override { return llm_ ? "slow_llm" : "sleep"; }
  std::string_view description() const override { return "waits, then returns"; }
  const boost::json::object& parameters_schema() const override;
  bool uses_llm() const override { return llm_; }
  boost::asio::awaitable<ToolResult> invoke(boost::json::object params, ToolContext ctx) override;

 private:
  bool llm_;
};

/// "fail" {message}: always fails with ToolErrc::failed.
class FailTool final : public Tool {
 public:
  std::string_view name() const override { return "fail"; }
  std::string_view description() const override { return "always fails"; }
  const boost::json::object& parameters_schema() const override;
  boost::asio::awaitable<ToolResult> invoke(boost::json::object params, ToolContext ctx) override;
};

/// "flaky" {fails}: fails the first `fails` calls, then succeeds with {"calls": n}.
class FlakyTool final : public Tool {
 public:
  std::string_view name() const override { return "flaky"; }
  std::string_view description() const override { return "fails a few times first"; }
  const boost::json::object& parameters_schema() const override;
  boost::asio::awaitable<ToolResult> invoke(boost::json::object params, ToolContext ctx) override;
  int calls() const { return calls_.load(); }

 private:
  std::atomic<int> calls_{0};
};

/// "block": a BlockingTool that waits until the test calls release() (or the step is cancelled
/// and then released), then returns {"released": true}.
class BlockTool final : public BlockingTool {
 public:
  std::string_view name() const override { return "block"; }
  std::string_view description() const override { return "blocks a worker until released"; }
  const boost::json::object& parameters_schema() const override;
  ToolResult run(const boost::json::object& params, const ToolContext& ctx) override;
  void release() { gate_.set_value(); }
  /// True once run() has started on a worker.
  bool started() const { return started_.load(); }

 private:
  std::promise<void> gate_;
  std::shared_future<void> opened_ = gate_.get_future().share();
  std::atomic<bool> started_{false};
};

/// A registry with the built-in tools plus every test tool above.
struct TestTools {
  TestTools();
  tools::Registry registry;
  std::shared_ptr<FlakyTool> flaky;
  std::shared_ptr<BlockTool> block;
};

/// The result of step `id` in `r` (a public result or the executor's); fails the test when there is none.
const StepResult& step_of(const RunResult& r, int id);
const executor::StepResult& step_of(const executor::RunResult& r, int id);

}  // namespace dagent::test
