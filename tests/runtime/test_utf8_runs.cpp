// Text that is not UTF-8 from tools registered by a program and from inputs and plans given
// through the C++ API: repaired at the executor's boundary, so results, the recording and the
// trace are valid UTF-8 and a later step sees the repaired text.

#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <sstream>
#include <string>

#include <boost/json.hpp>

#include "config/config.hpp"
#include "record/recording.hpp"
#include "support/process.hpp"
#include "support/test_tools.hpp"
#include "text/bad_utf8_samples.hpp"
#include "text/utf8.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent;
using dagent::test::k_bad_text;
using dagent::test::k_bad_text_repaired;
using dagent::test::k_fffd;

// "latin1": returns text that is not UTF-8 in a value and in a key, as a careless C++ tool might.
class Latin1Tool final : public Tool {
 public:
  std::string_view name() const override { return "latin1"; }
  std::string_view description() const override { return "returns bytes that are not UTF-8"; }
  const json::object& parameters_schema() const override { return schema_; }
  asio::awaitable<ToolResult> invoke(json::object, ToolContext) override {
    co_return json::value(json::object{{"text", k_bad_text}, {"k\xE9y", json::array{k_bad_text}}});
  }

 private:
  json::object schema_{{"type", "object"}};
};

// "latin1_fail": a blocking tool that fails with a message that is not UTF-8.
class Latin1FailTool final : public BlockingTool {
 public:
  std::string_view name() const override { return "latin1_fail"; }
  std::string_view description() const override { return "fails with bytes that are not UTF-8"; }
  const json::object& parameters_schema() const override { return schema_; }
  ToolResult run(const json::object&, const ToolContext&) override {
    return tool_error(ToolErrc::failed, "cannot open " + k_bad_text);
  }

 private:
  json::object schema_{{"type", "object"}};
};


}  // namespace

TEST_CASE("tools_return_invalid_utf8: a program's tool output and error, and API inputs, were passed on raw",
          "[runtime][utf8]") {
  test::TempDir dir;
  Runtime runtime = dagent::runtime::make_runtime(config::Config{});
  REQUIRE(runtime.register_tool(std::make_shared<Latin1Tool>()).has_value());
  REQUIRE(runtime.register_tool(std::make_shared<Latin1FailTool>()).has_value());
  REQUIRE(runtime.register_tool(std::make_shared<test::EchoTool>()).has_value());

  const auto plan = json::parse(R"([
    {"id": 1, "action": "latin1"},
    {"id": 2, "action": "echo", "parameters": {"got": "$step1.text", "who": "$input.who"}},
    {"id": 3, "action": "latin1_fail"}
  ])");
  RunOptions options;
  options.record_file = dir.path() / "run.jsonl";
  options.trace_file = dir.path() / "trace.json";
  const json::object inputs{{"who", "J\xE9r\xF4me"}, {"k\xE9y", k_bad_text}};
  auto outcome = runtime.run_plan(plan, inputs, dir.path(), options, "t\xE9st");
  REQUIRE(outcome.problems.empty());
  const auto& r = outcome.result;
  CHECK(r.task == "t" + k_fffd + "st");

  CHECK(test::step_of(r, 1).status == StepStatus::succeeded);
  CHECK(test::step_of(r, 1).output ==
        json::value(json::object{{"text", k_bad_text_repaired}, {"k" + k_fffd + "y", json::array{k_bad_text_repaired}}}));
  // The next step's reference resolved to the repaired text.
  CHECK(test::step_of(r, 2).output ==
        json::value(json::object{{"got", k_bad_text_repaired}, {"who", "J" + k_fffd + "r" + k_fffd + "me"}}));
  CHECK(test::step_of(r, 3).status == StepStatus::failed);
  CHECK(test::step_of(r, 3).error == "cannot open " + k_bad_text_repaired);

  CHECK(text::is_valid_utf8(json::serialize(to_json(r))));
  const std::string trace = test::read_text(dir.path() / "trace.json");
  CHECK(text::is_valid_utf8(trace));
  CHECK_NOTHROW(json::parse(trace));

  const std::string recording = test::read_text(dir.path() / "run.jsonl");
  REQUIRE(text::is_valid_utf8(recording));
  std::istringstream lines(recording);
  for (std::string line; std::getline(lines, line);) CHECK_NOTHROW(json::parse(line));
  auto read = record::read_recording(dir.path() / "run.jsonl");
  REQUIRE(read.has_value());
  CHECK(read->header.at("inputs") ==
        json::value(json::object{{"who", "J" + k_fffd + "r" + k_fffd + "me"}, {"k" + k_fffd + "y", k_bad_text_repaired}}));
}
