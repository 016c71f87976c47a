// Validation against the JSON Schema subset used for tool parameters.

#include "tools/json_schema.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <system_error>
#include <utility>

#include <boost/json/serialize.hpp>

namespace dagent::tools {
namespace {

namespace json = boost::json;

constexpr std::array<std::string_view, 7> k_type_names = {"null",   "boolean", "integer", "number",
                                                          "string", "array",   "object"};

bool is_type_name(std::string_view name) {
  for (auto known : k_type_names) {
    if (known == name) return true;
  }
  return false;
}

bool has_type(const json::value& v, std::string_view type) {
  const std::string_view kind = json_kind(v);
  return kind == type || (type == "number" && kind == "integer");
}

bool is_identifier(std::string_view key) {
  if (key.empty()) return false;
  for (std::size_t i = 0; i < key.size(); ++i) {
    const char c = key[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !(digit && i > 0)) return false;
  }
  return true;
}

std::string member_path(std::string_view parent, std::string_view key) {
  std::string out(parent);
  if (is_identifier(key)) {
    out += '.';
    out += key;
  } else {
    out += '[';
    out += json::serialize(json::string(key));
    out += ']';
  }
  return out;
}

std::string element_path(std::string_view parent, std::size_t index) {
  std::string out(parent);
  out += '[';
  out += std::to_string(index);
  out += ']';
  return out;
}

void add_problem(std::vector<std::string>& problems, std::string_view path, std::string_view text) {
  std::string problem(path);
  problem += ": ";
  problem += text;
  problems.push_back(std::move(problem));
}

// "a", "a or b", "a, b or c".
std::string join_alternatives(const std::vector<std::string>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += (i + 1 == items.size()) ? " or " : ", ";
    out += items[i];
  }
  return out;
}

// Negative, zero or positive as a < b, a == b, a > b; exact for any pair of integers.
int compare_numbers(const json::value& a, const json::value& b) {
  if (a.is_double() || b.is_double()) {
    const double x = a.to_number<double>();
    const double y = b.to_number<double>();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_int64() && b.is_int64()) {
    const auto x = a.get_int64();
    const auto y = b.get_int64();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_int64() && a.get_int64() < 0) return -1;
  if (b.is_int64() && b.get_int64() < 0) return 1;
  const auto x = a.is_int64() ? static_cast<std::uint64_t>(a.get_int64()) : a.get_uint64();
  const auto y = b.is_int64() ? static_cast<std::uint64_t>(b.get_int64()) : b.get_uint64();
  return x < y ? -1 : (x > y ? 1 : 0);
}

std::size_t count_code_points(std::string_view text) {
  std::size_t count = 0;
  for (const char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

bool is_number(const json::value& v) { return v.is_int64() || v.is_uint64() || v.is_double(); }

// `v` for a message: JSON, with doubles in their shortest plain form (0.5, not 5E-1).
std::string show(const json::value& v) {
  if (!v.is_double()) return json::serialize(v);
  std::array<char, 32> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), v.get_double());
  if (ec != std::errc{}) return json::serialize(v);
  return std::string(buffer.data(), end);
}

// False when the type keyword rejects `v` (the other keywords are then skipped).
bool check_type(const json::value& v, const json::value& type, std::string_view path,
                std::vector<std::string>& problems) {
  std::vector<std::string> allowed;
  if (type.is_string()) {
    allowed.emplace_back(type.get_string());
  } else if (type.is_array()) {
    for (const auto& item : type.get_array()) {
      if (item.is_string()) allowed.emplace_back(item.get_string());
    }
  } else {
    add_problem(problems, path, "schema 'type' must be a string or a list of strings");
    return false;
  }
  bool matched = false;
  for (const auto& name : allowed) {
    if (!is_type_name(name)) {
      add_problem(problems, path, "schema names unknown type '" + name + "'");
      return false;
    }
    matched = matched || has_type(v, name);
  }
  if (matched) return true;
  add_problem(problems, path, "expected " + join_alternatives(allowed) + ", got " + std::string(json_kind(v)));
  return false;
}

void check_enum(const json::value& v, const json::array& choices, std::string_view path,
                std::vector<std::string>& problems) {
  for (const auto& choice : choices) {
    if (choice == v) return;
  }
  std::vector<std::string> shown;
  for (const auto& choice : choices) shown.push_back(show(choice));
  std::string text = "expected one of ";
  for (std::size_t i = 0; i < shown.size(); ++i) {
    if (i > 0) text += ", ";
    text += shown[i];
  }
  text += ", got " + show(v);
  add_problem(problems, path, text);
}

void check_bounds(const json::value& v, const json::object& schema, std::string_view path,
                  std::vector<std::string>& problems) {
  if (const auto* minimum = schema.if_contains("minimum"); minimum && is_number(*minimum)) {
    if (compare_numbers(v, *minimum) < 0) {
      add_problem(problems, path, "must be >= " + show(*minimum) + ", got " + show(v));
    }
  }
  if (const auto* maximum = schema.if_contains("maximum"); maximum && is_number(*maximum)) {
    if (compare_numbers(v, *maximum) > 0) {
      add_problem(problems, path, "must be <= " + show(*maximum) + ", got " + show(v));
    }
  }
}

void check_object(const json::object& object, const json::object& schema, std::string_view path,
                  std::vector<std::string>& problems);

void validate(const json::value& v, const json::object& schema, std::string_view path,
              std::vector<std::string>& problems) {
  if (const auto* type = schema.if_contains("type"); type && !check_type(v, *type, path, problems)) return;
  if (const auto* choices = schema.if_contains("enum"); choices && choices->is_array()) {
    check_enum(v, choices->get_array(), path, problems);
  }
  if (is_number(v)) check_bounds(v, schema, path, problems);
  if (v.is_string()) {
    if (const auto* min_length = schema.if_contains("minLength"); min_length && is_number(*min_length)) {
      const std::size_t length = count_code_points(v.get_string());
      const json::value actual(static_cast<std::uint64_t>(length));
      if (compare_numbers(actual, *min_length) < 0) {
        const bool one = min_length->to_number<double>() == 1.0;
        add_problem(problems, path,
                    "must be at least " + show(*min_length) + (one ? " character" : " characters") + " long, got " +
                        std::to_string(length));
      }
    }
  }
  if (v.is_object()) check_object(v.get_object(), schema, path, problems);
  if (v.is_array()) {
    if (const auto* items = schema.if_contains("items"); items && items->is_object()) {
      const auto& array = v.get_array();
      for (std::size_t i = 0; i < array.size(); ++i) {
        validate(array[i], items->get_object(), element_path(path, i), problems);
      }
    }
  }
}

void check_object(const json::object& object, const json::object& schema, std::string_view path,
                  std::vector<std::string>& problems) {
  const json::object* properties = nullptr;
  if (const auto* p = schema.if_contains("properties"); p && p->is_object()) properties = &p->get_object();

  if (const auto* required = schema.if_contains("required"); required && required->is_array()) {
    for (const auto& name : required->get_array()) {
      if (name.is_string() && !object.contains(name.get_string())) {
        add_problem(problems, member_path(path, name.get_string()), "missing required property");
      }
    }
  }

  const json::value* additional = schema.if_contains("additionalProperties");
  for (const auto& member : object) {
    const std::string key_path = member_path(path, member.key());
    if (properties) {
      if (const auto* sub = properties->if_contains(member.key())) {
        if (sub->is_object()) validate(member.value(), sub->get_object(), key_path, problems);
        continue;
      }
    }
    if (!additional) continue;
    if (additional->is_bool() && !additional->get_bool()) {
      std::string text = "unknown property";
      if (properties && !properties->empty()) {
        text += " (expected ";
        bool first = true;
        for (const auto& known : *properties) {
          if (!first) text += ", ";
          text += known.key();
          first = false;
        }
        text += ')';
      }
      add_problem(problems, key_path, text);
    } else if (additional->is_object()) {
      validate(member.value(), additional->get_object(), key_path, problems);
    }
  }
}

}  // namespace

std::string_view json_kind(const json::value& v) noexcept {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "boolean";
    case json::kind::int64:
    case json::kind::uint64: return "integer";
    case json::kind::double_: return "number";
    case json::kind::string: return "string";
    case json::kind::array: return "array";
    case json::kind::object: return "object";
  }
  return "unknown";
}

std::vector<std::string> validate_json(const json::value& v, const json::object& schema, std::string_view path) {
  std::vector<std::string> problems;
  validate(v, schema, path, problems);
  return problems;
}

boost::system::result<void, ToolError> check_parameters(const json::object& params, const json::object& schema) {
  std::vector<std::string> problems;
  check_object(params, schema, "$", problems);
  if (problems.empty()) return {};
  std::string message = "invalid parameters: ";
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (i > 0) message += "; ";
    message += problems[i];
  }
  return ToolError{ToolErrc::invalid_parameters, std::move(message)};
}

}  // namespace dagent::tools
