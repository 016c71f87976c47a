#include "planner/json_extract.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include <boost/json/parse.hpp>

using dagent::planner::extract_json;

namespace {

boost::json::value json(std::string_view text) { return boost::json::parse(text); }

}  // namespace

TEST_CASE("extract_json takes the whole text when it parses", "[planner][json_extract]") {
  SECTION("an object") {
    const auto r = extract_json(R"({"steps": [{"id": 1}]})");
    REQUIRE(r);
    CHECK(*r == json(R"({"steps": [{"id": 1}]})"));
  }
  SECTION("an array with surrounding whitespace") {
    const auto r = extract_json("\n  [1, {\"a\": [2]}]  \n");
    REQUIRE(r);
    CHECK(*r == json(R"([1, {"a": [2]}])"));
  }
  SECTION("a scalar") {
    const auto r = extract_json(" 42 ");
    REQUIRE(r);
    CHECK(*r == json("42"));
  }
}

TEST_CASE("extract_json reads code fences", "[planner][json_extract]") {
  SECTION("a json fence with prose before and after") {
    const auto r = extract_json("Here is the plan:\n```json\n{\"steps\": []}\n```\nLet me know if it helps.");
    REQUIRE(r);
    CHECK(*r == json(R"({"steps": []})"));
  }
  SECTION("a fence without an info string") {
    const auto r = extract_json("Plan:\n```\n[{\"id\": 1}]\n```");
    REQUIRE(r);
    CHECK(*r == json(R"([{"id": 1}])"));
  }
  SECTION("an inline fence") {
    const auto r = extract_json("the plan is ```json {\"a\": 1}``` as you asked");
    REQUIRE(r);
    CHECK(*r == json(R"({"a": 1})"));
  }
  SECTION("a fence wins over bracketed prose before it") {
    const auto r = extract_json("Plan [draft 2] {see below}:\n```json\n{\"a\": [1, 2]}\n```");
    REQUIRE(r);
    CHECK(*r == json(R"({"a": [1, 2]})"));
  }
  SECTION("the first fence that parses") {
    const auto r = extract_json(
        "```python\nprint([1])\n```\nand the plan:\n```json\n{\"a\": 1,}\n```\nfixed:\n```json\n{\"a\": 2}\n```");
    REQUIRE(r);
    CHECK(*r == json(R"({"a": 2})"));
  }
  SECTION("an unclosed fence runs to the end") {
    const auto r = extract_json("Sure!\n```json\n{\"a\": \"``\"}\n");
    REQUIRE(r);
    CHECK(*r == json(R"({"a": "``"})"));
  }
  SECTION("a four-backtick fence") {
    const auto r = extract_json("````json\n[true]\n````");
    REQUIRE(r);
    CHECK(*r == json("[true]"));
  }
}

TEST_CASE("extract_json finds a bracket span in prose", "[planner][json_extract]") {
  SECTION("prose before and after") {
    const auto r = extract_json("Here is the plan: {\"steps\": [{\"id\": 1}]} Let me know!");
    REQUIRE(r);
    CHECK(*r == json(R"({"steps": [{"id": 1}]})"));
  }
  SECTION("strings holding brackets, braces, escaped quotes and a backslash before a quote") {
    const std::string value = R"({"a": "} ] { [", "b": "say \"}\" now", "c": "C:\\dir\\", "d": [1]})";
    const auto r = extract_json("Result: " + value + " -- done }");
    REQUIRE(r);
    CHECK(*r == json(value));
  }
  SECTION("an array span") {
    const auto r = extract_json("The steps are [{\"id\": 1}, {\"id\": 2}].");
    REQUIRE(r);
    CHECK(*r == json(R"([{"id": 1}, {"id": 2}])"));
  }
  SECTION("a bracketed phrase before the JSON is skipped") {
    const auto r = extract_json("Plan [final] {for you}: {\"a\": 1} ok");
    REQUIRE(r);
    CHECK(*r == json(R"({"a": 1})"));
  }
  SECTION("a mismatched span is skipped") {
    const auto r = extract_json("odd {x] then [1, 2]");
    REQUIRE(r);
    CHECK(*r == json("[1, 2]"));
  }
}

TEST_CASE("extract_json reports a reply without JSON", "[planner][json_extract]") {
  SECTION("plain prose") {
    const auto r = extract_json("I cannot make a plan for that.");
    REQUIRE_FALSE(r);
    CHECK(r.error() == "the reply contains no JSON value");
  }
  SECTION("an empty reply") {
    const auto r = extract_json("");
    REQUIRE_FALSE(r);
    CHECK(r.error() == "the reply contains no JSON value");
  }
  SECTION("a fence of prose") {
    const auto r = extract_json("```\nno plan here\n```");
    REQUIRE_FALSE(r);
    CHECK(r.error() == "the reply contains no JSON value");
  }
}

TEST_CASE("extract_json reports malformed JSON", "[planner][json_extract]") {
  SECTION("a trailing comma in prose gives the offset in the reply") {
    const auto r = extract_json("Here: {\"a\": 1,} ok");
    REQUIRE_FALSE(r);
    CHECK(r.error() == "the reply's JSON is malformed: syntax error at offset 14");
  }
  SECTION("a truncated plan is not replaced by one of its steps") {
    const std::string text = "Plan: {\"steps\": [{\"id\": 1}, {\"id\": 2";
    const auto r = extract_json(text);
    REQUIRE_FALSE(r);
    CHECK(r.error() == "the reply's JSON is malformed: incomplete JSON at offset " + std::to_string(text.size()));
  }
  SECTION("a malformed step does not let a later step stand for the plan") {
    const auto r = extract_json(R"({"steps": [{"id": 1,}, {"id": 2}]})");
    REQUIRE_FALSE(r);
    CHECK(r.error() == "the reply's JSON is malformed: syntax error at offset 20");
  }
  SECTION("the fence is reported rather than bracketed prose") {
    const auto r = extract_json("Plan [v2]:\n```json\n{\"a\": }\n```");
    REQUIRE_FALSE(r);
    CHECK(r.error() == "the reply's JSON is malformed: syntax error at offset 25");
  }
  SECTION("the longest span is reported") {
    const auto r = extract_json("[x] then {\"a\": [1, 2,]}");
    REQUIRE_FALSE(r);
    CHECK(r.error() == "the reply's JSON is malformed: syntax error at offset 21");
  }
  SECTION("the message is one line") {
    const auto r = extract_json("x {\"a\":\n\n nope}");
    REQUIRE_FALSE(r);
    CHECK(r.error().find('\n') == std::string::npos);
    CHECK(r.error().rfind("the reply's JSON is malformed: ", 0) == 0);
  }
}
