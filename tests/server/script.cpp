#include "script.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <array>

namespace dagent::test_server {
namespace json = boost::json;

namespace {

using ParseError = std::string;

constexpr std::array<std::string_view, 16> k_rule_keys = {
    "path",       "contains", "nth",           "times",              "status",        "headers", "body",
    "latency_ms", "reply",    "stream_chunks", "stream_interval_ms", "stream_events", "fault",   "comment",
    "bytes",      "hold_until"};

// `text` (UTF-8) with each character U+0000..U+00FF as that one byte: how a script, itself JSON,
// spells bytes that are not UTF-8. False when a character is above U+00FF.
bool to_bytes(std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if ((c == 0xC2 || c == 0xC3) && i + 1 < text.size()) {
      out.push_back(static_cast<char>(((c & 0x03) << 6) | (static_cast<unsigned char>(text[++i]) & 0x3F)));
    } else {
      return false;
    }
  }
  text = std::move(out);
  return true;
}

std::optional<ParseError> read_string(const json::object& rule, std::string_view key,
                                      std::optional<std::string>& out) {
  const json::value* v = rule.if_contains(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) return std::string(key) + " must be a string";
  out = std::string(v->get_string());
  return std::nullopt;
}

std::optional<ParseError> read_count(const json::object& rule, std::string_view key,
                                     std::uint64_t minimum, std::optional<std::uint64_t>& out) {
  const json::value* v = rule.if_contains(key);
  if (!v) return std::nullopt;
  if (v->is_uint64()) out = v->get_uint64();
  else if (v->is_int64() && v->get_int64() >= 0) out = static_cast<std::uint64_t>(v->get_int64());
  if (!out || *out < minimum)
    return std::string(key) + " must be an integer >= " + std::to_string(minimum);
  return std::nullopt;
}

std::optional<ParseError> read_millis(const json::object& rule, std::string_view key,
                                      std::optional<std::chrono::milliseconds>& out) {
  std::optional<std::uint64_t> count;
  if (auto error = read_count(rule, key, 0, count)) return error;
  if (count) out = std::chrono::milliseconds(static_cast<std::int64_t>(*count));
  return std::nullopt;
}

std::optional<ParseError> read_filter(const json::object& object, RequestFilter& filter) {
  if (auto error = read_string(object, "path", filter.path)) return error;
  return read_string(object, "contains", filter.contains);
}

std::optional<Fault> fault_from(std::string_view name) {
  for (Fault f : {Fault::reset, Fault::stall, Fault::truncate, Fault::close_after_response, Fault::ping})
    if (to_string(f) == name) return f;
  return std::nullopt;
}

std::optional<ParseError> read_action(const json::object& rule, RuleAction& action) {
  std::optional<std::uint64_t> status;
  if (auto error = read_count(rule, "status", 100, status)) return error;
  if (status && *status > 599) return ParseError("status must be in 100..599");
  if (status) action.status = static_cast<unsigned>(*status);

  if (const json::value* headers = rule.if_contains("headers")) {
    if (!headers->is_object()) return ParseError("headers must be an object");
    for (const auto& [name, value] : headers->get_object()) {
      if (value.is_string()) action.headers.emplace_back(name, value.get_string());
      else if (value.is_number()) action.headers.emplace_back(name, json::serialize(value));
      else return "header " + std::string(name) + " must be a string or a number";
    }
  }
  if (const json::value* body = rule.if_contains("body"))
    action.body = body->is_string() ? std::string(body->get_string()) : json::serialize(*body);

  if (auto error = read_millis(rule, "latency_ms", action.latency)) return error;
  if (auto error = read_millis(rule, "stream_interval_ms", action.stream_interval)) return error;
  if (auto error = read_string(rule, "reply", action.reply)) return error;

  for (auto [key, out] : {std::pair{"stream_chunks", &action.stream_chunks}, std::pair{"stream_events", &action.stream_events}}) {
    const json::value* list = rule.if_contains(key);
    if (!list) continue;
    const std::string error = std::string(key) + " must be an array of strings";
    if (!list->is_array()) return error;
    std::vector<std::string> pieces;
    for (const auto& piece : list->get_array()) {
      if (!piece.is_string()) return error;
      pieces.emplace_back(piece.get_string());
    }
    *out = std::move(pieces);
  }

  if (const json::value* bytes = rule.if_contains("bytes")) {
    if (!bytes->is_bool()) return ParseError("bytes must be true or false");
    if (bytes->get_bool()) {
      const ParseError error = "with bytes, reply, body, stream_chunks and stream_events hold only U+0000..U+00FF";
      for (auto* text : {&action.reply, &action.body})
        if (*text && !to_bytes(**text)) return error;
      for (auto* list : {&action.stream_chunks, &action.stream_events})
        if (*list)
          for (auto& piece : **list)
            if (!to_bytes(piece)) return error;
    }
  }

  std::optional<std::string> fault;
  if (auto error = read_string(rule, "fault", fault)) return error;
  if (fault) {
    auto parsed = fault_from(*fault);
    if (!parsed) return "unknown fault \"" + *fault + "\" (reset, stall, truncate, close_after_response, ping)";
    action.fault = *parsed;
  }

  if (const json::value* hold = rule.if_contains("hold_until")) {
    const ParseError error = "hold_until must be an object with only path and/or contains";
    if (!hold->is_object()) return error;
    for (const auto& entry : hold->get_object())
      if (entry.key() != "path" && entry.key() != "contains") return error;
    RequestFilter filter;
    if (auto filter_error = read_filter(hold->get_object(), filter)) return "hold_until: " + *filter_error;
    action.hold_until = std::move(filter);
  }
  return std::nullopt;
}

std::optional<ParseError> read_rule(const json::value& value, Rule& rule) {
  if (!value.is_object()) return ParseError("a rule must be an object");
  const json::object& object = value.get_object();
  for (const auto& entry : object) {
    if (std::find(k_rule_keys.begin(), k_rule_keys.end(), entry.key()) == k_rule_keys.end())
      return "unknown key \"" + std::string(entry.key()) + "\"";
  }
  if (auto error = read_filter(object, rule.filter)) return error;
  if (auto error = read_count(object, "nth", 1, rule.nth)) return error;
  if (auto error = read_count(object, "times", 0, rule.times)) return error;
  if (rule.nth && rule.times) return ParseError("nth and times exclude each other");
  return read_action(object, rule.action);
}

}  // namespace

bool RequestFilter::passes(std::string_view request_path, std::string_view body) const {
  if (path && *path != request_path) return false;
  return !contains || body.find(*contains) != std::string_view::npos;
}

std::string_view to_string(Fault fault) {
  switch (fault) {
    case Fault::none: return "none";
    case Fault::reset: return "reset";
    case Fault::stall: return "stall";
    case Fault::truncate: return "truncate";
    case Fault::close_after_response: return "close_after_response";
    case Fault::ping: return "ping";
  }
  return "none";
}

boost::system::result<Script, std::string> Script::parse(const json::value& document) {
  const json::object* root = document.if_object();
  const json::value* rules = root ? root->if_contains("rules") : nullptr;
  if (!rules || !rules->is_array()) return std::string("a script is {\"rules\": [...]}");
  Script script;
  for (std::size_t i = 0; i < rules->get_array().size(); ++i) {
    Rule rule;
    if (auto error = read_rule(rules->get_array()[i], rule))
      return "rule " + std::to_string(i) + ": " + *error;
    script.rules_.push_back(std::move(rule));
  }
  script.counters_.resize(script.rules_.size());
  for (std::size_t i = 0; i < script.rules_.size(); ++i)
    script.counters_[i].hold_met = !script.rules_[i].action.hold_until;
  return script;
}

boost::system::result<Script, std::string> Script::parse(std::string_view text) {
  boost::system::error_code ec;
  json::value document = json::parse(text, ec);
  if (ec) return "script is not valid JSON: " + ec.message();
  return parse(document);
}

std::optional<std::size_t> Script::match(std::string_view path, std::string_view body) {
  std::optional<std::size_t> chosen;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const Rule& rule = rules_[i];
    Counter& counter = counters_[i];
    if (rule.action.hold_until && rule.action.hold_until->passes(path, body)) counter.hold_met = true;
    if (!rule.filter.passes(path, body)) continue;
    ++counter.seen;
    if (chosen) continue;
    if (rule.nth && counter.seen != *rule.nth) continue;
    if (rule.times && counter.seen > *rule.times) continue;
    ++counter.applied;
    chosen = i;
  }
  return chosen;
}

json::array Script::counters() const {
  json::array out;
  for (const Counter& c : counters_)
    out.push_back(json::object{{"seen", c.seen}, {"applied", c.applied}});
  return out;
}

}  // namespace dagent::test_server
