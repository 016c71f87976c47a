#include "executor/verifier.hpp"

#include <algorithm>

#include <boost/json/serialize.hpp>

#include "tools/json_schema.hpp"

namespace dagent::executor {
namespace {

namespace json = boost::json;

constexpr std::string_view k_rule_keys[] = {"non_empty", "contains", "json_schema", "field"};

void check_one(const json::value& c, std::string_view where, std::vector<std::string>& out) {
  if (c.is_string()) {
    if (c.get_string().empty()) out.push_back(std::string(where) + "a text criterion is empty");
    return;
  }
  const auto* obj = c.if_object();
  if (!obj) {
    out.push_back(std::string(where) + "expected a text criterion, a rule object or a list of them");
    return;
  }
  const auto before = out.size();
  for (const auto& kv : *obj) {
    auto key = std::string_view(kv.key());
    if (std::find(std::begin(k_rule_keys), std::end(k_rule_keys), key) == std::end(k_rule_keys)) {
      out.push_back(std::string(where) + "unknown rule '" + std::string(key) + "' (rules: non_empty, contains, json_schema, field)");
    } else if (key == "non_empty" && !kv.value().is_bool()) {
      out.push_back(std::string(where) + "non_empty takes true or false");
    } else if (key == "contains") {
      bool ok = kv.value().is_string();
      if (const auto* arr = kv.value().if_array()) {
        ok = true;
        for (const auto& e : *arr) ok = ok && e.is_string();
      }
      if (!ok) out.push_back(std::string(where) + "contains takes a string or a list of strings");
    } else if (key == "json_schema" && !kv.value().is_object()) {
      out.push_back(std::string(where) + "json_schema takes a JSON Schema object");
    } else if (key == "json_schema") {
      for (auto& p : tools::check_schema(kv.value().get_object(), "json_schema")) out.push_back(std::string(where) + p);
    } else if (key == "field" && !kv.value().is_string()) {
      out.push_back(std::string(where) + "field takes the name of an output field");
    }
  }
  if (out.size() == before && !obj->contains("non_empty") && !obj->contains("contains") && !obj->contains("json_schema"))
    out.push_back(std::string(where) + "a rule object needs non_empty, contains or json_schema");
}

// The part of the output a rule looks at: the named field, else the output's main text.
const json::value* subject_of(const json::object& rule, const json::value& output, std::string& error) {
  if (const auto* field = rule.if_contains("field")) {
    const auto* obj = output.if_object();
    const auto* v = obj ? obj->if_contains(field->get_string()) : nullptr;
    if (!v) error = "the output has no field '" + std::string(field->get_string()) + "'";
    return v;
  }
  if (const auto* obj = output.if_object()) {
    for (auto key : {"text", "content"})
      if (const auto* v = obj->if_contains(key); v && v->is_string()) return v;
  }
  return &output;
}

bool is_empty(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: return true;
    case json::kind::string: return v.get_string().find_first_not_of(" \t\r\n") == json::string::npos;
    case json::kind::array: return v.get_array().empty();
    case json::kind::object: return v.get_object().empty();
    default: return false;
  }
}

// Returns an empty string when the rule holds, else why not.
std::string check_rule(const json::object& rule, const json::value& output) {
  std::string error;
  const auto* subject = subject_of(rule, output, error);
  if (!subject) return error;
  if (const auto* ne = rule.if_contains("non_empty"); ne && ne->get_bool() && is_empty(*subject))
    return "the output is empty";
  if (const auto* contains = rule.if_contains("contains")) {
    std::string text = subject->is_string() ? std::string(subject->get_string()) : json::serialize(*subject);
    auto check = [&](const json::value& needle) -> std::string {
      const auto& s = needle.get_string();
      if (text.find(std::string_view(s)) == std::string::npos) return "the output does not contain \"" + std::string(s) + "\"";
      return {};
    };
    if (contains->is_string()) {
      if (auto r = check(*contains); !r.empty()) return r;
    } else {
      for (const auto& n : contains->get_array())
        if (auto r = check(n); !r.empty()) return r;
    }
  }
  if (const auto* schema = rule.if_contains("json_schema")) {
    auto problems = tools::validate_json(*subject, schema->get_object(), "output");
    if (!problems.empty()) {
      std::string r = "the output does not match the schema: " + problems.front();
      if (problems.size() > 1) r += " (and " + std::to_string(problems.size() - 1) + " more)";
      return r;
    }
  }
  return {};
}

}  // namespace

std::vector<std::string> check_criterion(const json::value& criterion) {
  std::vector<std::string> out;
  if (const auto* arr = criterion.if_array()) {
    if (arr->empty()) out.push_back("an empty list of criteria");
    for (std::size_t i = 0; i < arr->size(); ++i) check_one((*arr)[i], "[" + std::to_string(i) + "] ", out);
  } else {
    check_one(criterion, "", out);
  }
  return out;
}

Verdict check_rules(const json::value& criterion, const json::value& output, std::string_view text_reason) {
  std::vector<const json::value*> items;
  if (const auto* arr = criterion.if_array()) {
    for (const auto& c : *arr) items.push_back(&c);
  } else {
    items.push_back(&criterion);
  }
  bool has_text = false;
  int rules = 0;
  for (const auto* c : items) {
    if (c->is_string()) {
      has_text = true;
      continue;
    }
    ++rules;
    if (auto why = check_rule(c->get_object(), output); !why.empty()) return {VerificationStatus::failed, why};
  }
  if (has_text) {
    std::string reason(text_reason);
    if (rules) reason = std::to_string(rules) + (rules == 1 ? " rule" : " rules") + " passed; " + reason;
    return {VerificationStatus::not_requested, reason};
  }
  return {VerificationStatus::passed, rules == 1 ? "the rule holds" : "all " + std::to_string(rules) + " rules hold"};
}

boost::asio::awaitable<Verdict> RuleVerifier::verify(json::value criterion, json::value output) {
  co_return check_rules(criterion, output, text_reason_);
}

}  // namespace dagent::executor
