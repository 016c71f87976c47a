#include "mcp/server.hpp"

#include <cstdlib>
#include <string>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

namespace {

namespace json = boost::json;
using dagent::mcp::expand_env;
using dagent::mcp::tool_result_of;

}  // namespace

TEST_CASE("expand_env: ${NAME} from the environment, $$ for $, an unset variable named", "[mcp][server]") {
  ::setenv("DAGENT_TEST_MCP_TOKEN", "t0k3n", 1);
  ::unsetenv("DAGENT_TEST_MCP_UNSET");
  auto bearer = expand_env("Bearer ${DAGENT_TEST_MCP_TOKEN}");
  REQUIRE(bearer.has_value());
  CHECK(*bearer == "Bearer t0k3n");
  auto dollars = expand_env("cost: $$5 ${DAGENT_TEST_MCP_TOKEN}${DAGENT_TEST_MCP_TOKEN}");
  REQUIRE(dollars.has_value());
  CHECK(*dollars == "cost: $5 t0k3nt0k3n");
  auto unset = expand_env("x ${DAGENT_TEST_MCP_UNSET}");
  REQUIRE(unset.has_error());
  CHECK(unset.error() == "the environment variable DAGENT_TEST_MCP_UNSET is not set");
  CHECK(expand_env("$HOME").has_error());
}

TEST_CASE("tool_result_of: text, content and structured, isError fails with the server's text", "[mcp][server]") {
  SECTION("text blocks joined, other kinds named, structuredContent kept") {
    auto r = tool_result_of("s", "t", json::parse(R"({"content": [
        {"type": "text", "text": "one"},
        {"type": "image", "data": "AAAA", "mimeType": "image/png"},
        {"type": "resource", "resource": {"uri": "file:///a", "text": "two"}},
        {"type": "resource_link", "uri": "test://static/resource/1", "name": "r"}],
      "structuredContent": {"n": 1}})"));
    REQUIRE(r.has_value());
    CHECK(r->at("text") == "one\n[image image/png]\ntwo\n[resource test://static/resource/1]");
    CHECK(r->at("content").as_array().size() == 4);
    CHECK(r->at("structured") == json::parse(R"({"n": 1})"));
  }
  SECTION("no content, no structuredContent") {
    auto r = tool_result_of("s", "t", json::parse("{}"));
    REQUIRE(r.has_value());
    CHECK(*r == json::parse(R"({"text": "", "content": [], "structured": null})"));
  }
  SECTION("isError") {
    auto r = tool_result_of("fs", "read_text_file",
                            json::parse(R"({"isError": true, "content": [{"type": "text", "text": "Access denied"}]})"));
    REQUIRE(r.has_error());
    CHECK(r.error().code == dagent::ToolErrc::failed);
    CHECK(r.error().message == "MCP server 'fs': read_text_file failed: Access denied");
  }
  SECTION("a result that is not an object") {
    auto r = tool_result_of("s", "t", json::value(3));
    REQUIRE(r.has_error());
    CHECK(r.error().message == "MCP server 's': tools/call answered a result that is not an object");
  }
}
