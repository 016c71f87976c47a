#include "executor/reference.hpp"

#include <map>
#include <string>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <catch2/catch.hpp>

namespace {

namespace json = boost::json;
using dagent::executor::compile_params;
using dagent::executor::parse_template;
using dagent::executor::Reference;
using dagent::executor::ReferenceSource;
using dagent::executor::resolve;
using dagent::executor::resolve_params;
using dagent::executor::StringTemplate;

// Step outputs and task inputs held in maps, as the scheduler would hold them.
class MapSource final : public ReferenceSource {
 public:
  std::map<int, json::value> outputs;
  json::object task_inputs;

  const json::value* step_output(int step_id) const override {
    auto it = outputs.find(step_id);
    return it == outputs.end() ? nullptr : &it->second;
  }
  const json::object& inputs() const override { return task_inputs; }
};

MapSource sample_source() {
  MapSource src;
  src.outputs[1] = json::parse(R"({
    "n": 42, "ok": true, "obj": {"a": [1, {"b": "deep"}]}, "list": [10, 20, 30],
    "nothing": null, "pi": 3.5, "text": "hello", "empty": ""
  })");
  src.outputs[2] = "plain string";
  src.outputs[3] = 7;
  src.outputs[4] = json::parse(R"(["x", "y"])");
  src.task_inputs = json::parse(R"({"topic": "rivers", "cfg": {"depth": 2, "tags": ["a", "b"]}})").as_object();
  return src;
}

StringTemplate parsed_ok(std::string_view text) {
  auto t = parse_template(text);
  INFO(text);
  REQUIRE(t.has_value());
  return *t;
}

std::string parse_error(std::string_view text) {
  auto t = parse_template(text);
  INFO(text);
  REQUIRE(t.has_error());
  return t.error();
}

// Resolves the parameters {"p": param} and returns the value of "p", or the error.
boost::system::result<json::value, std::string> resolve_one(const json::value& param, const MapSource& src) {
  json::object params{{"p", param}};
  auto compiled = compile_params(params);
  REQUIRE(compiled.problems.empty());
  auto out = resolve_params(params, compiled, src);
  if (!out) return {boost::system::in_place_error, out.error()};
  return out->at("p");
}

json::value resolved_ok(const json::value& param, const MapSource& src) {
  auto r = resolve_one(param, src);
  INFO(json::serialize(param));
  if (r.has_error()) FAIL(r.error());
  return *r;
}

std::string resolved_error(const json::value& param, const MapSource& src) {
  auto r = resolve_one(param, src);
  INFO(json::serialize(param));
  REQUIRE(r.has_error());
  return r.error();
}

}  // namespace

TEST_CASE("parse_template reads references", "[executor]") {
  SECTION("$stepN is a whole reference") {
    auto t = parsed_ok("$step1");
    REQUIRE(t.pieces.size() == 1);
    CHECK(t.is_whole_reference());
    const auto& ref = *t.pieces[0].ref;
    CHECK(ref.root == Reference::Root::step);
    CHECK(ref.step_id == 1);
    CHECK(ref.path.empty());
    CHECK(ref.text == "$step1");
  }
  SECTION("a path of fields and indexes") {
    auto t = parsed_ok("$step12.a.b[0].c");
    REQUIRE(t.is_whole_reference());
    const auto& ref = *t.pieces[0].ref;
    CHECK(ref.step_id == 12);
    REQUIRE(ref.path.size() == 4);
    CHECK(ref.path[0].key == "a");
    CHECK(ref.path[1].key == "b");
    CHECK(ref.path[2].is_index());
    CHECK(ref.path[2].index == 0);
    CHECK(ref.path[3].key == "c");
    CHECK(ref.text == "$step12.a.b[0].c");
    CHECK(dagent::executor::to_string(ref.path) == "a.b[0].c");
  }
  SECTION("indexes right after the step and in a row") {
    auto t = parsed_ok("$step3[2][10]");
    REQUIRE(t.is_whole_reference());
    const auto& ref = *t.pieces[0].ref;
    CHECK(ref.step_id == 3);
    REQUIRE(ref.path.size() == 2);
    CHECK(ref.path[0].index == 2);
    CHECK(ref.path[1].index == 10);
    CHECK(dagent::executor::to_string(ref.path) == "[2][10]");
  }
  SECTION("$input.name") {
    auto t = parsed_ok("$input.name");
    REQUIRE(t.is_whole_reference());
    const auto& ref = *t.pieces[0].ref;
    CHECK(ref.root == Reference::Root::input);
    REQUIRE(ref.path.size() == 1);
    CHECK(ref.path[0].key == "name");
    CHECK(ref.text == "$input.name");
  }
  SECTION("text with several references") {
    auto t = parsed_ok("Read $step1.path and $input.topic, then $step2[1] now");
    CHECK_FALSE(t.is_whole_reference());
    REQUIRE(t.pieces.size() == 7);
    CHECK(t.pieces[0].literal == "Read ");
    CHECK_FALSE(t.pieces[0].ref.has_value());
    REQUIRE(t.pieces[1].ref.has_value());
    CHECK(t.pieces[1].ref->text == "$step1.path");
    CHECK(t.pieces[2].literal == " and ");
    REQUIRE(t.pieces[3].ref.has_value());
    CHECK(t.pieces[3].ref->text == "$input.topic");
    CHECK(t.pieces[4].literal == ", then ");
    REQUIRE(t.pieces[5].ref.has_value());
    CHECK(t.pieces[5].ref->text == "$step2[1]");
    CHECK(t.pieces[5].ref->step_id == 2);
    CHECK(t.pieces[6].literal == " now");
  }
  SECTION("two references side by side") {
    auto t = parsed_ok("$step1$step2");
    REQUIRE(t.pieces.size() == 2);
    CHECK(t.pieces[0].ref->step_id == 1);
    CHECK(t.pieces[1].ref->step_id == 2);
    CHECK_FALSE(t.is_whole_reference());
  }
  SECTION("$$ is a literal $") {
    auto t = parsed_ok("costs $$5");
    REQUIRE(t.pieces.size() == 1);
    CHECK_FALSE(t.pieces[0].ref.has_value());
    CHECK(t.pieces[0].literal == "costs $5");
    CHECK_FALSE(t.is_whole_reference());

    auto only = parsed_ok("$$");
    REQUIRE(only.pieces.size() == 1);
    CHECK(only.pieces[0].literal == "$");
  }
  SECTION("$$step1 is the literal text $step1") {
    auto t = parsed_ok("$$step1");
    REQUIRE(t.pieces.size() == 1);
    CHECK_FALSE(t.pieces[0].ref.has_value());
    CHECK(t.pieces[0].literal == "$step1");
    CHECK_FALSE(t.is_whole_reference());
  }
  SECTION("$$$step1 is a literal $ then a reference") {
    auto t = parsed_ok("$$$step1");
    REQUIRE(t.pieces.size() == 2);
    CHECK(t.pieces[0].literal == "$");
    REQUIRE(t.pieces[1].ref.has_value());
    CHECK(t.pieces[1].ref->step_id == 1);
  }
  SECTION("a trailing dot stays literal text") {
    auto t = parsed_ok("see $step1.text.");
    REQUIRE(t.pieces.size() == 3);
    CHECK(t.pieces[0].literal == "see ");
    REQUIRE(t.pieces[1].ref.has_value());
    CHECK(t.pieces[1].ref->text == "$step1.text");
    REQUIRE(t.pieces[1].ref->path.size() == 1);
    CHECK(t.pieces[1].ref->path[0].key == "text");
    CHECK(t.pieces[2].literal == ".");
  }
  SECTION("a reference ends at other punctuation") {
    auto t = parsed_ok("($step1.a-b) $step2. Done");
    REQUIRE(t.pieces.size() == 5);
    CHECK(t.pieces[0].literal == "(");
    CHECK(t.pieces[1].ref->text == "$step1.a");
    CHECK(t.pieces[2].literal == "-b) ");
    CHECK(t.pieces[3].ref->text == "$step2");
    CHECK(t.pieces[4].literal == ". Done");
  }
  SECTION("text without $ is one literal") {
    auto t = parsed_ok("no references here");
    REQUIRE(t.pieces.size() == 1);
    CHECK(t.pieces[0].literal == "no references here");
    CHECK(parsed_ok("").pieces.empty());
  }
}

TEST_CASE("parse_template rejects malformed references", "[executor]") {
  const std::string other = "references are $stepN..., $input.NAME, $item... or $index; write $$ for a literal $";
  SECTION("a lone $") {
    CHECK(parse_error("$") == "malformed reference '$' at offset 0: " + other);
    CHECK(parse_error("costs 5$") == "malformed reference '$' at offset 7: " + other);
    CHECK(parse_error("a $ b") == "malformed reference '$' at offset 2: " + other);
  }
  SECTION("an unknown root") {
    CHECK(parse_error("$foo") == "malformed reference '$foo' at offset 0: " + other);
    CHECK(parse_error("see $foo.bar") == "malformed reference '$foo.bar' at offset 4: " + other);
  }
  SECTION("$step without a valid id") {
    CHECK(parse_error("$step") == "malformed reference '$step' at offset 0: expected a step id after $step");
    CHECK(parse_error("$stepX") == "malformed reference '$stepX' at offset 0: expected a step id after $step");
    CHECK(parse_error("$step.a") == "malformed reference '$step.a' at offset 0: expected a step id after $step");
    CHECK(parse_error("$step0") == "malformed reference '$step0' at offset 0: step ids are positive integers");
    CHECK_THAT(parse_error("$step99999999999"), Catch::EndsWith("step ids are positive integers"));
  }
  SECTION("$stepN glued to a word") {
    CHECK(parse_error("$step1abc") ==
          "malformed reference '$step1abc' at offset 0: a step id is followed by .field, [index] or the end of the "
          "reference");
    CHECK_THAT(parse_error("x $step2_y"), Catch::StartsWith("malformed reference '$step2_y' at offset 2: "));
  }
  SECTION("$input without a name") {
    CHECK(parse_error("$input") == "malformed reference '$input' at offset 0: expected $input.NAME");
    CHECK(parse_error("$input.") == "malformed reference '$input.' at offset 0: expected $input.NAME");
    CHECK(parse_error("$input.1x") == "malformed reference '$input.1x' at offset 0: expected $input.NAME");
    CHECK(parse_error("$inputs.x") == "malformed reference '$inputs.x' at offset 0: expected $input.NAME");
  }
  SECTION("a bad index") {
    const std::string why = "an index is written [N] with a non-negative integer N";
    CHECK_THAT(parse_error("$step1.a[x]"),
               Catch::StartsWith("malformed reference '$step1.a[x") && Catch::EndsWith("at offset 0: " + why));
    CHECK_THAT(parse_error("ok $step1[-1]"), Catch::Contains("at offset 3: " + why));
    CHECK_THAT(parse_error("$step1["), Catch::EndsWith(why));
    CHECK_THAT(parse_error("$step1[2"), Catch::EndsWith(why));
    CHECK_THAT(parse_error("$step1[]"), Catch::EndsWith(why));
  }
  SECTION("the first malformed reference is reported after good ones") {
    CHECK_THAT(parse_error("$step1.a and $$ and $nope"), Catch::StartsWith("malformed reference '$nope' at offset 20"));
  }
}

TEST_CASE("compile_params finds templated strings", "[executor]") {
  SECTION("slots and references, nested") {
    auto params = json::parse(R"({
      "a": "plain", "b": "$step1", "c": {"d": ["lit", "see $step2.x"]}, "e": 5, "f": "$$", "g": [["$input.k"]]
    })").as_object();
    auto compiled = compile_params(params);
    CHECK(compiled.problems.empty());
    REQUIRE(compiled.slots.size() == 4);
    CHECK(dagent::executor::to_string(compiled.slots[0].where.path) == "b");
    CHECK(compiled.slots[0].tmpl.is_whole_reference());
    CHECK(dagent::executor::to_string(compiled.slots[1].where.path) == "c.d[1]");
    CHECK_FALSE(compiled.slots[1].tmpl.is_whole_reference());
    CHECK(dagent::executor::to_string(compiled.slots[2].where.path) == "f");
    CHECK(dagent::executor::to_string(compiled.slots[3].where.path) == "g[0][0]");
    auto refs = compiled.references();
    REQUIRE(refs.size() == 3);
    CHECK(refs[0].text == "$step1");
    CHECK(refs[1].text == "$step2.x");
    CHECK(refs[1].step_id == 2);
    CHECK(refs[2].root == Reference::Root::input);
    CHECK(refs[2].text == "$input.k");
  }
  SECTION("malformed references name the parameter") {
    auto params = json::parse(R"({"q": {"r": ["ok $step1", "$bad"]}, "s": "$step0", "t": "fine"})").as_object();
    auto compiled = compile_params(params);
    REQUIRE(compiled.problems.size() == 2);
    CHECK_THAT(compiled.problems[0], Catch::StartsWith("parameter q.r[1]: malformed reference '$bad' at offset 0"));
    CHECK_THAT(compiled.problems[1], Catch::StartsWith("parameter s: malformed reference '$step0' at offset 0"));
    REQUIRE(compiled.slots.size() == 1);
    CHECK(compiled.references().at(0).text == "$step1");
  }
}

TEST_CASE("resolve and resolve_params", "[executor]") {
  const auto src = sample_source();

  SECTION("a whole reference keeps the JSON type") {
    auto n = resolved_ok("$step1.n", src);
    CHECK(n.is_int64());
    CHECK(n == 42);
    auto ok = resolved_ok("$step1.ok", src);
    CHECK(ok.is_bool());
    CHECK(ok == true);
    auto obj = resolved_ok("$step1.obj", src);
    REQUIRE(obj.is_object());
    CHECK(obj == json::parse(R"({"a": [1, {"b": "deep"}]})"));
    auto list = resolved_ok("$step1.list", src);
    REQUIRE(list.is_array());
    CHECK(list == json::parse("[10, 20, 30]"));
    CHECK(resolved_ok("$step1.nothing", src).is_null());
    auto pi = resolved_ok("$step1.pi", src);
    REQUIRE(pi.is_double());
    CHECK(pi.get_double() == 3.5);
    CHECK(resolved_ok("$step1.empty", src) == "");
    CHECK(resolved_ok("$step3", src) == 7);
    CHECK(resolved_ok("$step1", src) == src.outputs.at(1));
  }
  SECTION("nested paths and indexes") {
    CHECK(resolved_ok("$step1.obj.a[1].b", src) == "deep");
    CHECK(resolved_ok("$step1.obj.a[0]", src) == 1);
    CHECK(resolved_ok("$step1.list[2]", src) == 30);
    CHECK(resolved_ok("$step4[1]", src) == "y");
    CHECK(resolved_ok("$input.topic", src) == "rivers");
    CHECK(resolved_ok("$input.cfg.depth", src) == 2);
    CHECK(resolved_ok("$input.cfg.tags[1]", src) == "b");
  }
  SECTION("resolve returns a pointer into the source") {
    auto t = parse_template("$step1.obj.a");
    REQUIRE(t.has_value());
    auto v = resolve(*t->pieces[0].ref, src);
    REQUIRE(v.has_value());
    CHECK(*v == &src.outputs.at(1).at("obj").at("a"));
  }
  SECTION("embedded references become text") {
    CHECK(resolved_ok("t=$step1.text!", src) == "t=hello!");
    CHECK(resolved_ok("n=$step1.n", src) == "n=42");
    CHECK(resolved_ok("[$step1.ok/$step1.nothing]", src) == "[true/null]");
    CHECK(resolved_ok("a=$step1.obj.a", src) == R"(a=[1,{"b":"deep"}])");
    CHECK(resolved_ok("obj: $step1.obj", src) == R"(obj: {"a":[1,{"b":"deep"}]})");
    CHECK(resolved_ok("$step2 and $input.topic", src) == "plain string and rivers");
    CHECK(resolved_ok("x$step1.empty.", src) == "x.");
    // A double as compact JSON text: it reads back as the same number.
    auto pi = resolved_ok("$step1.pi ", src);
    REQUIRE(pi.is_string());
    std::string pi_text(pi.get_string());
    CHECK(json::parse(pi_text.substr(0, pi_text.size() - 1)) == 3.5);
  }
  SECTION("$$ becomes $") {
    CHECK(resolved_ok("costs $$5", src) == "costs $5");
    CHECK(resolved_ok("$$", src) == "$");
    CHECK(resolved_ok("$$step1", src) == "$step1");
    CHECK(resolved_ok("$$$step3 each", src) == "$7 each");
  }
  SECTION("nested parameters") {
    auto params = json::parse(R"({
      "outer": {"inner": "$step3", "list": ["$step2", "x $step3 y", 5, {"deep": "$step1.list[2]"}]},
      "keep": 1, "plain": "text", "flag": false
    })").as_object();
    auto compiled = compile_params(params);
    REQUIRE(compiled.problems.empty());
    auto out = resolve_params(params, compiled, src);
    REQUIRE(out.has_value());
    CHECK(*out == json::parse(R"({
      "outer": {"inner": 7, "list": ["plain string", "x 7 y", 5, {"deep": 30}]},
      "keep": 1, "plain": "text", "flag": false
    })").as_object());
    // The input parameters are left as they were.
    CHECK(params.at("outer").at("inner") == "$step3");
  }
  SECTION("a missing field names the reference and the field") {
    CHECK(resolved_error("$step1.obj.zzz", src) == "reference $step1.obj.zzz: $step1.obj has no field 'zzz'");
    CHECK(resolved_error("see $step1.nope.x", src) == "reference $step1.nope.x: $step1 has no field 'nope'");
    CHECK(resolved_error("$input.cfg.width", src) == "reference $input.cfg.width: $input.cfg has no field 'width'");
  }
  SECTION("a field of something that is not an object") {
    CHECK(resolved_error("$step1.text.x", src) == "reference $step1.text.x: $step1.text is a string, not an object");
    CHECK(resolved_error("$step3.x", src) == "reference $step3.x: $step3 is a number, not an object");
    CHECK(resolved_error("$step1.list.x", src) == "reference $step1.list.x: $step1.list is an array, not an object");
  }
  SECTION("an index out of range") {
    CHECK(resolved_error("$step1.list[3]", src) ==
          "reference $step1.list[3]: index 3 is out of range ($step1.list has 3 elements)");
    CHECK(resolved_error("$step1.obj.a[1].b[0]", src) ==
          "reference $step1.obj.a[1].b[0]: $step1.obj.a[1].b is a string, not an array");
    CHECK(resolved_error("$step4[2]", src) == "reference $step4[2]: index 2 is out of range ($step4 has 2 elements)");
  }
  SECTION("indexing something that is not an array") {
    CHECK(resolved_error("$step1.obj[0]", src) == "reference $step1.obj[0]: $step1.obj is an object, not an array");
    CHECK(resolved_error("$step1.nothing[0]", src) == "reference $step1.nothing[0]: $step1.nothing is null, not an array");
    CHECK(resolved_error("$step1.ok[0]", src) == "reference $step1.ok[0]: $step1.ok is a boolean, not an array");
  }
  SECTION("a step with no output") {
    CHECK(resolved_error("$step9", src) == "reference $step9: step 9 has no output");
    CHECK(resolved_error("text $step9.a[0]", src) == "reference $step9.a[0]: step 9 has no output");
  }
  SECTION("a missing input") {
    CHECK(resolved_error("$input.nope", src) == "reference $input.nope: the task has no input 'nope'");
    CHECK(resolved_error("about $input.nope.x", src) == "reference $input.nope.x: the task has no input 'nope'");
  }
  SECTION("the first failing reference of nested parameters is reported") {
    auto params = json::parse(R"({"a": ["$step3", {"b": "x $step1.zzz"}]})").as_object();
    auto out = resolve_params(params, compile_params(params), src);
    REQUIRE(out.has_error());
    CHECK(out.error() == "reference $step1.zzz: $step1 has no field 'zzz'");
  }
}

TEST_CASE("resolve_params with an empty key inside nested parameters", "[executor]") {
  // PathSegment marks an index by an empty key, so a nested "" key is mistaken for index 0.
  const auto src = sample_source();
  auto params = json::parse(R"({"headers": {"": "$step3"}})").as_object();
  auto compiled = compile_params(params);
  REQUIRE(compiled.problems.empty());
  auto out = resolve_params(params, compiled, src);
  INFO((out.has_error() ? out.error() : std::string()));
  REQUIRE(out.has_value());
  CHECK(*out == json::parse(R"({"headers": {"": 7}})").as_object());
}
