#include "record/llm_event.hpp"

#include <optional>
#include <utility>

#include <boost/json/value.hpp>

namespace dagent::record {

namespace json = boost::json;
using net::NetErrc;

namespace {

net::LlmError malformed(std::string_view what) {
  return net::LlmError{make_error_code(NetErrc::protocol_error),
                       "malformed recording: the llm event's " + std::string(what) + " is missing or of the wrong type",
                       0, {}, {}, 0};
}

std::optional<std::string> string_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string(v->get_string());
}

std::optional<std::int64_t> int_field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  return std::nullopt;
}

json::object usage_json(const net::Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens}, {"completion_tokens", usage.completion_tokens}};
}

std::optional<net::Usage> usage_from(const json::object& response) {
  const json::value* v = response.if_contains("usage");
  if (!v || !v->is_object()) return std::nullopt;
  auto prompt = int_field(v->get_object(), "prompt_tokens");
  auto completion = int_field(v->get_object(), "completion_tokens");
  if (!prompt || !completion) return std::nullopt;
  return net::Usage{*prompt, *completion};
}

}  // namespace

std::string_view errc_name(NetErrc code) noexcept {
  switch (code) {
    case NetErrc::invalid_url: return "invalid_url";
    case NetErrc::no_ca_certificates: return "no_ca_certificates";
    case NetErrc::resolve_failed: return "resolve_failed";
    case NetErrc::connect_failed: return "connect_failed";
    case NetErrc::tls_handshake_failed: return "tls_handshake_failed";
    case NetErrc::connect_timeout: return "connect_timeout";
    case NetErrc::request_timeout: return "request_timeout";
    case NetErrc::idle_timeout: return "idle_timeout";
    case NetErrc::connection_closed: return "connection_closed";
    case NetErrc::truncated: return "truncated";
    case NetErrc::protocol_error: return "protocol_error";
    case NetErrc::event_too_large: return "event_too_large";
    case NetErrc::circuit_open: return "circuit_open";
    case NetErrc::api_error: return "api_error";
    case NetErrc::cancelled: return "cancelled";
    case NetErrc::replay_mismatch: return "replay_mismatch";
    case NetErrc::provider_refused: return "provider_refused";
    case NetErrc::too_large: return "too_large";
    case NetErrc::budget_exceeded: return "budget_exceeded";
  }
  return "unknown";
}

json::object to_json(const net::ChatResponse& response) {
  return {{"id", response.id},
          {"model", response.model},
          {"content", response.content},
          {"finish_reason", response.finish_reason},
          {"usage", usage_json(response.usage)}};
}

json::object to_json(const net::EmbedResponse& response) {
  json::array vectors;
  vectors.reserve(response.size());
  for (std::size_t i = 0; i < response.size(); ++i) {
    json::array row;
    row.reserve(response.dimension);
    for (float x : response.vector(i)) row.emplace_back(static_cast<double>(x));
    vectors.push_back(std::move(row));
  }
  return {{"dimension", response.dimension}, {"vectors", std::move(vectors)}, {"usage", usage_json(response.usage)}};
}

json::object to_json(const net::LlmError& error) {
  // Codes from other categories than dagent.net (none are expected) keep their number.
  json::value code = error.code.category() == net::net_category()
                         ? json::value(errc_name(static_cast<NetErrc>(error.code.value())))
                         : json::value(error.code.value());
  return {{"code", std::move(code)}, {"message", error.message}, {"status", error.status},
          {"type", error.type},     {"api_code", error.api_code}, {"attempts", error.attempts}};
}

net::LlmResult<net::ChatResponse> chat_response_from_json(const json::object& response) {
  auto id = string_field(response, "id");
  auto model = string_field(response, "model");
  auto content = string_field(response, "content");
  auto finish = string_field(response, "finish_reason");
  auto usage = usage_from(response);
  if (!id || !model || !content || !finish) return malformed("response");
  if (!usage) return malformed("response.usage");
  return net::ChatResponse{std::move(*id), std::move(*model), std::move(*content), std::move(*finish), *usage};
}

net::LlmResult<net::EmbedResponse> embed_response_from_json(const json::object& response) {
  net::EmbedResponse out;
  auto dimension = int_field(response, "dimension");
  auto usage = usage_from(response);
  const json::value* vectors = response.if_contains("vectors");
  if (!dimension || *dimension < 0 || !vectors || !vectors->is_array()) return malformed("response");
  if (!usage) return malformed("response.usage");
  out.dimension = static_cast<std::size_t>(*dimension);
  out.usage = *usage;
  out.vectors.reserve(vectors->get_array().size() * out.dimension);
  for (const auto& row : vectors->get_array()) {
    if (!row.is_array() || row.get_array().size() != out.dimension) return malformed("response.vectors");
    for (const auto& x : row.get_array()) {
      if (!x.is_number()) return malformed("response.vectors");
      out.vectors.push_back(static_cast<float>(x.to_number<double>()));
    }
  }
  return out;
}

net::LlmError error_from_json(const json::object& error) {
  net::LlmError out;
  out.code = make_error_code(NetErrc::protocol_error);
  if (auto name = string_field(error, "code")) {
    for (int v = static_cast<int>(NetErrc::invalid_url); v <= static_cast<int>(NetErrc::too_large); ++v)
      if (errc_name(static_cast<NetErrc>(v)) == *name) out.code = make_error_code(static_cast<NetErrc>(v));
  } else if (auto number = int_field(error, "code")) {
    out.code = make_error_code(static_cast<NetErrc>(*number));
  }
  out.message = string_field(error, "message").value_or("");
  out.status = static_cast<int>(int_field(error, "status").value_or(0));
  out.type = string_field(error, "type").value_or("");
  out.api_code = string_field(error, "api_code").value_or("");
  out.attempts = static_cast<int>(int_field(error, "attempts").value_or(0));
  return out;
}

}  // namespace dagent::record
