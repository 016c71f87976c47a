#include "record/fingerprint.hpp"

#include <algorithm>
#include <initializer_list>
#include <utility>
#include <vector>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "net/sha256.hpp"

namespace dagent::record {

namespace json = boost::json;

namespace {

constexpr std::size_t k_clip = 80;

// Moves `i` back to the start of the UTF-8 character it points into.
std::size_t char_start(std::string_view s, std::size_t i) {
  while (i > 0 && i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

// `s` quoted, showing at most k_clip bytes from `from` (an ellipsis marks what was cut).
std::string quoted_window(std::string_view s, std::size_t from) {
  from = char_start(s, std::min(from, s.size()));
  std::size_t to = s.size();
  if (to - from > k_clip) to = char_start(s, from + k_clip);
  std::string out = "\"";
  if (from > 0) out += "…";
  out.append(s.substr(from, to - from));
  if (to < s.size()) out += "…";
  return out + "\"";
}

std::string shown(const json::value& v) {
  if (v.is_string()) return quoted_window(v.get_string(), 0);
  std::string text = json::serialize(v);
  if (text.size() > k_clip) text = text.substr(0, char_start(text, k_clip)) + "…";
  return text;
}

std::size_t first_difference(std::string_view a, std::string_view b) {
  const auto n = std::min(a.size(), b.size());
  return static_cast<std::size_t>(std::mismatch(a.begin(), a.begin() + n, b.begin()).first - a.begin());
}

std::string changed(const json::value& recorded, const json::value& wanted) {
  if (recorded.is_string() && wanted.is_string()) {
    const std::string_view a = recorded.get_string(), b = wanted.get_string();
    // Both windows start a little before the first difference, so the reader sees it in context.
    const std::size_t at = first_difference(a, b);
    const std::size_t from = std::max(a.size(), b.size()) > k_clip && at > k_clip / 4 ? at - k_clip / 4 : 0;
    return "recorded " + quoted_window(a, from) + " but got " + quoted_window(b, from);
  }
  return "recorded " + shown(recorded) + " but got " + shown(wanted);
}

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

void differences(const json::value& recorded, const json::value& wanted, const std::string& path,
                 std::vector<std::string>& out) {
  if (recorded == wanted) return;
  const std::string label = path.empty() ? "(request)" : path;
  if (recorded.is_object() && wanted.is_object()) {
    const auto& a = recorded.get_object();
    const auto& b = wanted.get_object();
    for (const auto& field : a) {
      const json::value* other = b.if_contains(field.key());
      if (!other) out.push_back(join(path, field.key()) + ": missing (recorded " + shown(field.value()) + ")");
      else differences(field.value(), *other, join(path, field.key()), out);
    }
    for (const auto& field : b)
      if (!a.contains(field.key())) out.push_back(join(path, field.key()) + ": extra (got " + shown(field.value()) + ")");
    return;
  }
  if (recorded.is_array() && wanted.is_array()) {
    const auto& a = recorded.get_array();
    const auto& b = wanted.get_array();
    for (std::size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
      const std::string at = path + "[" + std::to_string(i) + "]";
      if (i >= b.size()) out.push_back(at + ": missing (recorded " + shown(a[i]) + ")");
      else if (i >= a.size()) out.push_back(at + ": extra (got " + shown(b[i]) + ")");
      else differences(a[i], b[i], at, out);
    }
    return;
  }
  out.push_back(label + ": " + changed(recorded, wanted));
}

constexpr std::size_t k_shape = 100;  // a missing field, an extra element, a different type

std::size_t distance(const json::value& a, const json::value& b);

// The distance over the fields of `a` and `b` whose key is not `skip`.
std::size_t fields_distance(const json::object& a, const json::object& b, std::initializer_list<std::string_view> skip) {
  const auto skipped = [&](std::string_view key) { return std::find(skip.begin(), skip.end(), key) != skip.end(); };
  std::size_t d = 0;
  for (const auto& field : a) {
    if (skipped(field.key())) continue;
    const json::value* other = b.if_contains(field.key());
    d += other ? distance(field.value(), *other) : k_shape;
  }
  for (const auto& field : b) d += skipped(field.key()) || a.contains(field.key()) ? 0 : k_shape;
  return d;
}

std::size_t distance(const json::value& a, const json::value& b) {
  constexpr std::size_t k_string_cap = 10000;
  if (a == b) return 0;
  if (a.is_string() && b.is_string()) {
    const std::string_view x = a.get_string(), y = b.get_string();
    const auto n = std::min(x.size(), y.size());
    std::size_t d = std::max(x.size(), y.size()) - n;
    for (std::size_t i = 0; i < n && d < k_string_cap; ++i) d += x[i] != y[i];
    return std::min(d, k_string_cap);
  }
  if (a.is_array() && b.is_array()) {
    const auto& x = a.get_array();
    const auto& y = b.get_array();
    const auto n = std::min(x.size(), y.size());
    std::size_t d = (std::max(x.size(), y.size()) - n) * k_shape;
    for (std::size_t i = 0; i < n; ++i) d += distance(x[i], y[i]);
    return d;
  }
  if (a.is_object() && b.is_object()) return fields_distance(a.get_object(), b.get_object(), {});
  if (a.is_number() && b.is_number()) return 1;
  return k_shape;
}

}  // namespace

std::string describe_difference(const json::object& recorded, const json::object& wanted, std::size_t max_lines) {
  std::vector<std::string> lines;
  differences(recorded, wanted, "", lines);
  if (lines.empty()) return "no difference";
  std::string out;
  const std::size_t shown_lines = std::min(lines.size(), std::max<std::size_t>(max_lines, 1));
  for (std::size_t i = 0; i < shown_lines; ++i) out += (i ? "; " : "") + lines[i];
  if (lines.size() > shown_lines) out += " (and " + std::to_string(lines.size() - shown_lines) + " more)";
  return out;
}

std::size_t request_distance(const json::object& a, const json::object& b) {
  constexpr std::size_t k_kind = 1'000'000'000;
  constexpr std::size_t k_model = 1'000'000;
  const auto differs = [&](std::string_view key) {
    const json::value* x = a.if_contains(key);
    const json::value* y = b.if_contains(key);
    return (x == nullptr) != (y == nullptr) || (x && *x != *y);
  };
  return (differs("kind") ? k_kind : 0) + (differs("model") ? k_model : 0) + fields_distance(a, b, {"kind", "model"});
}

}  // namespace dagent::record
