#include "dagent/tool.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>

#include <boost/system/system_error.hpp>

using dagent::ToolErrc;

TEST_CASE("tool_category names itself and every ToolErrc value") {
  CHECK(std::string(dagent::tool_category().name()) == "dagent.tool");
  const ToolErrc all[] = {
      ToolErrc::invalid_parameters, ToolErrc::outside_workspace, ToolErrc::not_found, ToolErrc::io_error,
      ToolErrc::timed_out,          ToolErrc::cancelled,         ToolErrc::failed, ToolErrc::unavailable};
  std::set<std::string> messages;
  for (const auto e : all) {
    const boost::system::error_code code = e;
    CHECK(&code.category() == &dagent::tool_category());
    CHECK(code.value() == static_cast<int>(e));
    CHECK(code == dagent::make_error_code(e));
    CHECK_FALSE(code.message().empty());
    CHECK(code.message() != dagent::tool_category().message(0));
    messages.insert(code.message());
  }
  CHECK(messages.size() == std::size(all));
  CHECK(boost::system::error_code(ToolErrc::not_found).message() == "file or folder not found");
  CHECK(dagent::tool_category().message(99) == "unknown tool error");
}

TEST_CASE("tool_error makes a failed ToolResult") {
  const dagent::ToolResult result = dagent::tool_error(ToolErrc::not_found, "'a.md' does not exist");
  REQUIRE(result.has_error());
  CHECK(result.error().code == ToolErrc::not_found);
  CHECK(result.error().message == "'a.md' does not exist");
}

TEST_CASE("ToolResult::value() throws system_error with the message") {
  const dagent::ToolResult result = dagent::tool_error(ToolErrc::io_error, "disk full");
  try {
    (void)result.value();
    FAIL("value() did not throw");
  } catch (const boost::system::system_error& e) {
    CHECK(e.code() == ToolErrc::io_error);
    CHECK(std::string(e.what()).find("disk full") != std::string::npos);
  }
}
