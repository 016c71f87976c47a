#include "executor/reference.hpp"

#include <charconv>

#include <boost/json/serialize.hpp>

namespace dagent::executor {
namespace {

namespace json = boost::json;

bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_ident_char(char c) { return is_ident_start(c) || (c >= '0' && c <= '9'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string malformed(std::string_view text, std::size_t at, std::string_view why) {
  auto end = at + 1;
  while (end < text.size() && end < at + 24 && (is_ident_char(text[end]) || text[end] == '.' || text[end] == '['))
    ++end;
  return "malformed reference '" + std::string(text.substr(at, end - at)) + "' at offset " + std::to_string(at) +
         ": " + std::string(why);
}

// Reads `.key` and `[N]` hops starting at `i`; stops before anything else.
bool parse_path(std::string_view text, std::size_t& i, std::vector<PathSegment>& path, std::string& error,
                std::size_t start) {
  while (i < text.size()) {
    if (text[i] == '.' && i + 1 < text.size() && is_ident_start(text[i + 1])) {
      auto j = i + 1;
      while (j < text.size() && is_ident_char(text[j])) ++j;
      path.push_back({std::string(text.substr(i + 1, j - i - 1)), 0});
      i = j;
    } else if (text[i] == '[') {
      auto j = i + 1;
      std::size_t index = 0;
      while (j < text.size() && is_digit(text[j]) && j - i < 12) index = index * 10 + static_cast<std::size_t>(text[j++] - '0');
      if (j == i + 1 || j >= text.size() || text[j] != ']') {
        error = malformed(text, start, "an index is written [N] with a non-negative integer N");
        return false;
      }
      path.push_back({std::string(), index, true});
      i = j + 1;
    } else {
      break;
    }
  }
  return true;
}

void compile_value(const json::value& v, ParamLocation& where, CompiledParams& out) {
  switch (v.kind()) {
    case json::kind::string: {
      const auto& s = v.get_string();
      if (s.find('$') == json::string::npos) return;
      auto tmpl = parse_template(s);
      if (tmpl) {
        out.slots.push_back({where, std::move(*tmpl)});
      } else {
        out.problems.push_back("parameter " + to_string(where.path) + ": " + tmpl.error());
      }
      return;
    }
    case json::kind::object:
      for (const auto& kv : v.get_object()) {
        where.path.push_back({std::string(kv.key()), 0});
        compile_value(kv.value(), where, out);
        where.path.pop_back();
      }
      return;
    case json::kind::array: {
      const auto& arr = v.get_array();
      for (std::size_t i = 0; i < arr.size(); ++i) {
        where.path.push_back({std::string(), i, true});
        compile_value(arr[i], where, out);
        where.path.pop_back();
      }
      return;
    }
    default:
      return;
  }
}

}  // namespace

std::string kind_of(const json::value& v) {
  switch (v.kind()) {
    case json::kind::object: return "an object";
    case json::kind::array: return "an array";
    case json::kind::string: return "a string";
    case json::kind::null: return "null";
    case json::kind::bool_: return "a boolean";
    default: return "a number";
  }
}

json::value* find_param(json::object& params, const ParamLocation& where) {
  if (where.path.empty()) return nullptr;
  json::value* cur = params.if_contains(where.path.front().key);
  for (std::size_t i = 1; cur && i < where.path.size(); ++i) {
    const auto& seg = where.path[i];
    if (seg.is_index()) {
      cur = (cur->is_array() && seg.index < cur->get_array().size()) ? &cur->get_array()[seg.index] : nullptr;
    } else {
      cur = cur->is_object() ? cur->get_object().if_contains(seg.key) : nullptr;
    }
  }
  return cur;
}

std::string to_string(const std::vector<PathSegment>& path) {
  std::string out;
  for (const auto& seg : path) {
    if (seg.is_index()) {
      out += '[' + std::to_string(seg.index) + ']';
    } else {
      if (!out.empty()) out += '.';
      out += seg.key;
    }
  }
  return out;
}

boost::system::result<StringTemplate, std::string> parse_template(std::string_view text) {
  StringTemplate out;
  std::string literal;
  std::size_t i = 0;
  auto flush = [&] {
    if (!literal.empty()) out.pieces.push_back({std::move(literal), std::nullopt}), literal.clear();
  };
  while (i < text.size()) {
    char c = text[i];
    if (c != '$') {
      literal += c;
      ++i;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '$') {
      literal += '$';
      i += 2;
      continue;
    }
    auto start = i;
    auto rest = text.substr(i + 1);
    Reference ref;
    if (rest.starts_with("step")) {
      auto j = i + 5;
      std::int64_t id = 0;
      while (j < text.size() && is_digit(text[j]) && id <= INT32_MAX) id = id * 10 + (text[j++] - '0');
      if (j == i + 5) return malformed(text, start, "expected a step id after $step");
      if (id <= 0 || id > INT32_MAX) return malformed(text, start, "step ids are positive integers");
      if (j < text.size() && is_ident_char(text[j]))
        return malformed(text, start, "a step id is followed by .field, [index] or the end of the reference");
      ref.root = Reference::Root::step;
      ref.step_id = static_cast<int>(id);
      i = j;
    } else if (rest.starts_with("input")) {
      auto j = i + 6;
      if (j >= text.size() || text[j] != '.' || j + 1 >= text.size() || !is_ident_start(text[j + 1]))
        return malformed(text, start, "expected $input.NAME");
      ref.root = Reference::Root::input;
      i = j;
    } else if (rest.starts_with("item") && (rest.size() == 4 || !is_ident_char(rest[4]))) {
      ref.root = Reference::Root::item;
      i += 5;
    } else if (rest.starts_with("index") && (rest.size() == 5 || !is_ident_char(rest[5]))) {
      ref.root = Reference::Root::index;
      i += 6;  // a number has no fields: "$index.md" is the index followed by ".md"
    } else {
      return malformed(text, start,
                       "references are $stepN..., $input.NAME, $item... or $index; write $$ for a literal $");
    }
    std::string error;
    if (ref.root != Reference::Root::index && !parse_path(text, i, ref.path, error, start)) return error;
    ref.text = std::string(text.substr(start, i - start));
    flush();
    out.pieces.push_back({std::string(), std::move(ref)});
  }
  flush();
  return out;
}

std::vector<Reference> CompiledParams::references() const {
  std::vector<Reference> refs;
  for (const auto& slot : slots)
    for (const auto& piece : slot.tmpl.pieces)
      if (piece.ref) refs.push_back(*piece.ref);
  return refs;
}

CompiledParams compile_params(const boost::json::object& params) {
  CompiledParams out;
  ParamLocation where;
  for (const auto& kv : params) {
    where.path.push_back({std::string(kv.key()), 0});
    compile_value(kv.value(), where, out);
    where.path.pop_back();
  }
  return out;
}

boost::system::result<const boost::json::value*, std::string> resolve(const Reference& ref,
                                                                      const ReferenceSource& src) {
  const json::value* cur = nullptr;
  std::size_t first = 0;
  std::string walked;
  if (ref.root == Reference::Root::step) {
    cur = src.step_output(ref.step_id);
    if (!cur) return "reference " + ref.text + ": step " + std::to_string(ref.step_id) + " has no output";
    walked = "$step" + std::to_string(ref.step_id);
  } else if (ref.root == Reference::Root::item || ref.root == Reference::Root::index) {
    cur = ref.root == Reference::Root::item ? src.item() : src.item_index();
    if (!cur) return "reference " + ref.text + ": only a step with for_each has an item";
    walked = ref.root == Reference::Root::item ? "$item" : "$index";
  } else {
    const auto& name = ref.path.front().key;
    cur = src.inputs().if_contains(name);
    if (!cur) return "reference " + ref.text + ": the task has no input '" + name + "'";
    first = 1;
    walked = "$input." + name;
  }
  for (std::size_t i = first; i < ref.path.size(); ++i) {
    const auto& seg = ref.path[i];
    if (seg.is_index()) {
      const auto* arr = cur->if_array();
      if (!arr) return "reference " + ref.text + ": " + walked + " is " + kind_of(*cur) + ", not an array";
      if (seg.index >= arr->size())
        return "reference " + ref.text + ": index " + std::to_string(seg.index) + " is out of range (" + walked +
               " has " + std::to_string(arr->size()) + " elements)";
      cur = &(*arr)[seg.index];
      walked += '[' + std::to_string(seg.index) + ']';
    } else {
      const auto* obj = cur->if_object();
      if (!obj) return "reference " + ref.text + ": " + walked + " is " + kind_of(*cur) + ", not an object";
      cur = obj->if_contains(seg.key);
      if (!cur) return "reference " + ref.text + ": " + walked + " has no field '" + seg.key + "'";
      walked += '.' + seg.key;
    }
  }
  return cur;
}

boost::system::result<boost::json::object, std::string> resolve_params(const boost::json::object& params,
                                                                        const CompiledParams& compiled,
                                                                        const ReferenceSource& src) {
  json::object out = params;
  for (const auto& slot : compiled.slots) {
    json::value* target = find_param(out, slot.where);
    if (!target) return "internal error: parameter " + to_string(slot.where.path) + " vanished";
    if (slot.tmpl.is_whole_reference()) {
      auto v = resolve(*slot.tmpl.pieces[0].ref, src);
      if (!v) return v.error();
      *target = **v;
      continue;
    }
    std::string text;
    for (const auto& piece : slot.tmpl.pieces) {
      if (!piece.ref) {
        text += piece.literal;
        continue;
      }
      auto v = resolve(*piece.ref, src);
      if (!v) return v.error();
      if (const auto* s = (*v)->if_string()) {
        text.append(s->data(), s->size());
      } else if ((*v)->is_double()) {
        char buf[32];
        auto end = std::to_chars(buf, buf + sizeof buf, (*v)->get_double()).ptr;
        text.append(buf, end);
      } else {
        text += json::serialize(**v);
      }
    }
    *target = json::string(text);
  }
  return out;
}

}  // namespace dagent::executor
