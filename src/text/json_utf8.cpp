#include "text/json_utf8.hpp"

#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/serialize.hpp>

#include "text/utf8.hpp"

namespace dagent::text {

namespace json = boost::json;

namespace {

bool valid(std::string_view text) { return is_valid_utf8(text); }

// Rebuilds `object` with repaired keys; only called when a key is invalid (keys are immutable).
void repair_keys(json::object& object) {
  json::object out(object.storage());
  out.reserve(object.size());
  for (auto& entry : object) {
    const std::string_view key = entry.key();
    if (valid(key)) out.emplace(key, std::move(entry.value()));
    else out.emplace(valid_utf8(key), std::move(entry.value()));  // emplace keeps the first of equal keys
  }
  object = std::move(out);
}

}  // namespace

bool make_valid_utf8(json::string& text) {
  if (valid(text)) return false;
  text = valid_utf8(text);
  return true;
}

bool make_valid_utf8(json::value& value) {
  bool changed = false;
  // An explicit stack: a value built by a program (a tool's output) can nest deeper than the
  // call stack allows.
  std::vector<json::value*> pending{&value};
  while (!pending.empty()) {
    json::value* v = pending.back();
    pending.pop_back();
    if (auto* s = v->if_string()) {
      changed |= make_valid_utf8(*s);
    } else if (auto* a = v->if_array()) {
      for (auto& item : *a)
        if (item.is_structured() || item.is_string()) pending.push_back(&item);
    } else if (auto* o = v->if_object()) {
      bool keys_valid = true;
      for (const auto& entry : *o) keys_valid = keys_valid && valid(entry.key());
      if (!keys_valid) {
        repair_keys(*o);
        changed = true;
      }
      for (auto& entry : *o)
        if (entry.value().is_structured() || entry.value().is_string()) pending.push_back(&entry.value());
    }
  }
  return changed;
}

bool make_valid_utf8(json::object& object) {
  // A value that holds the object for the walk, moved back after: no copy of the contents.
  json::value holder(std::move(object));
  const bool changed = make_valid_utf8(holder);
  object = std::move(holder.get_object());
  return changed;
}

std::string serialize_valid(const json::value& value) {
  std::string text = json::serialize(value);
  make_valid_utf8(text);
  return text;
}

}  // namespace dagent::text
