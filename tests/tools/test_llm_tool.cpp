#include "tools/llm_tool.hpp"

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "net/openai_client.hpp"
#include "net/url.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using dagent::ToolErrc;
using dagent::ToolResult;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

constexpr std::string_view k_schema = R"({"type": "object",
    "properties": {"city": {"type": "string", "minLength": 2}, "population": {"type": "integer", "minimum": 0}},
    "required": ["city", "population"], "additionalProperties": false})";

// The `llm` tool over a real OpenAI-compatible client talking to the scripted test server.
struct Harness {
  asio::io_context io;
  dagent::net::OpenAiClient client;
  dagent::tools::LlmTool tool;

  explicit Harness(const TestServer& server)
      : client(io.get_executor(), nullptr, options_for(server)), tool(client, "gpt-test") {}

  static dagent::net::OpenAiOptions options_for(const TestServer& server) {
    dagent::net::OpenAiOptions o;
    o.base_url = *dagent::net::parse_base_url(server.base_url());
    o.api_key = "sk-test-key";
    o.max_retries = 0;
    return o;
  }

  ToolResult ask(std::string_view schema) {
    json::object params{{"prompt", "Which city?"}, {"json_schema", json::parse(schema)}};
    return dagent::test::run_on(io, tool.invoke(std::move(params), dagent::ToolContext{}));
  }
};

json::value script_replying(std::string_view reply, bool refuse_structured_output = false) {
  json::array rules;
  if (refuse_structured_output)
    rules.push_back(json::parse(R"({"path": "/v1/chat/completions", "contains": "response_format", "status": 400,
        "body": {"error": {"message": "response_format is not supported", "type": "invalid_request_error"}}})"));
  rules.push_back(json::object{{"path", "/v1/chat/completions"}, {"reply", reply}});
  return json::object{{"rules", std::move(rules)}};
}

std::int64_t requests(const TestServer& server) {
  return server.stats().at("requests").at("total").to_number<std::int64_t>();
}

std::string request_body(const TestServer& server, std::size_t i) {
  return std::string(server.stats().at("recent").as_array().at(i).at("body").as_string());
}

}  // namespace

TEST_CASE("llm with json_schema: a conforming reply is returned parsed", "[tools][llm][json_schema]") {
  TestServer server(TestServerOptions{.script = script_replying(R"({"city": "Paris", "population": 2100000})")});
  Harness h(server);
  auto r = h.ask(k_schema);
  REQUIRE(r.has_value());
  CHECK(r->at("json").at("city") == "Paris");
  CHECK(r->at("json").at("population") == 2100000);
  CHECK(request_body(server, 0).find("response_format") != std::string::npos);
}

TEST_CASE("llm with json_schema: a reply that does not conform fails the step, naming the first problems",
          "[tools][llm][json_schema]") {
  SECTION("with structured output") {
    TestServer server(TestServerOptions{.script = script_replying(R"({"city": "P", "population": -1, "mayor": "x"})")});
    Harness h(server);
    auto r = h.ask(k_schema);
    REQUIRE_FALSE(r.has_value());
    // failed, not invalid_parameters: the scheduler retries it (performance.step_retries).
    CHECK(r.error().code == ToolErrc::failed);
    CHECK_THAT(r.error().message, Catch::StartsWith("the reply does not match json_schema: "));
    CHECK_THAT(r.error().message, Catch::Contains("$.city: must be at least 2 characters long, got 1"));
    CHECK_THAT(r.error().message, Catch::Contains("$.population: must be >= 0, got -1"));
    CHECK_THAT(r.error().message, Catch::Contains("$.mayor: unknown property (expected city, population)"));
  }
  SECTION("on the fallback path, where the schema only went into the prompt") {
    TestServer server(TestServerOptions{.script = script_replying(R"({"city": "Paris"})", true)});
    Harness h(server);
    auto r = h.ask(k_schema);
    REQUIRE(requests(server) == 2);
    CHECK(request_body(server, 1).find("response_format") == std::string::npos);
    CHECK(request_body(server, 1).find("JSON Schema") != std::string::npos);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == ToolErrc::failed);
    CHECK(r.error().message == "the reply does not match json_schema: $.population: missing required property");
  }
  SECTION("a conforming reply on the fallback path passes") {
    TestServer server(TestServerOptions{.script = script_replying(R"({"city": "Paris", "population": 1})", true)});
    Harness h(server);
    auto r = h.ask(k_schema);
    REQUIRE(r.has_value());
    CHECK(r->at("json").at("population") == 1);
  }
  SECTION("many problems: the first three, and how many more") {
    TestServer server(TestServerOptions{.script = script_replying(R"({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})")});
    Harness h(server);
    auto r = h.ask(R"({"additionalProperties": false})");
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message ==
          "the reply does not match json_schema: $.a: unknown property; $.b: unknown property; $.c: unknown property "
          "(and 2 more)");
  }
}

TEST_CASE("llm with an invalid json_schema fails before any request", "[tools][llm][json_schema]") {
  TestServer server(TestServerOptions{.script = script_replying(R"({})")});
  Harness h(server);
  auto r = h.ask(R"({"type": "object", "properties": {"n": {"type": "int"}}})");
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().code == ToolErrc::invalid_parameters);
  CHECK_THAT(r.error().message, Catch::StartsWith("json_schema is not a valid schema: json_schema.properties.n.type: "));
  CHECK(requests(server) == 0);
}
