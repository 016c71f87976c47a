#include "text/json_utf8.hpp"

#include <catch2/catch.hpp>

#include <string>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "text/bad_utf8_samples.hpp"
#include "text/utf8.hpp"

namespace {

namespace json = boost::json;
using dagent::test::k_bad_text;
using dagent::test::k_bad_text_repaired;
using dagent::test::k_fffd;
using dagent::text::is_valid_utf8;
using dagent::text::make_valid_utf8;
using dagent::text::serialize_valid;

}  // namespace

TEST_CASE("make_valid_utf8 repairs every string and key of a JSON value", "[text]") {
  json::value v = json::object{{"plain", "ok"},
                               {k_bad_text, json::array{k_bad_text, 1, json::object{{"k\xE9y", k_bad_text}}}},
                               {"nested", json::object{{"deep", json::array{json::array{k_bad_text}}}}}};
  CHECK_FALSE(is_valid_utf8(json::serialize(v)));
  CHECK(make_valid_utf8(v));
  const json::object& o = v.as_object();
  CHECK(o.at("plain") == "ok");
  REQUIRE(o.contains(k_bad_text_repaired));
  const json::array& a = o.at(k_bad_text_repaired).as_array();
  CHECK(a[0] == k_bad_text_repaired.c_str());
  CHECK(a[1] == 1);
  CHECK(a[2].at("k" + k_fffd + "y") == k_bad_text_repaired.c_str());
  CHECK(o.at("nested").at("deep").as_array()[0].as_array()[0] == k_bad_text_repaired.c_str());
  CHECK(is_valid_utf8(json::serialize(v)));
  // Key order is kept.
  CHECK(o.begin()->key() == "plain");
  CHECK((o.begin() + 1)->key() == k_bad_text_repaired);
}

TEST_CASE("make_valid_utf8 leaves a valid value alone and says so", "[text]") {
  json::value v = json::parse(R"({"a": ["caf\u00e9", {"\u20ac": 1.5}], "b": null, "c": true})");
  const json::value before = v;
  CHECK_FALSE(make_valid_utf8(v));
  CHECK(v == before);
  json::object o = v.as_object();
  CHECK_FALSE(make_valid_utf8(o));
  CHECK(o == before.as_object());
}

TEST_CASE("make_valid_utf8 keeps the first of two keys that become equal", "[text]") {
  json::object o{{"a\xE9", 1}, {"a\xE8", 2}, {"b", 3}};
  CHECK(make_valid_utf8(o));
  CHECK(o.size() == 2);
  CHECK(o.at("a" + k_fffd) == 1);
  CHECK(o.at("b") == 3);
}

TEST_CASE("make_valid_utf8 walks any depth without recursion", "[text]") {
  json::value v = json::string(k_bad_text);
  for (int i = 0; i < 100000; ++i) {
    json::array wrapper;
    wrapper.emplace_back(std::move(v));
    v = std::move(wrapper);
  }
  CHECK(make_valid_utf8(v));
  const json::value* inner = &v;
  while (inner->is_array()) inner = &inner->as_array()[0];
  CHECK(*inner == k_bad_text_repaired.c_str());
  // Boost.JSON's destructor recurses: unwind the nesting by hand.
  while (v.is_array() && !v.as_array().empty()) {
    json::value next = std::move(v.as_array()[0]);
    v = std::move(next);
  }
}

TEST_CASE("serialize_valid writes valid JSON text for any strings", "[text]") {
  const json::value v = json::object{{"k\xE9y", k_bad_text}, {"ok", "caf\xC3\xA9"}};
  const std::string raw = json::serialize(v);
  CHECK_FALSE(is_valid_utf8(raw));  // what dagent wrote before
  const std::string text = serialize_valid(v);
  CHECK(is_valid_utf8(text));
  json::value back = json::parse(text);
  json::value expected = v;
  make_valid_utf8(expected);
  CHECK(back == expected);
  // Valid values serialize exactly as before.
  const json::value good = json::object{{"a", "caf\xC3\xA9 \xF0\x9F\x98\x80"}};
  CHECK(serialize_valid(good) == json::serialize(good));
}
