#include "tools/json_schema.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>

namespace {

namespace json = boost::json;
using dagent::tools::check_parameters;
using dagent::tools::json_kind;
using dagent::tools::validate_json;
using Problems = std::vector<std::string>;

Problems check(std::string_view value, std::string_view schema) {
  return validate_json(json::parse(value), json::parse(schema).as_object());
}

}  // namespace

TEST_CASE("json_kind names every JSON kind") {
  CHECK(json_kind(json::value(nullptr)) == "null");
  CHECK(json_kind(json::value(true)) == "boolean");
  CHECK(json_kind(json::value(std::int64_t{-3})) == "integer");
  CHECK(json_kind(json::value(std::uint64_t{18446744073709551615u})) == "integer");
  CHECK(json_kind(json::value(2.0)) == "number");
  CHECK(json_kind(json::value("x")) == "string");
  CHECK(json_kind(json::value(json::array{})) == "array");
  CHECK(json_kind(json::value(json::object{})) == "object");
}

TEST_CASE("validate_json: type") {
  SECTION("each type name") {
    CHECK(check("null", R"({"type": "null"})").empty());
    CHECK(check("false", R"({"type": "boolean"})").empty());
    CHECK(check("7", R"({"type": "integer"})").empty());
    CHECK(check("18446744073709551615", R"({"type": "integer"})").empty());
    CHECK(check("1.5", R"({"type": "number"})").empty());
    CHECK(check("\"s\"", R"({"type": "string"})").empty());
    CHECK(check("[]", R"({"type": "array"})").empty());
    CHECK(check("{}", R"({"type": "object"})").empty());
  }
  SECTION("integers are numbers, integral doubles are not integers") {
    CHECK(check("7", R"({"type": "number"})").empty());
    CHECK(check("2.0", R"({"type": "integer"})") == Problems{"$: expected integer, got number"});
  }
  SECTION("mismatch names the path and both kinds") {
    CHECK(check(R"({"max_bytes": "10"})", R"({"properties": {"max_bytes": {"type": "integer"}}})") ==
          Problems{"$.max_bytes: expected integer, got string"});
    CHECK(check("true", R"({"type": "string"})") == Problems{"$: expected string, got boolean"});
  }
  SECTION("a list of types") {
    CHECK(check("null", R"({"type": ["string", "null"]})").empty());
    CHECK(check("3", R"({"type": ["string", "null"]})") == Problems{"$: expected string or null, got integer"});
    CHECK(check("3", R"({"type": ["string", "boolean", "null"]})") ==
          Problems{"$: expected string, boolean or null, got integer"});
  }
  SECTION("a type mismatch skips the other keywords") {
    CHECK(check("\"x\"", R"({"type": "integer", "minimum": 5, "enum": [1, 2]})").size() == 1);
  }
  SECTION("an unknown type name is reported") {
    CHECK(check("1", R"({"type": "int"})") == Problems{"$: schema names unknown type 'int'"});
  }
}

TEST_CASE("validate_json: properties, required, additionalProperties") {
  const std::string schema = R"({
    "type": "object",
    "properties": {"path": {"type": "string"}, "max_bytes": {"type": "integer"}},
    "required": ["path"],
    "additionalProperties": false
  })";
  SECTION("valid") { CHECK(check(R"({"path": "a", "max_bytes": 3})", schema).empty()); }
  SECTION("missing required") {
    CHECK(check(R"({"max_bytes": 3})", schema) == Problems{"$.path: missing required property"});
  }
  SECTION("unknown property when additionalProperties is false") {
    CHECK(check(R"({"path": "a", "mode": 1})", schema) ==
          Problems{"$.mode: unknown property (expected path, max_bytes)"});
  }
  SECTION("unknown properties are fine without additionalProperties") {
    CHECK(check(R"({"path": "a", "mode": 1})", R"({"properties": {"path": {"type": "string"}}})").empty());
  }
  SECTION("additionalProperties as a schema") {
    CHECK(check(R"({"a": 1, "b": "x"})", R"({"additionalProperties": {"type": "integer"}})") ==
          Problems{"$.b: expected integer, got string"});
  }
  SECTION("every problem is reported") { CHECK(check(R"({"max_bytes": "x", "extra": true})", schema).size() == 3); }
  SECTION("nested objects and odd keys") {
    const std::string nested = R"({"properties": {"meta": {"properties": {"two words": {"type": "string"}}}}})";
    CHECK(check(R"({"meta": {"two words": 1}})", nested) ==
          Problems{R"($.meta["two words"]: expected string, got integer)"});
  }
}

TEST_CASE("validate_json: items") {
  const std::string schema = R"({"properties": {"items": {"type": "array", "items": {"type": "integer"}}}})";
  CHECK(check(R"({"items": [1, 2, 3]})", schema).empty());
  CHECK(check(R"({"items": [1, 2, "three", 4.5]})", schema) ==
        Problems{"$.items[2]: expected integer, got string", "$.items[3]: expected integer, got number"});
  CHECK(check(R"([{"a": 1}, {}])", R"({"items": {"required": ["a"]}})") ==
        Problems{"$[1].a: missing required property"});
}

TEST_CASE("validate_json: enum") {
  const std::string schema = R"({"enum": ["eager", "levels", 3]})";
  CHECK(check("\"eager\"", schema).empty());
  CHECK(check("3", schema).empty());
  CHECK(check("2.5", schema) == Problems{R"($: expected one of "eager", "levels", 3, got 2.5)"});
  CHECK(check("\"fast\"", schema) == Problems{R"($: expected one of "eager", "levels", 3, got "fast")"});
}

TEST_CASE("validate_json: minimum and maximum") {
  const std::string schema = R"({"properties": {"n": {"type": "number", "minimum": 1, "maximum": 10.5}}})";
  CHECK(check(R"({"n": 1})", schema).empty());
  CHECK(check(R"({"n": 10.5})", schema).empty());
  CHECK(check(R"({"n": 0})", schema) == Problems{"$.n: must be >= 1, got 0"});
  CHECK(check(R"({"n": 0.5})", schema) == Problems{"$.n: must be >= 1, got 0.5"});
  CHECK(check(R"({"n": 11})", schema) == Problems{"$.n: must be <= 10.5, got 11"});
  SECTION("large integers compare exactly") {
    CHECK(check("18446744073709551615", R"({"maximum": 9223372036854775807})") ==
          Problems{"$: must be <= 9223372036854775807, got 18446744073709551615"});
    CHECK(check("-1", R"({"minimum": 0})") == Problems{"$: must be >= 0, got -1"});
    CHECK(check("9007199254740993", R"({"maximum": 9007199254740992})").size() == 1);
  }
}

TEST_CASE("validate_json: minLength counts characters") {
  const std::string schema = R"({"type": "string", "minLength": 2})";
  CHECK(check("\"ab\"", schema).empty());
  CHECK(check("\"\xC3\xA9\xC3\xA9\"", schema).empty());
  CHECK(check("\"\xC3\xA9\"", schema) == Problems{"$: must be at least 2 characters long, got 1"});
  CHECK(check("\"\"", schema) == Problems{"$: must be at least 2 characters long, got 0"});
}

TEST_CASE("validate_json: a custom root path") {
  CHECK(validate_json(json::value(1), json::parse(R"({"type": "string"})").as_object(), "$step3.output") ==
        Problems{"$step3.output: expected string, got integer"});
}

TEST_CASE("check_parameters joins the problems into one invalid_parameters error") {
  const auto schema = json::parse(R"({
    "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"],
    "additionalProperties": false})")
                          .as_object();
  CHECK(check_parameters(json::parse(R"({"path": "x"})").as_object(), schema).has_value());
  auto result = check_parameters(json::parse(R"({"other": 1})").as_object(), schema);
  REQUIRE_FALSE(result.has_value());
  CHECK(result.error().code == dagent::ToolErrc::invalid_parameters);
  CHECK(result.error().message ==
        "invalid parameters: $.path: missing required property; $.other: unknown property (expected path)");
}
