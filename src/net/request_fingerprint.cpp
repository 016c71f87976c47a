#include "net/request_fingerprint.hpp"

#include <algorithm>
#include <vector>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "net/sha256.hpp"

namespace dagent::net {

namespace json = boost::json;

namespace {

// A copy of `v` with every object's keys sorted, so a schema written in another key order is
// still the same request.
json::value sorted_keys(const json::value& v) {
  if (const auto* a = v.if_array()) {
    json::array out;
    out.reserve(a->size());
    for (const auto& item : *a) out.push_back(sorted_keys(item));
    return out;
  }
  const auto* o = v.if_object();
  if (!o) return v;
  std::vector<const json::key_value_pair*> fields;
  for (const auto& field : *o) fields.push_back(&field);
  std::sort(fields.begin(), fields.end(), [](const auto* x, const auto* y) { return x->key() < y->key(); });
  json::object out;
  out.reserve(fields.size());
  for (const auto* field : fields) out.emplace(field->key(), sorted_keys(field->value()));
  return out;
}

}  // namespace

std::string_view to_string(CallKind kind) noexcept {
  switch (kind) {
    case CallKind::chat: return "chat";
    case CallKind::chat_stream: return "chat_stream";
    case CallKind::embed: return "embed";
  }
  return "unknown";
}

json::object normalize(const ChatRequest& request, CallKind kind) {
  json::array messages;
  for (const auto& m : request.messages) messages.push_back(json::object{{"role", m.role}, {"content", m.content}});
  json::object out{{"kind", to_string(kind)}, {"model", request.model}, {"messages", std::move(messages)}};
  if (request.temperature) out["temperature"] = *request.temperature;
  if (request.max_tokens) out["max_tokens"] = *request.max_tokens;
  if (request.json_schema) {
    out["response_format"] = json::object{
        {"type", "json_schema"}, {"name", request.schema_name}, {"strict", request.strict}, {"schema", *request.json_schema}};
  }
  return out;
}

json::object normalize(const EmbedRequest& request) {
  json::array inputs;
  for (const auto& in : request.inputs) inputs.emplace_back(in);
  json::object out{{"kind", to_string(CallKind::embed)}, {"model", request.model}, {"input", std::move(inputs)}};
  if (request.dimensions) out["dimensions"] = *request.dimensions;
  return out;
}

std::string fingerprint(const json::object& normalized) {
  return sha256_hex(json::serialize(sorted_keys(normalized)));
}

}  // namespace dagent::net
