#include "executor/verifier.hpp"

#include <exception>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using dagent::VerificationStatus;
using dagent::executor::check_criterion;
using dagent::executor::check_rules;
using dagent::executor::RuleVerifier;
using dagent::executor::Verdict;

constexpr std::string_view k_no_judge = "no judge here";

std::vector<std::string> criterion_problems(std::string_view criterion) { return check_criterion(json::parse(criterion)); }

Verdict rules(std::string_view criterion, std::string_view output) {
  return check_rules(json::parse(criterion), json::parse(output), k_no_judge);
}

// A named coroutine: g++ 12 double-frees coroutine lambdas with captures.
asio::awaitable<Verdict> verify_once(RuleVerifier* verifier, json::value criterion, json::value output) {
  co_return co_await verifier->verify(std::move(criterion), std::move(output));
}

Verdict verify_on_loop(std::string_view criterion, std::string_view output) {
  asio::io_context io;
  RuleVerifier verifier;
  std::optional<Verdict> verdict;
  std::exception_ptr error;
  asio::co_spawn(io, verify_once(&verifier, json::parse(criterion), json::parse(output)),
                 [&](std::exception_ptr e, Verdict v) {
                   error = e;
                   verdict = std::move(v);
                 });
  io.run();
  if (error) std::rethrow_exception(error);
  REQUIRE(verdict.has_value());
  return *verdict;
}

}  // namespace

TEST_CASE("check_criterion accepts well-formed criteria", "[executor]") {
  for (const char* c : {
           R"("The summary is under 200 words")",
           R"({"non_empty": true})",
           R"({"non_empty": false})",
           R"({"contains": "README"})",
           R"({"contains": ["a", "b"]})",
           R"({"contains": []})",
           R"({"json_schema": {"type": "object", "required": ["path"]}})",
           R"({"field": "text", "non_empty": true, "contains": "x"})",
           R"(["names the file", {"non_empty": true}, {"contains": ["x"]}])",
       }) {
    INFO(c);
    CHECK(criterion_problems(c).empty());
  }
}

TEST_CASE("check_criterion rejects malformed criteria", "[executor]") {
  SECTION("unknown rules") {
    auto p = criterion_problems(R"({"mentions": "x"})");
    REQUIRE(p.size() == 1);
    CHECK(p[0] == "unknown rule 'mentions' (rules: non_empty, contains, json_schema, field)");
    auto two = criterion_problems(R"({"non_empty": true, "max_words": 200, "min_words": 1})");
    REQUIRE(two.size() == 2);
    CHECK_THAT(two[0], Catch::StartsWith("unknown rule 'max_words'"));
    CHECK_THAT(two[1], Catch::StartsWith("unknown rule 'min_words'"));
  }
  SECTION("rules with the wrong type") {
    CHECK(criterion_problems(R"({"non_empty": "yes"})") == std::vector<std::string>{"non_empty takes true or false"});
    CHECK(criterion_problems(R"({"contains": 5})") ==
          std::vector<std::string>{"contains takes a string or a list of strings"});
    CHECK(criterion_problems(R"({"contains": ["a", 1]})") ==
          std::vector<std::string>{"contains takes a string or a list of strings"});
    CHECK(criterion_problems(R"({"json_schema": "object"})") ==
          std::vector<std::string>{"json_schema takes a JSON Schema object"});
    CHECK(criterion_problems(R"({"field": 3, "non_empty": true})") ==
          std::vector<std::string>{"field takes the name of an output field"});
  }
  SECTION("criteria of the wrong type") {
    for (const char* c : {"42", "true", "null", "1.5"}) {
      INFO(c);
      CHECK(criterion_problems(c) ==
            std::vector<std::string>{"expected a text criterion, a rule object or a list of them"});
    }
  }
  SECTION("empty criteria") {
    CHECK(criterion_problems(R"("")") == std::vector<std::string>{"a text criterion is empty"});
    CHECK(criterion_problems("{}") == std::vector<std::string>{"a rule object needs non_empty, contains or json_schema"});
    CHECK(criterion_problems("[]") == std::vector<std::string>{"an empty list of criteria"});
  }
  SECTION("a json_schema that is not a valid draft-07 schema, named by its place") {
    CHECK(criterion_problems(R"({"json_schema": {"type": "nonsense"}})") ==
          std::vector<std::string>{"json_schema.type: must be a type name or a list of them (null, boolean, integer, "
                                   "number, string, array, object)"});
    CHECK(criterion_problems(R"(["ok", {"json_schema": {"properties": {"n": {"minimum": "a"}}}}])") ==
          std::vector<std::string>{"[1] json_schema.properties.n.minimum: expected number, got string"});
    auto remote = criterion_problems(R"({"json_schema": {"$ref": "https://example.com/s.json"}})");
    REQUIRE(remote.size() == 1);
    CHECK_THAT(remote[0], Catch::StartsWith("json_schema.$ref: \"https://example.com/s.json\" is not a local reference"));
  }
  SECTION("problems in a list name the item") {
    auto p = criterion_problems(R"(["fine", {"x": 1}, 3, {}, ["nested"], ""])");
    REQUIRE(p.size() == 5);
    CHECK_THAT(p[0], Catch::StartsWith("[1] unknown rule 'x'"));
    CHECK(p[1] == "[2] expected a text criterion, a rule object or a list of them");
    CHECK(p[2] == "[3] a rule object needs non_empty, contains or json_schema");
    CHECK(p[3] == "[4] expected a text criterion, a rule object or a list of them");
    CHECK(p[4] == "[5] a text criterion is empty");
  }
}

TEST_CASE("check_rules", "[executor]") {
  SECTION("non_empty passes") {
    for (const char* out : {R"({"text": "hello"})", R"("x")", "0", "false", R"([1])", R"({"a": null})",
                            R"({"content": " ok "})"}) {
      INFO(out);
      auto v = rules(R"({"non_empty": true})", out);
      CHECK(v.status == VerificationStatus::passed);
      CHECK(v.reason == "the rule holds");
    }
  }
  SECTION("non_empty fails") {
    for (const char* out : {R"({"text": ""})", R"("")", R"("  \n\t ")", R"({"text": " \r\n"})", "{}", "[]", "null",
                            R"({"content": ""})"}) {
      INFO(out);
      auto v = rules(R"({"non_empty": true})", out);
      CHECK(v.status == VerificationStatus::failed);
      CHECK(v.reason == "the output is empty");
    }
  }
  SECTION("non_empty false checks nothing") {
    CHECK(rules(R"({"non_empty": false})", R"("")").status == VerificationStatus::passed);
  }
  SECTION("contains a string") {
    auto pass = rules(R"({"contains": "README.md"})", R"({"text": "The summary names README.md."})");
    CHECK(pass.status == VerificationStatus::passed);
    auto fail = rules(R"({"contains": "LICENSE"})", R"({"text": "The summary names README.md."})");
    CHECK(fail.status == VerificationStatus::failed);
    CHECK(fail.reason == R"(the output does not contain "LICENSE")");
    // The match is case-sensitive.
    CHECK(rules(R"({"contains": "readme"})", R"("README")").status == VerificationStatus::failed);
  }
  SECTION("contains a list: every string must appear") {
    CHECK(rules(R"({"contains": ["alpha", "gamma"]})", R"("alpha beta gamma")").status == VerificationStatus::passed);
    auto fail = rules(R"({"contains": ["alpha", "delta", "epsilon"]})", R"("alpha beta gamma")");
    CHECK(fail.status == VerificationStatus::failed);
    CHECK(fail.reason == R"(the output does not contain "delta")");
  }
  SECTION("contains looks at compact JSON when the output has no text") {
    CHECK(rules(R"({"contains": "\"n\":42"})", R"({"n": 42})").status == VerificationStatus::passed);
  }
  SECTION("json_schema") {
    const char* schema = R"({"json_schema": {"type": "object", "required": ["count"],
                             "properties": {"count": {"type": "integer"}, "items": {"type": "array"}}}})";
    auto pass = rules(schema, R"({"count": 3, "items": ["a"]})");
    CHECK(pass.status == VerificationStatus::passed);
    CHECK(pass.reason == "the rule holds");

    auto fail = rules(schema, R"({"count": "3"})");
    CHECK(fail.status == VerificationStatus::failed);
    CHECK(fail.reason == "the output does not match the schema: output.count: expected integer, got string");

    auto two = rules(schema, R"({"items": 5})");
    CHECK(two.status == VerificationStatus::failed);
    CHECK(two.reason == "the output does not match the schema: output.items: expected array, got integer (and 1 more)");
  }
  SECTION("json_schema checks every draft-07 keyword (const, pattern, maxLength, anyOf, oneOf, $ref were ignored)") {
    auto holds = [](std::string_view schema, std::string_view output) {
      return rules(R"({"json_schema": )" + std::string(schema) + "}", output).status == VerificationStatus::passed;
    };
    CHECK(holds(R"({"properties": {"status": {"const": "done"}}})", R"({"status": "done"})"));
    CHECK_FALSE(holds(R"({"properties": {"status": {"const": "done"}}})", R"({"status": "failed"})"));
    CHECK_FALSE(holds(R"({"properties": {"id": {"pattern": "^[A-Z]{3}-[0-9]+$"}}})", R"({"id": "abc-1"})"));
    CHECK_FALSE(holds(R"({"properties": {"title": {"maxLength": 5}}})", R"({"title": "too long"})"));
    CHECK_FALSE(holds(R"({"properties": {"n": {"anyOf": [{"type": "string"}, {"type": "null"}]}}})", R"({"n": 1})"));
    CHECK_FALSE(holds(R"({"properties": {"n": {"oneOf": [{"minimum": 0}, {"maximum": 10}]}}})", R"({"n": 5})"));
    CHECK_FALSE(holds(R"({"definitions": {"pos": {"minimum": 1}}, "properties": {"n": {"$ref": "#/definitions/pos"}}})",
                      R"({"n": 0})"));
    auto fail = rules(R"({"json_schema": {"properties": {"status": {"const": "done"}}}})", R"({"status": "failed"})");
    CHECK(fail.reason == R"(the output does not match the schema: output.status: expected "done", got "failed")");
  }
  SECTION("an invalid json_schema fails the rule: unknown is not a pass") {
    auto v = rules(R"({"json_schema": {"type": "nonsense"}})", R"({"text": "x"})");
    CHECK(v.status == VerificationStatus::failed);
    CHECK_THAT(v.reason, Catch::StartsWith("the output does not match the schema: invalid schema: $.type:"));
  }
  SECTION("field selects what the rule looks at") {
    const char* out = R"({"summary": "a short text", "text": "long long long", "n": 0, "blank": " "})";
    CHECK(rules(R"({"field": "summary", "contains": "short"})", out).status == VerificationStatus::passed);
    auto fail = rules(R"({"field": "summary", "contains": "long"})", out);
    CHECK(fail.status == VerificationStatus::failed);
    CHECK(fail.reason == R"(the output does not contain "long")");
    CHECK(rules(R"({"field": "n", "json_schema": {"type": "integer", "minimum": 0}})", out).status ==
          VerificationStatus::passed);
    CHECK(rules(R"({"field": "blank", "non_empty": true})", out).reason == "the output is empty");
  }
  SECTION("a missing field fails the rule") {
    auto v = rules(R"({"field": "nope", "non_empty": true})", R"({"text": "x"})");
    CHECK(v.status == VerificationStatus::failed);
    CHECK(v.reason == "the output has no field 'nope'");
    auto not_object = rules(R"({"field": "text", "contains": "x"})", R"("x")");
    CHECK(not_object.status == VerificationStatus::failed);
    CHECK(not_object.reason == "the output has no field 'text'");
  }
  SECTION("a text criterion is not requested, with the given reason") {
    auto v = rules(R"("The summary is under 200 words")", R"({"text": "short"})");
    CHECK(v.status == VerificationStatus::not_requested);
    CHECK(v.reason == k_no_judge);
  }
  SECTION("rules and text: not requested, saying the rules passed") {
    auto one = rules(R"(["names the file", {"non_empty": true}])", R"({"text": "README.md"})");
    CHECK(one.status == VerificationStatus::not_requested);
    CHECK(one.reason == "1 rule passed; " + std::string(k_no_judge));
    auto two = rules(R"([{"contains": "READ"}, "names the file", {"non_empty": true}])", R"({"text": "README.md"})");
    CHECK(two.status == VerificationStatus::not_requested);
    CHECK(two.reason == "2 rules passed; " + std::string(k_no_judge));
  }
  SECTION("a failing rule wins over text") {
    auto v = rules(R"(["names the file", {"contains": "LICENSE"}])", R"({"text": "README.md"})");
    CHECK(v.status == VerificationStatus::failed);
    CHECK(v.reason == R"(the output does not contain "LICENSE")");
  }
  SECTION("a list of rules: all must hold, the first failure is reported") {
    auto pass = rules(R"([{"non_empty": true}, {"contains": "a"}, {"contains": ["b"]}])", R"("abc")");
    CHECK(pass.status == VerificationStatus::passed);
    CHECK(pass.reason == "all 3 rules hold");
    auto fail = rules(R"([{"contains": "a"}, {"contains": "zzz"}, {"contains": "yyy"}])", R"("abc")");
    CHECK(fail.status == VerificationStatus::failed);
    CHECK(fail.reason == R"(the output does not contain "zzz")");
  }
}

TEST_CASE("RuleVerifier::verify returns the verdict of check_rules", "[executor]") {
  SECTION("passed") {
    auto v = verify_on_loop(R"({"contains": "hello"})", R"({"text": "hello world"})");
    CHECK(v.status == VerificationStatus::passed);
    CHECK(v.reason == "the rule holds");
  }
  SECTION("failed") {
    auto v = verify_on_loop(R"([{"non_empty": true}, {"field": "missing", "non_empty": true}])", R"({"text": "x"})");
    CHECK(v.status == VerificationStatus::failed);
    CHECK(v.reason == "the output has no field 'missing'");
  }
  SECTION("a text criterion") {
    auto v = verify_on_loop(R"(["is polite", {"non_empty": true}])", R"({"text": "thanks"})");
    CHECK(v.status == VerificationStatus::not_requested);
    CHECK_THAT(v.reason, Catch::StartsWith("1 rule passed; ") && Catch::Contains("judge"));
    auto direct = check_rules(json::parse(R"(["is polite", {"non_empty": true}])"), json::parse(R"({"text": "thanks"})"),
                              "a text criterion needs the LLM judge (verification.llm_judge)");
    CHECK(v.reason == direct.reason);
  }
}
