#include "record/fingerprint.hpp"

#include <catch2/catch.hpp>

#include <boost/json.hpp>

namespace {

namespace json = boost::json;
using namespace dagent::record;
using dagent::net::ChatRequest;
using dagent::net::EmbedRequest;

ChatRequest base() {
  ChatRequest r;
  r.model = "gpt-test";
  r.messages = {{"system", "You plan."}, {"user", "Summarize a.md"}};
  r.temperature = 0.2;
  r.max_tokens = 100;
  r.json_schema = json::parse(R"({"type": "object", "properties": {"x": {"type": "string"}}})").as_object();
  return r;
}

std::string print(const ChatRequest& r, CallKind kind = CallKind::chat) { return fingerprint(normalize(r, kind)); }

}  // namespace

TEST_CASE("normalize writes the request's fields in a fixed order", "[record]") {
  const auto n = normalize(base(), CallKind::chat);
  CHECK(json::serialize(n) ==
        R"({"kind":"chat","model":"gpt-test","messages":[{"role":"system","content":"You plan."},)"
        R"({"role":"user","content":"Summarize a.md"}],"temperature":2E-1,"max_tokens":100,)"
        R"("response_format":{"type":"json_schema","name":"response","strict":true,)"
        R"("schema":{"type":"object","properties":{"x":{"type":"string"}}}}})");
  EmbedRequest e{"emb", {"a", "b"}, 16};
  CHECK(json::serialize(normalize(e)) == R"({"kind":"embed","model":"emb","input":["a","b"],"dimensions":16})");
  e.dimensions.reset();
  CHECK(json::serialize(normalize(e)) == R"({"kind":"embed","model":"emb","input":["a","b"]})");
}

TEST_CASE("equal requests share a fingerprint and every field changes it", "[record]") {
  const std::string reference = print(base());
  CHECK(reference.size() == 64);
  CHECK(reference.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(print(base()) == reference);

  auto changed = base();
  SECTION("model") { changed.model = "gpt-other"; }
  SECTION("message content") { changed.messages[1].content = "Summarize b.md"; }
  SECTION("message role") { changed.messages[1].role = "assistant"; }
  SECTION("an added message") { changed.messages.push_back({"user", "more"}); }
  SECTION("temperature") { changed.temperature = 0.3; }
  SECTION("no temperature") { changed.temperature.reset(); }
  SECTION("max_tokens") { changed.max_tokens = 101; }
  SECTION("schema") { changed.json_schema->at("properties").as_object()["y"] = json::object{{"type", "number"}}; }
  SECTION("schema name") { changed.schema_name = "plan"; }
  SECTION("strict") { changed.strict = false; }
  SECTION("no schema") { changed.json_schema.reset(); }
  CHECK(print(changed) != reference);
}

TEST_CASE("the call kind is part of the fingerprint", "[record]") {
  CHECK(print(base(), CallKind::chat) != print(base(), CallKind::chat_stream));
  CHECK(to_string(CallKind::chat) == "chat");
  CHECK(to_string(CallKind::chat_stream) == "chat_stream");
  CHECK(to_string(CallKind::embed) == "embed");
  EmbedRequest a{"emb", {"x"}, {}};
  EmbedRequest b{"emb", {"y"}, {}};
  CHECK(fingerprint(normalize(a)) == fingerprint(normalize(a)));
  CHECK(fingerprint(normalize(a)) != fingerprint(normalize(b)));
}

TEST_CASE("schema key order does not change the fingerprint", "[record]") {
  auto reordered = base();
  reordered.json_schema = json::parse(R"({"properties": {"x": {"type": "string"}}, "type": "object"})").as_object();
  CHECK(print(reordered) == print(base()));
}

TEST_CASE("describe_difference names each differing path with both values", "[record]") {
  const auto recorded = normalize(base(), CallKind::chat);
  SECTION("a changed message") {
    auto wanted = base();
    wanted.messages[1].content = "Summarize b.md";
    CHECK(describe_difference(recorded, normalize(wanted, CallKind::chat)) ==
          R"(messages[1].content: recorded "Summarize a.md" but got "Summarize b.md")");
  }
  SECTION("a missing and an extra field") {
    auto wanted = base();
    wanted.temperature.reset();
    CHECK(describe_difference(recorded, normalize(wanted, CallKind::chat)) == "temperature: missing (recorded 2E-1)");
    CHECK(describe_difference(normalize(wanted, CallKind::chat), recorded) == "temperature: extra (got 2E-1)");
  }
  SECTION("an extra array element") {
    auto wanted = base();
    wanted.messages.push_back({"user", "and c.md"});
    CHECK(describe_difference(recorded, normalize(wanted, CallKind::chat)) ==
          R"(messages[2]: extra (got {"role":"user","content":"and c.md"}))");
  }
  SECTION("several differences, capped at max_lines") {
    auto wanted = base();
    wanted.model = "m2";
    wanted.max_tokens = 5;
    wanted.messages[0].content = "x";
    CHECK(describe_difference(recorded, normalize(wanted, CallKind::chat), 2) ==
          R"(model: recorded "gpt-test" but got "m2"; messages[0].content: recorded "You plan." but got "x" (and 1 more))");
  }
  SECTION("long strings are clipped around the first difference") {
    auto wanted = base();
    auto changed = base();
    wanted.messages[1].content = std::string(200, 'a') + "X" + std::string(200, 'b');
    changed.messages[1].content = std::string(200, 'a') + "Y" + std::string(200, 'b');
    const auto text = describe_difference(normalize(wanted, CallKind::chat), normalize(changed, CallKind::chat));
    CHECK(text == "messages[1].content: recorded \"…" + std::string(20, 'a') + "X" + std::string(59, 'b') +
                      "…\" but got \"…" + std::string(20, 'a') + "Y" + std::string(59, 'b') + "…\"");
  }
  SECTION("equal requests") { CHECK(describe_difference(recorded, recorded) == "no difference"); }
}

TEST_CASE("request_distance puts a near request before a far one", "[record]") {
  const auto wanted = normalize(base(), CallKind::chat);
  auto near = base();
  near.messages[1].content = "Summarize b.md";
  auto far = base();
  far.messages[1].content = "Write a poem about the sea, in the style of a shipping forecast";
  auto other_model = base();
  other_model.model = "gpt-other";
  const auto d_near = request_distance(normalize(near, CallKind::chat), wanted);
  const auto d_far = request_distance(normalize(far, CallKind::chat), wanted);
  const auto d_model = request_distance(normalize(other_model, CallKind::chat), wanted);
  const auto d_kind = request_distance(normalize(base(), CallKind::chat_stream), wanted);
  CHECK(request_distance(wanted, wanted) == 0);
  CHECK(d_near > 0);
  CHECK(d_near < d_far);
  CHECK(d_far < d_model);
  CHECK(d_model < d_kind);
  CHECK(request_distance(wanted, normalize(near, CallKind::chat)) == d_near);
}
