#include "support/test_tools.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>

namespace dagent::test {

namespace asio = boost::asio;
namespace json = boost::json;


const json::object& EchoTool::parameters_schema() const {
  static const json::object s = json::parse(R"({"type":"object"})").as_object();
  return s;
}

asio::awaitable<ToolResult> EchoTool::invoke(json::object params, ToolContext) { co_return json::value(std::move(params)); }

const json::object& SleepTool::parameters_schema() const {
  static const json::object s = json::parse(
      R"({"type":"object","properties":{"ms":{"type":"integer","minimum":0},"value":{}},"required":["ms"],"additionalProperties":false})").as_object();
  return s;
}

asio::awaitable<ToolResult> SleepTool::invoke(json::object params, ToolContext) {
  auto ms = params.at("ms").to_number<std::int64_t>();
  asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
  auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  if (ec) co_return tool_error(ToolErrc::cancelled, "sleep cancelled");
  json::object out{{"slept", ms}};
  if (auto* v = params.if_contains("value")) out["value"] = *v;
  co_return json::value(std::move(out));
}

const json::object& FailTool::parameters_schema() const {
  static const json::object s = json::parse(R"({"type":"object","properties":{"message":{"type":"string"}}})").as_object();
  return s;
}

asio::awaitable<ToolResult> FailTool::invoke(json::object params, ToolContext) {
  auto* m = params.if_contains("message");
  co_return tool_error(ToolErrc::failed, m && m->is_string() ? std::string(m->get_string()) : "failed on purpose");
}

const json::object& FlakyTool::parameters_schema() const {
  static const json::object s = json::parse(
      R"({"type":"object","properties":{"fails":{"type":"integer","minimum":0}},"required":["fails"]})").as_object();
  return s;
}

asio::awaitable<ToolResult> FlakyTool::invoke(json::object params, ToolContext) {
  int n = ++calls_;
  if (n <= params.at("fails").to_number<int>()) co_return tool_error(ToolErrc::io_error, "flaky failure " + std::to_string(n));
  co_return json::value(json::object{{"calls", n}});
}

const json::object& BlockTool::parameters_schema() const {
  static const json::object s = json::parse(R"({"type":"object"})").as_object();
  return s;
}

ToolResult BlockTool::run(const json::object&, const ToolContext&) {
  started_ = true;
  opened_.wait();
  return json::value(json::object{{"released", true}});
}

TestTools::TestTools()
    : registry(tools::make_builtin_registry({"read_file", "write_file", "list_dir", "search_files"})),
      flaky(std::make_shared<FlakyTool>()),
      block(std::make_shared<BlockTool>()) {
  (void)registry.add(std::make_shared<EchoTool>());
  (void)registry.add(std::make_shared<SleepTool>(false));
  (void)registry.add(std::make_shared<SleepTool>(true));
  (void)registry.add(std::make_shared<FailTool>());
  (void)registry.add(flaky);
  (void)registry.add(block);
}

}  // namespace dagent::test
