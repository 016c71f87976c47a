#include "tools/json_schema.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "tools/registry.hpp"

namespace {

namespace json = boost::json;
using dagent::tools::check_parameters;
using dagent::tools::check_schema;
using dagent::tools::compile_schema;
using dagent::tools::json_kind;
using dagent::tools::validate_json;
using Problems = std::vector<std::string>;

Problems check(std::string_view value, std::string_view schema) {
  return validate_json(json::parse(value), json::parse(schema).as_object());
}

bool valid(std::string_view value, std::string_view schema) {
  const auto problems = check(value, schema);
  for (const auto& p : problems) UNSCOPED_INFO(p);
  return problems.empty();
}

Problems schema_problems(std::string_view schema) { return check_schema(json::parse(schema).as_object()); }

// The one problem of an invalid schema, or "" when it has none or several.
std::string schema_problem(std::string_view schema) {
  const auto problems = schema_problems(schema);
  for (const auto& p : problems) UNSCOPED_INFO(p);
  return problems.size() == 1 ? problems[0] : std::string();
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
  SECTION("an unknown type name makes the schema invalid, which fails every value") {
    const auto problems = check("1", R"({"type": "int"})");
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::StartsWith("invalid schema: $.type: must be a type name"));
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
          Problems{"$: must be <= 9223372036854775807, got an integer above 9223372036854775807"});
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

TEST_CASE("validate_json: uint64 values (read_file's bytes) are integers with their value", "[json_schema]") {
  // Regression: valijson's adapter reads only int64 and double; 5u was shown as 18446744073709551615.
  const json::value five(std::uint64_t{5});
  const auto schema = [](std::string_view text) { return json::parse(text).as_object(); };
  CHECK(validate_json(five, schema(R"({"type": "integer", "const": 5, "enum": [5], "maximum": 5})")).empty());
  CHECK(validate_json(five, schema(R"({"const": 3})")) == Problems{"$: expected 3, got 5"});
  CHECK(validate_json(five, schema(R"({"minimum": 6})")) == Problems{"$: must be >= 6, got 5"});
  CHECK(validate_json(json::value(json::array{std::uint64_t{1}, std::int64_t{1}}), schema(R"({"uniqueItems": true})"))
            .size() == 1);
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

// ---- draft-07, keyword family by keyword family (in the spirit of JSON-Schema-Test-Suite) ----

TEST_CASE("draft-07: enum and const", "[json_schema][draft7]") {
  SECTION("enum compares whole values, numbers by value") {
    const std::string schema = R"({"enum": [1, "a", [1, 2], {"k": null}, null]})";
    CHECK(valid("1", schema));
    CHECK(valid("1.0", schema));
    CHECK(valid("[1, 2]", schema));
    CHECK(valid(R"({"k": null})", schema));
    CHECK(valid("null", schema));
    CHECK_FALSE(valid("[2, 1]", schema));
    CHECK_FALSE(valid(R"({"k": null, "x": 1})", schema));
    CHECK_FALSE(valid("false", schema));
  }
  SECTION("const") {
    CHECK(valid(R"({"a": [1]})", R"({"const": {"a": [1]}})"));
    CHECK(check(R"("b")", R"({"const": "a"})") == Problems{R"($: expected "a", got "b")"});
    CHECK(valid("false", R"({"const": false})"));
    CHECK_FALSE(valid("0", R"({"const": false})"));
    CHECK_FALSE(valid("null", R"({"const": 0})"));
  }
}

TEST_CASE("draft-07: numbers", "[json_schema][draft7]") {
  SECTION("multipleOf") {
    CHECK(valid("10", R"({"multipleOf": 2})"));
    CHECK(check("7", R"({"multipleOf": 2})") == Problems{"$: must be a multiple of 2, got 7"});
    CHECK(valid("4.5", R"({"multipleOf": 1.5})"));
    CHECK_FALSE(valid("35", R"({"multipleOf": 1.5})"));
    CHECK(valid("0.0075", R"({"multipleOf": 0.0001})"));
    CHECK(valid("0.3", R"({"multipleOf": 0.1})"));
    CHECK_FALSE(valid("0.00751", R"({"multipleOf": 0.0001})"));
    CHECK(valid(R"("not a number")", R"({"multipleOf": 2})"));
  }
  SECTION("exclusiveMinimum and exclusiveMaximum are numbers in draft-07") {
    CHECK(valid("1.1", R"({"exclusiveMinimum": 1.1, "maximum": 3})") == false);
    CHECK(check("1.1", R"({"exclusiveMinimum": 1.1})") == Problems{"$: must be > 1.1, got 1.1"});
    CHECK(valid("1.2", R"({"exclusiveMinimum": 1.1})"));
    CHECK(check("3", R"({"exclusiveMaximum": 3})") == Problems{"$: must be < 3, got 3"});
    CHECK(valid("2.9", R"({"exclusiveMaximum": 3})"));
  }
  SECTION("bounds ignore other types") { CHECK(valid(R"("x")", R"({"minimum": 5, "maximum": 1})")); }
}

TEST_CASE("draft-07: strings", "[json_schema][draft7]") {
  SECTION("maxLength counts code points") {
    CHECK(valid(R"("ab")", R"({"maxLength": 2})"));
    CHECK(valid("\"\xF0\x9F\x98\x80\xF0\x9F\x98\x80\"", R"({"maxLength": 2})"));  // two emoji, 8 bytes
    CHECK(check(R"("abc")", R"({"maxLength": 2})") == Problems{"$: must be at most 2 characters long, got 3"});
    CHECK(check(R"("")", R"({"minLength": 1})") == Problems{"$: must be at least 1 character long, got 0"});
  }
  SECTION("pattern is an unanchored ECMAScript search") {
    CHECK(valid(R"("xx123yy")", R"({"pattern": "[0-9]+"})"));
    CHECK(valid(R"("abc")", R"({"pattern": "^a.c$"})"));
    CHECK(check(R"("abd")", R"({"pattern": "^a.c$"})") == Problems{R"($: must match the pattern "^a.c$", got "abd")"});
    CHECK(valid("12", R"({"pattern": "^x$"})"));  // ignores non-strings
  }
  SECTION("a pattern over a long string does not overflow the stack (std::regex recursed per character)") {
    const std::string long_text = "\"" + std::string(1'000'000, 'a') + "\"";
    CHECK(valid(long_text, R"({"pattern": "^[ab]*$"})"));
    CHECK_FALSE(valid(long_text, R"({"pattern": "^[ab]*c$"})"));
    // A match too costly for Boost.Regex's budget is a failure that says so, never a pass.
    const auto problems = check(long_text, R"({"pattern": "^(a|b)*$"})");
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::StartsWith(R"($: could not be checked against the pattern "^(a|b)*$")"));
  }
  SECTION("format asserts date, time, date-time and regex; other formats are annotations") {
    CHECK(valid(R"("2024-02-29")", R"({"format": "date"})"));
    CHECK(check(R"("2024-13-01")", R"({"format": "date"})") == Problems{R"($: is not a valid date, got "2024-13-01")"});
    CHECK(valid(R"("12:30:00Z")", R"({"format": "time"})"));
    CHECK_FALSE(valid(R"("25:00:00Z")", R"({"format": "time"})"));
    CHECK(valid(R"("2024-01-02T03:04:05.5+01:00")", R"({"format": "date-time"})"));
    CHECK_FALSE(valid(R"("2024-01-02 03:04:05")", R"({"format": "date-time"})"));
    CHECK(valid(R"("^a+$")", R"({"format": "regex"})"));
    CHECK_FALSE(valid(R"("(unclosed")", R"({"format": "regex"})"));
    CHECK(valid(R"("not an email")", R"({"format": "email"})"));
  }
}

TEST_CASE("draft-07: arrays", "[json_schema][draft7]") {
  SECTION("items as a list, additionalItems") {
    const std::string schema = R"({"items": [{"type": "integer"}, {"type": "string"}], "additionalItems": false})";
    CHECK(valid(R"([1, "a"])", schema));
    CHECK(valid("[1]", schema));
    CHECK(check(R"(["a"])", schema) == Problems{"$[0]: expected integer, got string"});
    const auto extra = check(R"([1, "a", true])", schema);
    REQUIRE(extra.size() == 1);
    CHECK(extra[0] == "$: has more items than 'items' lists");
    CHECK(check(R"([1, "a", true])", R"({"items": [{}, {}], "additionalItems": {"type": "integer"}})") ==
          Problems{"$[2]: expected integer, got boolean"});
  }
  SECTION("minItems and maxItems") {
    CHECK(check("[]", R"({"minItems": 1})") == Problems{"$: must have at least 1 item, got 0"});
    CHECK(check("[1, 2, 3]", R"({"maxItems": 2})") == Problems{"$: must have at most 2 items, got 3"});
    CHECK(valid("[1, 2]", R"({"minItems": 2, "maxItems": 2})"));
  }
  SECTION("uniqueItems") {
    CHECK(valid(R"([1, "1", [1], {"a": 1}])", R"({"uniqueItems": true})"));
    CHECK(check(R"([{"a": 1}, 2, {"a": 1}])", R"({"uniqueItems": true})") ==
          Problems{R"($: items must be unique, but [0] and [2] are both {"a":1})"});
    CHECK_FALSE(valid("[1, 1.0]", R"({"uniqueItems": true})"));
    CHECK(valid("[1, 1]", R"({"uniqueItems": false})"));
  }
  SECTION("contains") {
    CHECK(valid("[1, 5, 2]", R"({"contains": {"minimum": 5}})"));
    CHECK(check("[1, 2]", R"({"contains": {"minimum": 5}})") == Problems{"$: no item matches the schema under 'contains'"});
    CHECK_FALSE(valid("[]", R"({"contains": {}})"));
  }
}

TEST_CASE("draft-07: objects", "[json_schema][draft7]") {
  SECTION("patternProperties, and additionalProperties false beside them") {
    const std::string schema = R"({"properties": {"id": {}}, "patternProperties": {"^x-": {"type": "string"}},
                                   "additionalProperties": false})";
    CHECK(valid(R"({"id": 1, "x-a": "s"})", schema));
    CHECK(check(R"({"x-a": 1})", schema) == Problems{R"($["x-a"]: expected string, got integer)"});
    CHECK(check(R"({"y": 1})", schema) == Problems{"$.y: unknown property (expected id)"});
  }
  SECTION("a key too long for valijson's std::regex is refused, not matched") {
    const std::string key(5000, 'k');
    const auto problems = check(R"({")" + key + R"(": 1})", R"({"patternProperties": {"^k": {}}})");
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::Contains("too long to check against patternProperties"));
  }
  SECTION("propertyNames") {
    CHECK(valid(R"({"ab": 1})", R"({"propertyNames": {"maxLength": 2}})"));
    const auto problems = check(R"({"abc": 1})", R"({"propertyNames": {"maxLength": 2}})");
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == "$: has a property name that does not match propertyNames");
  }
  SECTION("dependencies, as a list and as a schema") {
    const std::string schema = R"({"dependencies": {"card": ["billing"], "gift": {"required": ["note"]}}})";
    CHECK(valid(R"({"card": 1, "billing": 2})", schema));
    CHECK(valid(R"({"billing": 2})", schema));
    CHECK(check(R"({"card": 1})", schema) == Problems{"$: missing property billing (required by dependencies)"});
    CHECK(check(R"({"gift": 1})", schema) == Problems{"$.note: missing required property"});
  }
  SECTION("minProperties and maxProperties") {
    CHECK(check("{}", R"({"minProperties": 1})") == Problems{"$: must have at least 1 property, got 0"});
    CHECK(check(R"({"a": 1, "b": 2})", R"({"maxProperties": 1})") == Problems{"$: must have at most 1 property, got 2"});
  }
}

TEST_CASE("draft-07: combinators", "[json_schema][draft7]") {
  SECTION("allOf reports each failing branch") {
    const std::string schema = R"({"allOf": [{"type": "integer"}, {"minimum": 3}]})";
    CHECK(valid("3", schema));
    CHECK(check("2", schema) == Problems{"$: must be >= 3, got 2"});
  }
  SECTION("anyOf: one line when no alternative matches") {
    const std::string schema = R"({"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 2}]})";
    CHECK(valid(R"("x")", schema));
    CHECK(valid("2", schema));
    CHECK(check("1", schema) == Problems{"$: matches none of the anyOf alternatives"});
    CHECK(check(R"({"v": 1.5})", R"({"properties": {"v": )" + schema + "}}") ==
          Problems{"$.v: matches none of the anyOf alternatives"});
  }
  SECTION("oneOf: exactly one") {
    const std::string schema = R"({"oneOf": [{"type": "integer"}, {"minimum": 2}]})";
    CHECK(valid("1", schema));
    CHECK(valid("2.5", schema));
    CHECK(check("3", schema) == Problems{"$: matches more than one of the oneOf alternatives"});
    CHECK(check("1.5", schema) == Problems{"$: matches none of the oneOf alternatives"});
  }
  SECTION("not") {
    CHECK(valid("1", R"({"not": {"type": "string"}})"));
    CHECK(check(R"("x")", R"({"not": {"type": "string"}})") == Problems{"$: must not match the schema under 'not'"});
  }
  SECTION("if, then, else") {
    const std::string schema = R"({"if": {"minimum": 10}, "then": {"multipleOf": 10}, "else": {"maximum": 5}})";
    CHECK(valid("20", schema));
    CHECK(valid("4", schema));
    CHECK(check("15", schema) == Problems{"$: must be a multiple of 10, got 15"});
    CHECK(check("7", schema) == Problems{"$: must be <= 5, got 7"});
  }
  SECTION("boolean schemas") {
    CHECK(valid("[1]", R"({"items": true})"));
    CHECK_FALSE(valid("[1]", R"({"items": false})"));
    CHECK(valid("[]", R"({"items": false})"));
  }
}

TEST_CASE("draft-07: $ref and definitions", "[json_schema][draft7]") {
  SECTION("a local reference") {
    const std::string schema = R"({"definitions": {"pos": {"type": "integer", "minimum": 1}},
                                   "properties": {"n": {"$ref": "#/definitions/pos"}}})";
    CHECK(valid(R"({"n": 3})", schema));
    CHECK(check(R"({"n": 0})", schema) == Problems{"$.n: must be >= 1, got 0"});
  }
  SECTION("a recursive schema (a tree) validates nested values") {
    const std::string tree = R"({"type": "object", "properties": {"value": {"type": "integer"},
                                 "children": {"type": "array", "items": {"$ref": "#"}}}, "required": ["value"]})";
    CHECK(valid(R"({"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]})", tree));
    CHECK(check(R"({"value": 1, "children": [{"value": 2, "children": [{"value": "x"}]}]})", tree) ==
          Problems{"$.children[0].children[0].value: expected integer, got string"});
  }
  SECTION("a recursive schema with a value deeper than the limit is refused, not recursed") {
    std::string deep;
    for (int i = 0; i < 5000; ++i) deep += R"({"next": )";
    deep += "null";
    for (int i = 0; i < 5000; ++i) deep += "}";
    boost::json::parse_options options;
    options.max_depth = 10'000;
    const auto value = json::parse(deep, {}, options);
    const auto problems = validate_json(value, json::parse(R"({"properties": {"next": {"$ref": "#"}}})").as_object());
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == "$: is nested more than 128 levels deep");
  }
  SECTION("escaped pointers") {
    CHECK(check("1", R"({"definitions": {"a/b~c": {"type": "string"}}, "$ref": "#/definitions/a~1b~0c"})") ==
          Problems{"$: expected string, got integer"});
    CHECK(valid("1", R"({"definitions": {"a b": {"type": "integer"}}, "$ref": "#/definitions/a%20b"})"));
  }
}

TEST_CASE("check_schema: a schema is itself checked against draft-07", "[json_schema][schema]") {
  SECTION("valid schemas have no problems") {
    CHECK(schema_problems(R"({})").empty());
    CHECK(schema_problems(R"({"type": ["string", "null"], "title": "t", "x-vendor": 1})").empty());
    CHECK(schema_problems(R"({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"})").empty());
  }
  SECTION("each problem names where it is in the schema") {
    CHECK_THAT(schema_problem(R"({"type": "nonsense"})"), Catch::StartsWith("$.type: must be a type name"));
    CHECK_THAT(schema_problem(R"({"properties": {"a": {"type": ["string", 5]}}})"),
               Catch::StartsWith("$.properties.a.type: must be a type name"));
    CHECK(schema_problem(R"({"required": "x"})") == "$.required: expected array, got string");
    CHECK(schema_problem(R"({"minimum": "a"})") == "$.minimum: expected number, got string");
    CHECK(schema_problem(R"({"minLength": -1})") == "$.minLength: must be >= 0, got -1");
    CHECK(schema_problem(R"({"multipleOf": 0})") == "$.multipleOf: must be > 0, got 0");
    CHECK(schema_problem(R"({"items": [{"type": 1}]})") != "");
    CHECK(schema_problem(R"({"anyOf": []})") == "$.anyOf: must have at least 1 item, got 0");
    CHECK(schema_problem(R"({"properties": 3})") == "$.properties: expected object, got integer");
  }
  SECTION("a bad regular expression") {
    CHECK_THAT(schema_problem(R"({"pattern": "(a"})"), Catch::StartsWith("$.pattern: is not a valid regular expression"));
    CHECK_THAT(schema_problem(R"({"patternProperties": {"[": {}}})"),
               Catch::StartsWith(R"($.patternProperties["["]: is not a valid regular expression)"));
  }
  SECTION("references: local only, and resolvable") {
    CHECK_THAT(schema_problem(R"({"$ref": "http://example.com/schema.json"})"),
               Catch::StartsWith(R"($.$ref: "http://example.com/schema.json" is not a local reference)"));
    CHECK_THAT(schema_problem(R"({"properties": {"a": {"$ref": "other.json#/x"}}})"),
               Catch::StartsWith("$.properties.a.$ref: \"other.json#/x\" is not a local reference"));
    CHECK(schema_problem(R"({"$ref": "#/definitions/missing"})") ==
          R"($.$ref: "#/definitions/missing" does not resolve to a schema in this document)");
  }
  SECTION("a $ref cycle that never reaches into the value is refused") {
    CHECK_THAT(schema_problem(R"({"$ref": "#"})"), Catch::Contains("a cycle of $ref"));
    CHECK_THAT(schema_problem(R"({"definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}},
                                  "properties": {"x": {"$ref": "#/definitions/a"}}})"),
               Catch::Contains("a cycle of $ref"));
    CHECK_THAT(schema_problem(R"({"anyOf": [{"type": "string"}, {"not": {"$ref": "#"}}]})"),
               Catch::Contains("a cycle of $ref"));
    // Through properties or items the value gets smaller at each turn: that is a tree, not a cycle.
    CHECK(schema_problems(R"({"properties": {"a": {"$ref": "#"}}, "items": {"$ref": "#"}})").empty());
  }
  SECTION("a schema nested too deeply is refused") {
    std::string deep;
    for (int i = 0; i < 200; ++i) deep += R"({"not": )";
    deep += "{}";
    for (int i = 0; i < 200; ++i) deep += "}";
    boost::json::parse_options options;
    options.max_depth = 1000;
    const auto problems = check_schema(json::parse(deep, {}, options).as_object());
    REQUIRE(problems.size() == 1);
    CHECK(problems[0] == "$: is nested more than 64 levels deep");
  }
  SECTION("another draft is refused") {
    CHECK_THAT(schema_problem(R"({"$schema": "http://json-schema.org/draft-04/schema#"})"),
               Catch::Contains("is not supported"));
  }
  SECTION("problems are rooted where asked") {
    const auto problems = check_schema(json::parse(R"({"required": 1})").as_object(), "verify.json_schema");
    CHECK(problems == Problems{"verify.json_schema.required: expected array, got integer"});
  }
}

TEST_CASE("compile_schema compiles a schema once", "[json_schema]") {
  const auto schema = json::parse(R"({"type": "object", "properties": {"unique_to_this_test": {"type": "string"}}})");
  const auto first = compile_schema(schema.as_object());
  const auto second = compile_schema(json::parse(json::serialize(schema)).as_object());
  REQUIRE(first.schema);
  CHECK(first.schema == second.schema);
  CHECK(first.schema->validate(json::parse(R"({"unique_to_this_test": 1})"))[0].keyword == "type");
}

TEST_CASE("every built-in tool declares a valid draft-07 parameter schema", "[json_schema]") {
  std::vector<std::string> names;
  for (auto name : dagent::tools::builtin_tool_names()) names.emplace_back(name);
  const auto registry = dagent::tools::make_builtin_registry(names);
  REQUIRE_FALSE(registry.tools().empty());
  for (const auto* tool : registry.tools()) {
    INFO(tool->name());
    CHECK(check_schema(tool->parameters_schema()) == Problems{});
  }
}
