// JSON Schema draft-07 through valijson. The keywords whose failures people read most (type,
// enum, const, bounds, lengths, pattern, format, required, additionalProperties: false, item and
// property counts, uniqueItems) are taken out of the schema before valijson parses it and checked
// by one custom constraint per subschema: their messages name the expected and the actual value,
// `pattern` runs on Boost.Regex, and numbers compare exactly. valijson does the rest (combinators,
// items, properties, $ref, dependencies, contains, propertyNames, if/then/else).

#include "tools/json_schema.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/regex.hpp>

// Without it valijson prints and aborts on a schema it cannot parse.
#define VALIJSON_USE_EXCEPTIONS 1
#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/constraint_builder.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "text/utf8.hpp"

namespace dagent::tools {


namespace {

namespace json = boost::json;
using valijson::adapters::Adapter;

// Limits that keep validation (which recurses) off the end of the stack.
constexpr std::size_t k_max_schema_depth = 64;
constexpr std::size_t k_max_value_depth = 128;
// valijson matches patternProperties with std::regex, whose matcher recurses once per character.
constexpr std::size_t k_max_regex_key_bytes = 1024;
constexpr std::size_t k_max_ref_bytes = 1024;
constexpr std::size_t k_cache_limit = 512;
constexpr char k_checks_keyword[] = "x-dagent-checks";
constexpr char k_sep = '\x1f';  // between keyword and message in a valijson error description

constexpr std::array<std::string_view, 7> k_type_names = {"null",   "boolean", "integer", "number",
                                                          "string", "array",   "object"};

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

bool is_number(const json::value& v) { return v.is_int64() || v.is_uint64() || v.is_double(); }

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

// JSON equality as the schema defines it: 1 and 1.0 are the same number.
bool same_value(const json::value& a, const json::value& b) {
  if (is_number(a) && is_number(b)) return compare_numbers(a, b) == 0;
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const auto& x = a.get_array();
    const auto& y = b.get_array();
    if (x.size() != y.size()) return false;
    for (std::size_t i = 0; i < x.size(); ++i)
      if (!same_value(x[i], y[i])) return false;
    return true;
  }
  if (a.is_object()) {
    const auto& x = a.get_object();
    const auto& y = b.get_object();
    if (x.size() != y.size()) return false;
    for (const auto& member : x) {
      const auto* other = y.if_contains(member.key());
      if (!other || !same_value(member.value(), *other)) return false;
    }
    return true;
  }
  return a == b;
}

bool is_multiple_of(const json::value& v, const json::value& divisor) {
  if (v.is_int64() && divisor.is_int64()) {
    const auto d = divisor.get_int64();
    return d > 0 && v.get_int64() % d == 0;
  }
  const double d = divisor.to_number<double>();
  if (!(d > 0)) return false;
  const double q = v.to_number<double>() / d;
  if (!std::isfinite(q)) return false;
  // Decimal divisors (0.01) are not exact in binary: allow the rounding of one division.
  return std::abs(q - std::round(q)) <= 1e-9 * std::max(1.0, std::abs(q));
}

std::size_t count_code_points(std::string_view text) {
  std::size_t count = 0;
  for (const char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++count;
  }
  return count;
}

// `v` for a message: JSON, with doubles in their shortest plain form (0.5, not 5E-1), and long
// values cut (a reply can be megabytes).
std::string show(const json::value& v) {
  constexpr std::size_t k_max_shown = 80;
  std::string out;
  if (v.is_double()) {
    std::array<char, 32> buffer{};
    const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), v.get_double());
    if (ec == std::errc{}) return std::string(buffer.data(), end);
  }
  out = json::serialize(v);
  if (out.size() > k_max_shown) {
    out.resize(text::utf8_cut(out, k_max_shown));
    out += "...";
  }
  return out;
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

std::string plural(std::uint64_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

std::size_t depth_of(const json::value& v, std::size_t limit) {
  // Iterative: the value being measured may be deeper than the stack allows.
  std::size_t deepest = 0;
  std::vector<std::pair<const json::value*, std::size_t>> stack{{&v, 1}};
  while (!stack.empty()) {
    auto [node, depth] = stack.back();
    stack.pop_back();
    deepest = std::max(deepest, depth);
    if (deepest > limit) return deepest;
    if (const auto* a = node->if_array())
      for (const auto& e : *a) stack.emplace_back(&e, depth + 1);
    else if (const auto* o = node->if_object())
      for (const auto& m : *o) stack.emplace_back(&m.value(), depth + 1);
  }
  return deepest;
}

// Whether `v` holds a uint64 that fits an int64 (tools report sizes as uint64).
bool has_small_uint64(const json::value& v) {
  std::vector<const json::value*> stack{&v};
  while (!stack.empty()) {
    const auto* node = stack.back();
    stack.pop_back();
    if (node->is_uint64() && node->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) return true;
    if (const auto* a = node->if_array())
      for (const auto& e : *a) stack.push_back(&e);
    else if (const auto* o = node->if_object())
      for (const auto& m : *o) stack.push_back(&m.value());
  }
  return false;
}

// `v` with every uint64 that fits turned into an int64: valijson's adapter reads only int64 and
// double, and would see 5u as neither.
void narrow_uint64(json::value& v) {
  std::vector<json::value*> stack{&v};
  while (!stack.empty()) {
    auto* node = stack.back();
    stack.pop_back();
    if (node->is_uint64() && node->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
      *node = static_cast<std::int64_t>(node->get_uint64());
    else if (auto* a = node->if_array())
      for (auto& e : *a) stack.push_back(&e);
    else if (auto* o = node->if_object())
      for (auto& m : *o) stack.push_back(&m.value());
  }
}

// The longest object key anywhere in `v`.
std::size_t longest_key(const json::value& v) {
  std::size_t longest = 0;
  std::vector<const json::value*> stack{&v};
  while (!stack.empty()) {
    const auto* node = stack.back();
    stack.pop_back();
    if (const auto* a = node->if_array()) {
      for (const auto& e : *a) stack.push_back(&e);
    } else if (const auto* o = node->if_object()) {
      for (const auto& m : *o) {
        longest = std::max(longest, m.key().size());
        stack.push_back(&m.value());
      }
    }
  }
  return longest;
}

// ---- reading values through valijson's adapter ------------------------------------------------

std::string_view kind_of(const Adapter& a) {
  if (a.isNull()) return "null";
  if (a.isBool()) return "boolean";
  if (a.isInteger()) return "integer";
  if (a.isDouble()) return "number";
  if (a.isString()) return "string";
  if (a.isArray()) return "array";
  if (a.isObject()) return "object";
  // Left: a uint64 above INT64_MAX, which the adapter calls neither integer nor double.
  return a.maybeDouble() ? "integer" : "unknown";
}

json::value to_json(const Adapter& a) {
  if (a.isNull()) return nullptr;
  if (a.isBool()) return a.getBool();
  if (a.isInteger()) return a.getInteger();
  if (a.isDouble()) return a.getDouble();
  if (a.isString()) return json::string(a.getString());
  if (a.isArray()) {
    json::array out;
    a.applyToArray([&](const Adapter& e) {
      out.push_back(to_json(e));
      return true;
    });
    return out;
  }
  if (a.isObject()) {
    json::object out;
    a.applyToObject([&](const std::string& key, const Adapter& v) {
      out[key] = to_json(v);
      return true;
    });
    return out;
  }
  return std::uint64_t{UINT64_MAX};  // lossy: see kind_of
}

// A uint64 above INT64_MAX compares as UINT64_MAX: right against any bound up to INT64_MAX.
json::value number_of(const Adapter& a) {
  if (a.isInteger()) return a.getInteger();
  if (a.isDouble()) return a.getDouble();
  return std::uint64_t{UINT64_MAX};
}

std::string show_number(const Adapter& a) {
  if (a.isInteger() || a.isDouble()) return show(number_of(a));
  return "an integer above " + std::to_string(INT64_MAX);
}

// ---- the keywords dagent checks itself ------------------------------------------------------

const boost::regex& date_regex() {
  static const boost::regex r(R"(^(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$)");
  return r;
}
const boost::regex& time_regex() {
  static const boost::regex r(R"(^([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$)");
  return r;
}

// Formats are assertions for date, time, date-time and regex; any other is an annotation.
std::string format_problem(std::string_view format, const std::string& s) {
  if (format == "regex") {
    try {
      boost::regex r(s, boost::regex::ECMAScript);
    } catch (const std::exception& e) {
      return std::string("is not a valid regular expression: ") + e.what();
    }
    return {};
  }
  bool ok = true;
  if (format == "date") {
    ok = boost::regex_match(s, date_regex());
  } else if (format == "time") {
    ok = boost::regex_match(s, time_regex());
  } else if (format == "date-time") {
    const auto t = s.find_first_of("Tt");
    ok = t != std::string::npos && boost::regex_match(s.substr(0, t), date_regex()) &&
         boost::regex_match(s.substr(t + 1), time_regex());
  }
  return ok ? std::string() : "is not a valid " + std::string(format) + ", got " + show(json::string(s));
}

struct Checks {
  std::vector<std::string> types;  // empty: no `type`
  std::optional<json::value> const_value;
  std::optional<json::array> enum_values;
  std::optional<json::value> minimum, maximum, exclusive_minimum, exclusive_maximum, multiple_of;
  std::optional<std::uint64_t> min_length, max_length, min_items, max_items, min_properties, max_properties;
  std::string pattern_text;
  std::optional<boost::regex> pattern;
  std::string format;
  std::vector<std::string> required;
  bool unique_items = false;
  bool closed = false;  // additionalProperties: false
  std::vector<std::string> known;             // properties, when closed
  std::vector<boost::regex> known_patterns;   // patternProperties, when closed

  bool empty() const {
    return types.empty() && !const_value && !enum_values && !minimum && !maximum && !exclusive_minimum &&
           !exclusive_maximum && !multiple_of && !min_length && !max_length && !min_items && !max_items &&
           !min_properties && !max_properties && !pattern && format.empty() && required.empty() && !unique_items &&
           !closed;
  }
};

// Pushes one problem (keyword and message packed into valijson's description); false for the
// caller to return. Without `results` (inside anyOf, not, if) valijson only wants the verdict.
struct Reporter {
  const std::vector<std::string>& context;
  valijson::ValidationResults* results;
  bool ok = true;

  bool fail(std::string_view keyword, const std::string& message) {
    ok = false;
    if (results) results->pushError(context, std::string(keyword) + k_sep + message);
    return results != nullptr;  // keep going only when every problem is wanted
  }
  bool fail_at(std::string_view key, std::string_view keyword, const std::string& message) {
    ok = false;
    if (results) {
      auto inner = context;
      inner.push_back("[" + std::string(key) + "]");
      results->pushError(inner, std::string(keyword) + k_sep + message);
    }
    return results != nullptr;
  }
};

bool check_number(const Checks& c, const Adapter& t, Reporter& r) {
  const json::value v = number_of(t);
  if (c.minimum && compare_numbers(v, *c.minimum) < 0 &&
      !r.fail("minimum", "must be >= " + show(*c.minimum) + ", got " + show_number(t)))
    return false;
  if (c.exclusive_minimum && compare_numbers(v, *c.exclusive_minimum) <= 0 &&
      !r.fail("exclusiveMinimum", "must be > " + show(*c.exclusive_minimum) + ", got " + show_number(t)))
    return false;
  if (c.maximum && compare_numbers(v, *c.maximum) > 0 &&
      !r.fail("maximum", "must be <= " + show(*c.maximum) + ", got " + show_number(t)))
    return false;
  if (c.exclusive_maximum && compare_numbers(v, *c.exclusive_maximum) >= 0 &&
      !r.fail("exclusiveMaximum", "must be < " + show(*c.exclusive_maximum) + ", got " + show_number(t)))
    return false;
  if (c.multiple_of && !is_multiple_of(v, *c.multiple_of) &&
      !r.fail("multipleOf", "must be a multiple of " + show(*c.multiple_of) + ", got " + show_number(t)))
    return false;
  return true;
}

bool check_string(const Checks& c, const Adapter& t, Reporter& r) {
  const std::string s = t.getString();
  if (c.min_length || c.max_length) {
    const std::size_t length = count_code_points(s);
    if (c.min_length && length < *c.min_length &&
        !r.fail("minLength", "must be at least " + plural(*c.min_length, "character", "characters") +
                                 " long, got " + std::to_string(length)))
      return false;
    if (c.max_length && length > *c.max_length &&
        !r.fail("maxLength", "must be at most " + plural(*c.max_length, "character", "characters") +
                                 " long, got " + std::to_string(length)))
      return false;
  }
  if (c.pattern) {
    std::string problem;
    try {
      if (!boost::regex_search(s, *c.pattern))
        problem = "must match the pattern " + show(json::string(c.pattern_text)) + ", got " + show(json::string(s));
    } catch (const std::exception& e) {  // Boost.Regex gives up on a match too complex to finish
      problem = "could not be checked against the pattern " + show(json::string(c.pattern_text)) + ": " + e.what();
    }
    if (!problem.empty() && !r.fail("pattern", problem)) return false;
  }
  if (!c.format.empty()) {
    if (auto problem = format_problem(c.format, s); !problem.empty() && !r.fail("format", problem)) return false;
  }
  return true;
}

bool check_array(const Checks& c, const Adapter& t, Reporter& r) {
  const std::size_t size = t.getArraySize();
  if (c.min_items && size < *c.min_items &&
      !r.fail("minItems", "must have at least " + plural(*c.min_items, "item", "items") + ", got " + std::to_string(size)))
    return false;
  if (c.max_items && size > *c.max_items &&
      !r.fail("maxItems", "must have at most " + plural(*c.max_items, "item", "items") + ", got " + std::to_string(size)))
    return false;
  if (c.unique_items) {
    const json::value items = to_json(t);
    const auto& a = items.get_array();
    for (std::size_t i = 0; i < a.size(); ++i) {
      for (std::size_t j = i + 1; j < a.size(); ++j) {
        if (same_value(a[i], a[j])) {
          if (!r.fail("uniqueItems", "items must be unique, but [" + std::to_string(i) + "] and [" + std::to_string(j) +
                                         "] are both " + show(a[i])))
            return false;
          return true;  // one pair is enough to act on
        }
      }
    }
  }
  return true;
}

bool check_object(const Checks& c, const Adapter& t, Reporter& r) {
  std::vector<std::string> keys;
  t.applyToObject([&](const std::string& key, const Adapter&) {
    keys.push_back(key);
    return true;
  });
  auto has = [&](const std::string& name) { return std::find(keys.begin(), keys.end(), name) != keys.end(); };
  for (const auto& name : c.required) {
    if (!has(name) && !r.fail_at(name, "required", "missing required property")) return false;
  }
  if (c.min_properties && keys.size() < *c.min_properties &&
      !r.fail("minProperties", "must have at least " + plural(*c.min_properties, "property", "properties") + ", got " +
                                   std::to_string(keys.size())))
    return false;
  if (c.max_properties && keys.size() > *c.max_properties &&
      !r.fail("maxProperties", "must have at most " + plural(*c.max_properties, "property", "properties") + ", got " +
                                   std::to_string(keys.size())))
    return false;
  if (c.closed) {
    for (const auto& key : keys) {
      if (std::find(c.known.begin(), c.known.end(), key) != c.known.end()) continue;
      bool matched = false;
      for (const auto& re : c.known_patterns) {
        try {
          matched = boost::regex_search(key, re);
        } catch (const std::exception&) {
          matched = false;
        }
        if (matched) break;
      }
      if (matched) continue;
      std::string text = "unknown property";
      if (!c.known.empty()) {
        text += " (expected ";
        for (std::size_t i = 0; i < c.known.size(); ++i) text += (i ? ", " : "") + c.known[i];
        text += ')';
      }
      if (!r.fail_at(key, "additionalProperties", text)) return false;
    }
  }
  return true;
}

bool run_checks(const Checks& c, const Adapter& t, const std::vector<std::string>& context,
                valijson::ValidationResults* results) {
  Reporter r{context, results};
  const std::string_view kind = kind_of(t);
  if (!c.types.empty()) {
    bool matched = false;
    for (const auto& name : c.types) matched = matched || name == kind || (name == "number" && kind == "integer");
    // The other keywords are skipped: "expected integer, got string" says it all.
    if (!matched) {
      r.fail("type", "expected " + join_alternatives(c.types) + ", got " + std::string(kind));
      return false;
    }
  }
  if (c.const_value || c.enum_values) {
    const json::value v = to_json(t);
    if (c.const_value && !same_value(v, *c.const_value) &&
        !r.fail("const", "expected " + show(*c.const_value) + ", got " + show(v)))
      return false;
    if (c.enum_values) {
      bool found = false;
      for (const auto& choice : *c.enum_values) found = found || same_value(v, choice);
      if (!found) {
        std::string text = "expected one of ";
        for (std::size_t i = 0; i < c.enum_values->size(); ++i) text += (i ? ", " : "") + show((*c.enum_values)[i]);
        if (!r.fail("enum", text + ", got " + show(v))) return false;
      }
    }
  }
  if ((kind == "integer" || kind == "number") && !check_number(c, t, r)) return false;
  if (t.isString() && !check_string(c, t, r)) return false;
  if (t.isArray() && !check_array(c, t, r)) return false;
  if (t.isObject() && !check_object(c, t, r)) return false;
  return r.ok;
}

class ChecksConstraint final : public valijson::constraints::PolyConstraint {
 public:
  explicit ChecksConstraint(const Checks* checks) : checks_(checks) {}
  bool validate(const Adapter& target, const std::vector<std::string>& context,
                valijson::ValidationResults* results) const override {
    return run_checks(*checks_, target, context, results);
  }

 private:
  Constraint* cloneInto(void* where) const override { return new (where) ChecksConstraint(checks_); }
  std::size_t sizeOf() const override { return sizeof(ChecksConstraint); }

  const Checks* checks_;
};

using ChecksTable = std::vector<std::unique_ptr<Checks>>;

class ChecksBuilder final : public valijson::ConstraintBuilder {
 public:
  explicit ChecksBuilder(const ChecksTable* table) : table_(table) {}
  valijson::constraints::Constraint* make(const Adapter& value) const override {
    std::int64_t index = -1;
    if (!value.getInteger(index) || index < 0 || static_cast<std::size_t>(index) >= table_->size())
      throw std::logic_error("json_schema: a checks index out of range");
    return new ChecksConstraint((*table_)[static_cast<std::size_t>(index)].get());
  }

 private:
  const ChecksTable* table_;
};

// ---- taking the schema apart ----------------------------------------------------------------

std::string escape_pointer(std::string_view key) {
  std::string out;
  for (const char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      unsigned value = 0;
      const auto [end, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, value, 16);
      if (ec == std::errc{} && end == s.data() + i + 3) {
        out += static_cast<char>(value);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::optional<std::uint64_t> count_of(const json::value& v) {
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
  if (v.is_uint64()) return v.get_uint64();
  return std::nullopt;
}

struct Walk {
  ChecksTable& table;
  std::vector<std::string> problems;                         // `path: problem`, rooted at "$"
  std::unordered_map<std::string, std::string> path_of;      // schema pointer -> JSON path
  std::unordered_map<std::string, std::vector<std::string>> same_instance;  // pointer -> pointers
  std::vector<std::pair<std::string, std::string>> refs;     // (pointer of holder, $ref)
  bool has_pattern_properties = false;
  bool has_property_names = false;
};

json::value rewrite(const json::value& schema, const std::string& pointer, const std::string& path, Walk& w);

// Keywords whose value is one schema applied to the same value as their parent's.
bool applies_in_place(std::string_view key) { return key == "not" || key == "if" || key == "then" || key == "else"; }

bool take_check(std::string_view key, const json::value& v, Checks& c) {
  if (key == "type") {
    std::vector<std::string> names;
    if (v.is_string()) names.emplace_back(v.get_string());
    else if (v.is_array())
      for (const auto& e : v.get_array()) {
        if (!e.is_string()) return false;
        names.emplace_back(e.get_string());
      }
    else return false;
    for (const auto& n : names)
      if (std::find(k_type_names.begin(), k_type_names.end(), n) == k_type_names.end()) return false;
    if (names.empty()) return false;
    c.types = std::move(names);
    return true;
  }
  if (key == "const") {
    c.const_value = v;
    return true;
  }
  if (key == "enum") {
    if (!v.is_array()) return false;
    c.enum_values = v.get_array();
    return true;
  }
  auto number = [&](std::optional<json::value>& slot) {
    if (!is_number(v)) return false;
    slot = v;
    return true;
  };
  if (key == "minimum") return number(c.minimum);
  if (key == "maximum") return number(c.maximum);
  if (key == "exclusiveMinimum") return number(c.exclusive_minimum);
  if (key == "exclusiveMaximum") return number(c.exclusive_maximum);
  if (key == "multipleOf") return number(c.multiple_of) && compare_numbers(v, json::value(0)) > 0;
  auto count = [&](std::optional<std::uint64_t>& slot) {
    slot = count_of(v);
    return slot.has_value();
  };
  if (key == "minLength") return count(c.min_length);
  if (key == "maxLength") return count(c.max_length);
  if (key == "minItems") return count(c.min_items);
  if (key == "maxItems") return count(c.max_items);
  if (key == "minProperties") return count(c.min_properties);
  if (key == "maxProperties") return count(c.max_properties);
  if (key == "uniqueItems") {
    if (!v.is_bool()) return false;
    c.unique_items = v.get_bool();
    return true;
  }
  if (key == "pattern") {
    if (!v.is_string()) return false;
    try {
      c.pattern.emplace(std::string(v.get_string()), boost::regex::ECMAScript);
    } catch (const std::exception&) {
      return false;  // the meta-schema's format "regex" reports it
    }
    c.pattern_text = v.get_string();
    return true;
  }
  if (key == "format") {
    if (!v.is_string()) return false;
    c.format = v.get_string();
    return true;
  }
  if (key == "required") {
    if (!v.is_array()) return false;
    std::vector<std::string> names;
    for (const auto& e : v.get_array()) {
      if (!e.is_string()) return false;
      names.emplace_back(e.get_string());
    }
    c.required = std::move(names);
    return true;
  }
  return false;
}

bool is_check_keyword(std::string_view key) {
  static constexpr std::array<std::string_view, 20> k_keys = {
      "type",     "const",     "enum",     "minimum",       "maximum",       "exclusiveMinimum", "exclusiveMaximum",
      "multipleOf", "minLength", "maxLength", "minItems",   "maxItems",      "minProperties",    "maxProperties",
      "uniqueItems", "pattern", "format",   "required",      "$id",           k_checks_keyword};
  return std::find(k_keys.begin(), k_keys.end(), key) != k_keys.end();
}

json::value rewrite_object(const json::object& o, const std::string& pointer, const std::string& path, Walk& w) {
  json::object out;
  auto checks = std::make_unique<Checks>();
  auto sub = [&](const json::value& v, const std::string& sub_pointer, const std::string& sub_path, bool in_place) {
    if (in_place) w.same_instance[pointer].push_back(sub_pointer);
    return rewrite(v, sub_pointer, sub_path, w);
  };
  for (const auto& member : o) {
    const std::string_view key = member.key();
    const json::value& v = member.value();
    const std::string kp = pointer + "/" + escape_pointer(key);
    const std::string kpath = member_path(path, key);
    if (key == "additionalItems" || key == "contains" || key == "propertyNames" || applies_in_place(key)) {
      if (key == "propertyNames") w.has_property_names = true;
      out[key] = sub(v, kp, kpath, applies_in_place(key));
    } else if (key == "additionalProperties") {
      if (v.is_bool() && !v.get_bool()) {
        checks->closed = true;  // checked by run_checks, which names the expected properties
      } else {
        out[key] = sub(v, kp, kpath, false);
      }
    } else if (key == "items") {
      if (const auto* a = v.if_array()) {
        json::array items;
        for (std::size_t i = 0; i < a->size(); ++i)
          items.push_back(sub((*a)[i], kp + "/" + std::to_string(i), element_path(kpath, i), false));
        out[key] = std::move(items);
      } else {
        out[key] = sub(v, kp, kpath, false);
      }
    } else if (key == "allOf" || key == "anyOf" || key == "oneOf") {
      if (const auto* a = v.if_array()) {
        json::array items;
        for (std::size_t i = 0; i < a->size(); ++i)
          items.push_back(sub((*a)[i], kp + "/" + std::to_string(i), element_path(kpath, i), true));
        out[key] = std::move(items);
      } else {
        out[key] = v;
      }
    } else if (key == "properties" || key == "patternProperties" || key == "definitions" || key == "dependencies") {
      if (key == "patternProperties") w.has_pattern_properties = true;
      if (const auto* m = v.if_object()) {
        json::object members;
        for (const auto& each : *m) {
          const std::string ep = kp + "/" + escape_pointer(each.key());
          const std::string epath = member_path(kpath, each.key());
          if (key == "patternProperties") {
            try {
              boost::regex re(std::string(each.key()), boost::regex::ECMAScript);
            } catch (const std::exception& e) {
              w.problems.push_back(epath + ": is not a valid regular expression: " + e.what());
            }
          }
          if (key == "dependencies" && each.value().is_array()) {
            members[each.key()] = each.value();
          } else {
            members[each.key()] = sub(each.value(), ep, epath, key == "dependencies");
          }
        }
        out[key] = std::move(members);
      } else {
        out[key] = v;
      }
    } else if (key == "$ref") {
      if (v.is_string()) w.refs.emplace_back(pointer, std::string(v.get_string()));
      out[key] = v;
    } else if (is_check_keyword(key)) {
      // Dropped when taken (or unusable: the meta-schema reports it); `$id` is dropped because
      // references resolve inside this document only.
      if (key != "$id" && key != k_checks_keyword && !take_check(key, v, *checks)) out[key] = v;
    } else {
      out[key] = v;  // annotations (title, description, default, ...) and unknown keywords
    }
  }
  if (checks->closed) {
    if (const auto* p = o.if_contains("properties"); p && p->is_object())
      for (const auto& m : p->get_object()) checks->known.emplace_back(m.key());
    if (const auto* p = o.if_contains("patternProperties"); p && p->is_object()) {
      for (const auto& m : p->get_object()) {
        try {
          checks->known_patterns.emplace_back(std::string(m.key()), boost::regex::ECMAScript);
        } catch (const std::exception&) {  // reported by the meta-schema
        }
      }
    }
  }
  if (!checks->empty()) {
    out[k_checks_keyword] = static_cast<std::int64_t>(w.table.size());
    w.table.push_back(std::move(checks));
  }
  return out;
}

json::value rewrite(const json::value& schema, const std::string& pointer, const std::string& path, Walk& w) {
  w.path_of.emplace(pointer, path);
  if (const auto* o = schema.if_object()) return rewrite_object(*o, pointer, path, w);
  return schema;  // true, false, or not a schema (the meta-schema reports it)
}

// The `$ref`s: local only, resolving to a schema, and no cycle of them (or of allOf, anyOf,
// oneOf, not, if/then/else) that comes back to a schema without consuming the value: valijson
// would recurse until the stack ends.
void check_refs(Walk& w) {
  std::unordered_map<std::string, std::vector<std::string>> edges = w.same_instance;
  for (const auto& [holder, ref] : w.refs) {
    const std::string where = w.path_of.at(holder) + ".$ref";
    if (ref.size() > k_max_ref_bytes) {
      w.problems.push_back(where + ": is longer than " + std::to_string(k_max_ref_bytes) + " bytes");
      continue;
    }
    if (ref.empty() || ref[0] != '#') {
      w.problems.push_back(where + ": " + show(json::string(ref)) +
                           " is not a local reference: only references into this schema (#/...) are resolved, "
                           "nothing is fetched");
      continue;
    }
    const std::string target = percent_decode(std::string_view(ref).substr(1));
    if (!target.empty() && target[0] != '/') {
      w.problems.push_back(where + ": " + show(json::string(ref)) + " is not supported: use a JSON pointer (#/...)");
      continue;
    }
    if (!w.path_of.contains(target)) {
      w.problems.push_back(where + ": " + show(json::string(ref)) + " does not resolve to a schema in this document");
      continue;
    }
    edges[holder].push_back(target);
  }
  // Iterative depth-first search for a cycle.
  enum : unsigned char { k_new, k_open, k_done };
  std::unordered_map<std::string, unsigned char> state;
  for (const auto& [start, unused] : edges) {
    if (state[start] != k_new) continue;
    std::vector<std::pair<std::string, std::size_t>> stack{{start, 0}};
    state[start] = k_open;
    while (!stack.empty()) {
      auto& [node, next] = stack.back();
      auto it = edges.find(node);
      if (it == edges.end() || next == it->second.size()) {
        state[node] = k_done;
        stack.pop_back();
        continue;
      }
      const std::string to = it->second[next++];
      if (state[to] == k_open) {
        std::string cycle;
        bool on = false;
        for (const auto& [n, unused2] : stack) {
          on = on || n == to;
          if (on) cycle += w.path_of.at(n) + " -> ";
        }
        cycle += w.path_of.at(to);
        w.problems.push_back(w.path_of.at(to) + ": a cycle of $ref/allOf/anyOf/oneOf/not/if that never reaches into "
                                                "the value: " + cycle);
        return;
      }
      if (state[to] == k_new) {
        state[to] = k_open;
        stack.emplace_back(to, 0);
      }
    }
  }
}

// ---- turning valijson's results into problems ----------------------------------------------

struct Translation {
  std::string_view prefix;
  std::string_view keyword;
  std::string_view message;  // empty: the entry only sums up problems reported below it
  bool replaces_children;    // the children are alternatives that all failed: one line says it
};

constexpr std::array<Translation, 15> k_translations = {{
    {"Failed to validate against any schemas allowed by anyOf", "anyOf", "matches none of the anyOf alternatives", true},
    {"Failed to validate against any child schemas allowed by oneOf", "oneOf", "matches none of the oneOf alternatives",
     true},
    {"Failed to validate against exactly one child schema", "oneOf", "matches more than one of the oneOf alternatives",
     false},
    {"Target should not validate against schema specified in 'not'", "not", "must not match the schema under 'not'",
     false},
    {"Failed to any values against subschema in 'contains'", "contains", "no item matches the schema under 'contains'",
     false},
    {"Array contains more items than allowed", "additionalItems", "has more items than 'items' lists", false},
    // valijson 1.0 counts only the items that passed, so an item that failed under `items`
    // also yields this; a real excess is reported by the entry above.
    {"Cannot validate item #", "", "", false},
    {"Failed to validate against child schema #", "", "", false},
    {"Missing dependency '", "dependencies", "", false},
    {"Failed to validate item #", "", "", false},
    {"Failed to validate against schema associated with", "", "", false},
    {"Failed to validate against additional properties schema", "", "", false},
    {"Failed to validate against dependent schema", "", "", false},
    {"Failed to validate against a conditional schema", "", "", false},
    {"Failed to validate against child schemas allowed by allOf", "", "", false},
}};

bool starts_with(const std::vector<std::string>& context, const std::vector<std::string>& prefix) {
  return context.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), context.begin());
}

// valijson's context ("<root>", "[key]", "[3]") as a JSON path: whether "[3]" is an index or a
// key is read from the value itself.
std::string path_of_context(const std::vector<std::string>& context, const json::value& root, std::string_view base) {
  std::string path(base);
  const json::value* at = &root;
  for (std::size_t i = 1; i < context.size(); ++i) {
    std::string_view part = context[i];
    if (part.size() >= 2 && part.front() == '[' && part.back() == ']') part = part.substr(1, part.size() - 2);
    if (at && at->is_array()) {
      std::size_t index = 0;
      const auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), index);
      if (ec == std::errc{} && end == part.data() + part.size()) {
        path = element_path(path, index);
        at = index < at->get_array().size() ? &at->get_array()[index] : nullptr;
        continue;
      }
    }
    path = member_path(path, part);
    at = at && at->is_object() ? at->get_object().if_contains(part) : nullptr;
  }
  return path;
}

}  // namespace

struct CompiledSchema::Impl {
  json::value rewritten;  // what `schema` was parsed from
  ChecksTable table;      // the custom constraints of `schema` point into it
  valijson::Schema schema;
  bool has_pattern_properties = false;
  bool has_property_names = false;
};

CompiledSchema::CompiledSchema(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CompiledSchema::~CompiledSchema() = default;

std::vector<SchemaProblem> CompiledSchema::validate(const json::value& v, std::string_view path) const {
  if (depth_of(v, k_max_value_depth) > k_max_value_depth)
    return {{std::string(path), "", "is nested more than " + std::to_string(k_max_value_depth) + " levels deep"}};
  if (impl_->has_pattern_properties && longest_key(v) > k_max_regex_key_bytes)
    return {{std::string(path), "patternProperties",
             "has a property name longer than " + std::to_string(k_max_regex_key_bytes) +
                 " bytes, too long to check against patternProperties"}};
  std::optional<json::value> narrowed;
  if (has_small_uint64(v)) {
    narrowed = v;
    narrow_uint64(*narrowed);
  }
  valijson::Validator validator(valijson::Validator::kStrongTypes);
  valijson::ValidationResults results;
  const valijson::adapters::BoostJsonAdapter target(narrowed ? *narrowed : v);
  bool ok = false;
  try {
    ok = validator.validate(impl_->schema, target, &results);
  } catch (const std::exception& e) {
    return {{std::string(path), "", std::string("could not be checked: ") + e.what()}};
  }
  if (ok) return {};

  struct Entry {
    std::vector<std::string> context;
    SchemaProblem problem;
  };
  std::vector<Entry> entries;
  valijson::ValidationResults::Error error;
  while (results.popError(error)) {
    SchemaProblem p;
    const auto& d = error.description;
    if (auto sep = d.find(k_sep); sep != std::string::npos) {
      p.keyword = d.substr(0, sep);
      p.message = d.substr(sep + 1);
    } else {
      const Translation* t = nullptr;
      for (const auto& each : k_translations)
        if (std::string_view(d).starts_with(each.prefix)) t = &each;
      if (t && t->keyword.empty()) continue;
      if (t && t->replaces_children) {
        while (!entries.empty() && entries.back().context.size() >= error.context.size() &&
               starts_with(entries.back().context, error.context))
          entries.pop_back();
      }
      if (t && t->keyword == "dependencies") {
        const auto open = d.find('\'');
        const auto close = d.rfind('\'');
        p.keyword = "dependencies";
        p.message = "missing property " + d.substr(open + 1, close - open - 1) + " (required by dependencies)";
      } else if (t) {
        p.keyword = t->keyword;
        p.message = t->message;
      } else {
        p.message = d;
      }
    }
    p.path = path_of_context(error.context, v, path);
    entries.push_back({error.context, std::move(p)});
  }
  std::vector<SchemaProblem> out;
  for (auto& e : entries) out.push_back(std::move(e.problem));
  // valijson 1.0 fails propertyNames without saying why.
  if (out.empty())
    out.push_back({std::string(path), impl_->has_property_names ? "propertyNames" : "",
                   impl_->has_property_names ? "has a property name that does not match propertyNames"
                                             : "does not match the schema"});
  return out;
}

namespace {

// A schema taken apart (see rewrite) and its references checked, not yet parsed by valijson.
struct Prepared {
  std::unique_ptr<CompiledSchema::Impl> impl;
  std::vector<std::string> problems;  // rooted at "$"
};

Prepared prepare(const json::value& schema) {
  Prepared out{std::make_unique<CompiledSchema::Impl>(), {}};
  Walk w{out.impl->table};
  out.impl->rewritten = rewrite(schema, "", "$", w);
  check_refs(w);
  out.impl->has_pattern_properties = w.has_pattern_properties;
  out.impl->has_property_names = w.has_property_names;
  out.problems = std::move(w.problems);
  return out;
}

SchemaCompilation finish(Prepared prepared) {
  if (!prepared.problems.empty()) return {nullptr, std::move(prepared.problems)};
  auto& impl = *prepared.impl;
  try {
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    parser.addConstraintBuilder(k_checks_keyword, new ChecksBuilder(&impl.table));  // the parser deletes it
    const valijson::adapters::BoostJsonAdapter adapter(impl.rewritten);
    parser.populateSchema(adapter, impl.schema);
  } catch (const std::exception& e) {
    return {nullptr, {std::string("$: ") + e.what()}};
  }
  return {std::make_shared<const CompiledSchema>(std::move(prepared.impl)), {}};
}

// Draft-07's meta-schema (http://json-schema.org/draft-07/schema), without its $id so that its
// references stay in this document.
constexpr std::string_view k_meta_schema = R"({
  "definitions": {
    "schemaArray": {"type": "array", "minItems": 1, "items": {"$ref": "#"}},
    "nonNegativeInteger": {"type": "integer", "minimum": 0},
    "nonNegativeIntegerDefault0": {"allOf": [{"$ref": "#/definitions/nonNegativeInteger"}, {"default": 0}]},
    "simpleTypes": {"enum": ["array", "boolean", "integer", "null", "number", "object", "string"]},
    "stringArray": {"type": "array", "items": {"type": "string"}, "uniqueItems": true, "default": []}
  },
  "type": ["object", "boolean"],
  "properties": {
    "$id": {"type": "string", "format": "uri-reference"},
    "$schema": {"type": "string", "format": "uri"},
    "$ref": {"type": "string", "format": "uri-reference"},
    "$comment": {"type": "string"},
    "title": {"type": "string"},
    "description": {"type": "string"},
    "default": true,
    "readOnly": {"type": "boolean", "default": false},
    "writeOnly": {"type": "boolean", "default": false},
    "examples": {"type": "array", "items": true},
    "multipleOf": {"type": "number", "exclusiveMinimum": 0},
    "maximum": {"type": "number"},
    "exclusiveMaximum": {"type": "number"},
    "minimum": {"type": "number"},
    "exclusiveMinimum": {"type": "number"},
    "maxLength": {"$ref": "#/definitions/nonNegativeInteger"},
    "minLength": {"$ref": "#/definitions/nonNegativeIntegerDefault0"},
    "pattern": {"type": "string", "format": "regex"},
    "additionalItems": {"$ref": "#"},
    "items": {"anyOf": [{"$ref": "#"}, {"$ref": "#/definitions/schemaArray"}], "default": true},
    "maxItems": {"$ref": "#/definitions/nonNegativeInteger"},
    "minItems": {"$ref": "#/definitions/nonNegativeIntegerDefault0"},
    "uniqueItems": {"type": "boolean", "default": false},
    "contains": {"$ref": "#"},
    "maxProperties": {"$ref": "#/definitions/nonNegativeInteger"},
    "minProperties": {"$ref": "#/definitions/nonNegativeIntegerDefault0"},
    "required": {"$ref": "#/definitions/stringArray"},
    "additionalProperties": {"$ref": "#"},
    "definitions": {"type": "object", "additionalProperties": {"$ref": "#"}, "default": {}},
    "properties": {"type": "object", "additionalProperties": {"$ref": "#"}, "default": {}},
    "patternProperties": {"type": "object", "additionalProperties": {"$ref": "#"},
                          "propertyNames": {"format": "regex"}, "default": {}},
    "dependencies": {"type": "object",
                     "additionalProperties": {"anyOf": [{"$ref": "#"}, {"$ref": "#/definitions/stringArray"}]}},
    "propertyNames": {"$ref": "#"},
    "const": true,
    "enum": {"type": "array", "items": true},
    "type": {"anyOf": [{"$ref": "#/definitions/simpleTypes"},
                       {"type": "array", "items": {"$ref": "#/definitions/simpleTypes"}, "minItems": 1,
                        "uniqueItems": true}]},
    "format": {"type": "string"},
    "contentMediaType": {"type": "string"},
    "contentEncoding": {"type": "string"},
    "if": {"$ref": "#"},
    "then": {"$ref": "#"},
    "else": {"$ref": "#"},
    "allOf": {"$ref": "#/definitions/schemaArray"},
    "anyOf": {"$ref": "#/definitions/schemaArray"},
    "oneOf": {"$ref": "#/definitions/schemaArray"},
    "not": {"$ref": "#"}
  },
  "default": true
})";

const CompiledSchema& meta_schema() {
  static const std::shared_ptr<const CompiledSchema> compiled = [] {
    auto c = finish(prepare(json::parse(k_meta_schema)));
    if (!c.schema) throw std::logic_error("json_schema: the draft-07 meta-schema does not compile: " + c.problems.front());
    return c.schema;
  }();
  return *compiled;
}

bool known_draft(std::string_view uri) {
  for (std::string_view known : {"http://json-schema.org/draft-07/schema", "https://json-schema.org/draft-07/schema"})
    if (uri == known || (uri.size() == known.size() + 1 && uri.starts_with(known) && uri.back() == '#')) return true;
  return false;
}

SchemaCompilation compile_checked(const json::object& schema) {
  const json::value root(schema);
  if (depth_of(root, k_max_schema_depth) > k_max_schema_depth)
    return {nullptr, {"$: is nested more than " + std::to_string(k_max_schema_depth) + " levels deep"}};
  std::vector<std::string> problems;
  if (const auto* draft = schema.if_contains("$schema"); draft && draft->is_string() && !known_draft(draft->get_string()))
    problems.push_back("$.$schema: " + show(*draft) + " is not supported: dagent checks draft-07 schemas");
  Prepared prepared = prepare(root);
  for (auto& p : meta_schema().validate(root, "$")) {
    // valijson 1.0 fails propertyNames without a word (here: patternProperties keys that are
    // not regular expressions); the walk names each such key itself.
    if (p.keyword == "propertyNames" && !prepared.problems.empty()) continue;
    // The meta-schema's anyOf for `type` says little: name what is wrong.
    if (p.keyword == "anyOf" && p.path.ends_with(".type"))
      p.message = "must be a type name or a list of them (null, boolean, integer, number, string, array, object)";
    problems.push_back(p.to_string());
  }
  if (!problems.empty()) {
    for (auto& p : prepared.problems) problems.push_back(std::move(p));
    return {nullptr, std::move(problems)};
  }
  return finish(std::move(prepared));
}

struct Cache {
  std::mutex mutex;
  std::unordered_map<std::string, SchemaCompilation> entries;
};

Cache& cache() {
  static Cache c;
  return c;
}

std::string rerooted(const std::string& problem, std::string_view path) {
  if (path == "$" || problem.empty() || problem[0] != '$') return problem;
  return std::string(path) + problem.substr(1);
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

SchemaCompilation compile_schema(const json::object& schema, std::string_view path) {
  std::string key = json::serialize(schema);
  SchemaCompilation found;
  bool hit = false;
  {
    auto& c = cache();
    std::lock_guard lock(c.mutex);
    if (auto it = c.entries.find(key); it != c.entries.end()) {
      found = it->second;
      hit = true;
    }
  }
  if (!hit) {
    // Compiled outside the lock: two threads may both compile a new schema; both results agree.
    found = compile_checked(schema);
    auto& c = cache();
    std::lock_guard lock(c.mutex);
    if (c.entries.size() >= k_cache_limit) c.entries.clear();  // plans bring schemas without end
    c.entries.emplace(std::move(key), found);
  }
  for (auto& p : found.problems) p = rerooted(p, path);
  return found;
}

std::vector<std::string> check_schema(const json::object& schema, std::string_view path) {
  return compile_schema(schema, path).problems;
}

std::vector<std::string> validate_json(const json::value& v, const json::object& schema, std::string_view path) {
  auto compiled = compile_schema(schema, "$");
  std::vector<std::string> out;
  if (!compiled.schema) {
    for (auto& p : compiled.problems) out.push_back("invalid schema: " + p);
    return out;
  }
  for (auto& p : compiled.schema->validate(v, path)) out.push_back(p.to_string());
  return out;
}

boost::system::result<void, ToolError> check_parameters(const json::object& params, const json::object& schema) {
  auto problems = validate_json(json::value(params), schema, "$");
  if (problems.empty()) return {};
  std::string message = "invalid parameters: ";
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (i > 0) message += "; ";
    message += problems[i];
  }
  return ToolError{ToolErrc::invalid_parameters, std::move(message)};
}

}  // namespace dagent::tools
