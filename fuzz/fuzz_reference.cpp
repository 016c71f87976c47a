// Reference parsing and resolution (src/executor/reference). The input is a parameter string, a
// NUL byte, then JSON for the values references point at: {"step3": <output of step 3>, ...,
// "input": {<task inputs>}, "item": <a for_each item>} ($index is 7 when there is an item). Checks that parse_template splits the string losslessly, that each
// reference's text reads back as the same reference, and that resolve/resolve_params agree with
// a walk of the JSON written here.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "check.hpp"
#include "executor/reference.hpp"

namespace {

namespace json = boost::json;
using namespace dagent::executor;

using dagent::fuzz::check;

class Source : public ReferenceSource {
 public:
  explicit Source(json::value doc) : doc_(std::move(doc)) {
    if (const auto* obj = doc_.if_object())
      if (const auto* in = obj->if_contains("input"); in && in->is_object()) inputs_ = in->get_object();
  }
  const json::value* step_output(int step_id) const override {
    const auto* obj = doc_.if_object();
    return obj ? obj->if_contains("step" + std::to_string(step_id)) : nullptr;
  }
  const json::object& inputs() const override { return inputs_; }
  const json::value* item() const override {
    const auto* obj = doc_.if_object();
    return obj ? obj->if_contains("item") : nullptr;
  }
  const json::value* item_index() const override { return item() ? &index_ : nullptr; }

 private:
  json::value index_ = 7;
  json::value doc_;
  json::object inputs_;
};

bool same_path(const std::vector<PathSegment>& a, const std::vector<PathSegment>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].is_index() != b[i].is_index()) return false;
    if (a[i].is_index() ? a[i].index != b[i].index : a[i].key != b[i].key) return false;
  }
  return true;
}

// The value a reference names, walked independently of resolve().
const json::value* walk(const Reference& ref, const Source& src) {
  const json::value* cur = nullptr;
  std::size_t first = 0;
  if (ref.root == Reference::Root::step) {
    cur = src.step_output(ref.step_id);
  } else if (ref.root == Reference::Root::item) {
    cur = src.item();
  } else if (ref.root == Reference::Root::index) {
    cur = src.item_index();
  } else {
    cur = src.inputs().if_contains(ref.path.at(0).key);
    first = 1;
  }
  for (std::size_t i = first; cur && i < ref.path.size(); ++i) {
    const auto& seg = ref.path[i];
    if (seg.is_index()) {
      const auto* arr = cur->if_array();
      cur = arr && seg.index < arr->size() ? &(*arr)[seg.index] : nullptr;
    } else {
      const auto* obj = cur->if_object();
      cur = obj ? obj->if_contains(seg.key) : nullptr;
    }
  }
  return cur;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t nul = input.find('\0');
  const std::string_view text = input.substr(0, nul);
  json::value doc;
  if (nul != std::string_view::npos) {
    boost::system::error_code ec;
    doc = json::parse(input.substr(nul + 1), ec);
    if (ec) doc = nullptr;
  }
  const Source src(std::move(doc));

  auto tmpl = parse_template(text);
  if (!tmpl) {
    check(text.find('$') != std::string_view::npos, "a string without $ failed to parse");
    check(tmpl.error().find("malformed reference") == 0, "a parse error that does not say what it is");
    return 0;
  }
  // Lossless: literals (with $ written $$ again) and reference texts give the string back.
  std::string rebuilt;
  bool previous_literal = false;
  for (const auto& piece : tmpl->pieces) {
    if (piece.ref) {
      rebuilt += piece.ref->text;
      previous_literal = false;
      const auto again = parse_template(piece.ref->text);
      check(again && again->is_whole_reference(), "a reference's text is not one reference");
      const Reference& r = *again->pieces[0].ref;
      check(r.root == piece.ref->root && r.step_id == piece.ref->step_id && same_path(r.path, piece.ref->path),
            "a reference's text reads back as another reference");
      if (r.root == Reference::Root::step) check(r.step_id > 0, "a step reference with a non-positive id");
      if (r.root == Reference::Root::input) check(!r.path.empty() && !r.path[0].is_index(), "an input reference without a name");
      if (r.root == Reference::Root::index) check(r.path.empty(), "an $index reference with a path");
    } else {
      check(!piece.literal.empty(), "an empty literal piece");
      check(!previous_literal, "two literal pieces in a row");
      previous_literal = true;
      for (char c : piece.literal) {
        rebuilt += c;
        if (c == '$') rebuilt += '$';
      }
    }
  }
  check(rebuilt == text, "the pieces do not give the string back");

  std::string expected;
  bool all_resolve = true;
  for (const auto& piece : tmpl->pieces) {
    if (!piece.ref) {
      expected += piece.literal;
      continue;
    }
    const json::value* mine = walk(*piece.ref, src);
    auto theirs = resolve(*piece.ref, src);
    check(theirs.has_value() == (mine != nullptr), "resolve disagrees with the walk");
    if (!theirs) {
      all_resolve = false;
      check(theirs.error().find(piece.ref->text) != std::string::npos, "a resolve error that does not name the reference");
      continue;
    }
    check(*theirs == mine, "resolve found another value");
    if (const auto* s = mine->if_string()) expected.append(s->data(), s->size());
    else if (!mine->is_double()) expected += json::serialize(*mine);
    else expected += "<double>";
  }

  // The same string as a parameter, nested in an object and an array.
  json::object params{{"p", json::string(text)}, {"q", json::array{1, json::object{{"r", json::string(text)}}}}};
  const CompiledParams compiled = compile_params(params);
  check(compiled.problems.empty(), "compile_params rejected what parse_template accepted");
  const bool has_dollar = text.find('$') != std::string_view::npos;
  check(compiled.slots.size() == (has_dollar ? 2u : 0u), "compile_params missed or invented a slot");
  auto resolved = resolve_params(params, compiled, src);
  check(resolved.has_value() == (all_resolve || !has_dollar), "resolve_params disagrees with resolve");
  if (!resolved) return 0;
  const json::value& p = resolved->at("p");
  check(resolved->at("q").at(1).at("r") == p, "the nested copy resolved differently");
  if (!has_dollar) {
    check(p == params.at("p"), "a string without references changed");
  } else if (tmpl->is_whole_reference()) {
    check(p == *walk(*tmpl->pieces[0].ref, src), "a whole reference did not take the value");
  } else if (expected.find("<double>") == std::string::npos) {
    check(p.is_string() && p.get_string() == expected, "an embedded reference rendered differently");
  }
  return 0;
}
