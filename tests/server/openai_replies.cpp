#include "openai_replies.hpp"

#include <boost/json/serialize.hpp>

#include <cmath>

namespace dagent::test_server {
namespace json = boost::json;

namespace {

constexpr std::size_t k_echo_limit = 200;
constexpr std::size_t k_default_dimensions = 64;
constexpr std::size_t k_max_dimensions = 8192;
constexpr std::string_view k_fingerprint = "fp_dagent_test";

/// Text of a message `content`: a string, or the `text` of its parts.
std::string content_text(const json::value& content) {
  if (content.is_string()) return std::string(content.get_string());
  std::string out;
  if (const json::array* parts = content.if_array()) {
    for (const json::value& part : *parts) {
      const json::object* o = part.if_object();
      const json::value* text = o ? o->if_contains("text") : nullptr;
      if (text && text->is_string()) out += text->get_string();
    }
  }
  return out;
}

std::uint64_t hash_word(std::string_view word) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a, then a splitmix64 finalizer to spread bits
  for (unsigned char c : word) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

bool is_word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

json::object usage_object(std::int64_t prompt, std::int64_t completion) {
  return json::object{{"prompt_tokens", prompt},
                      {"completion_tokens", completion},
                      {"total_tokens", prompt + completion}};
}

json::object chunk_object(const ChatRequest& request, const CompletionId& id, json::array choices) {
  json::object chunk{{"id", id.id},
                     {"object", "chat.completion.chunk"},
                     {"created", id.created},
                     {"model", request.model},
                     {"system_fingerprint", k_fingerprint},
                     {"choices", std::move(choices)}};
  if (request.include_usage) chunk["usage"] = nullptr;  // as OpenAI does on every other chunk
  return chunk;
}

json::array delta_choice(json::object delta, json::value finish_reason) {
  return json::array{json::object{{"index", 0},
                                  {"delta", std::move(delta)},
                                  {"logprobs", nullptr},
                                  {"finish_reason", std::move(finish_reason)}}};
}

std::string sse_event(const json::value& payload) { return "data: " + json::serialize(payload) + "\n\n"; }

}  // namespace

std::int64_t estimate_tokens(std::size_t bytes) { return static_cast<std::int64_t>((bytes + 3) / 4); }

std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  std::size_t end = max_bytes;
  // Back off over continuation bytes (10xxxxxx) so the cut lands before a lead byte.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

boost::system::result<ChatRequest, BadRequest> parse_chat_request(const json::value& body) {
  const json::object* root = body.if_object();
  if (!root) return BadRequest{"the request body must be a JSON object"};
  ChatRequest request;
  if (const json::value* model = root->if_contains("model"); model && model->is_string())
    request.model = std::string(model->get_string());
  else
    return BadRequest{"you must provide a model parameter"};

  const json::value* messages = root->if_contains("messages");
  if (!messages || !messages->is_array() || messages->get_array().empty())
    return BadRequest{"'messages' must be a non-empty array"};
  for (const json::value& message : messages->get_array()) {
    const json::object* m = message.if_object();
    if (!m) return BadRequest{"each message must be an object"};
    const json::value* content = m->if_contains("content");
    std::string text = content ? content_text(*content) : std::string();
    request.message_bytes += text.size();
    const json::value* role = m->if_contains("role");
    if (role && role->is_string() && role->get_string() == "user") request.last_user_text = std::move(text);
  }

  if (const json::value* stream = root->if_contains("stream"); stream && stream->is_bool())
    request.stream = stream->get_bool();
  if (const json::value* options = root->if_contains("stream_options"); options && options->is_object()) {
    const json::value* usage = options->get_object().if_contains("include_usage");
    request.include_usage = usage && usage->is_bool() && usage->get_bool();
  }
  if (const json::value* format = root->if_contains("response_format"); format && format->is_object()) {
    const json::value* type = format->get_object().if_contains("type");
    if (type && type->is_string() && type->get_string() == "json_object") request.json_object = true;
    if (type && type->is_string() && type->get_string() == "json_schema") {
      const json::value* spec = format->get_object().if_contains("json_schema");
      const json::value* schema = spec && spec->is_object() ? spec->get_object().if_contains("schema") : nullptr;
      request.schema = schema ? *schema : json::value(json::object{});
    }
  }
  return request;
}

json::value minimal_value_for_schema(const json::value& schema) {
  const json::object* s = schema.if_object();
  if (!s) return json::object{};
  if (const json::value* c = s->if_contains("const")) return *c;
  if (const json::value* e = s->if_contains("enum"); e && e->is_array() && !e->get_array().empty())
    return e->get_array().front();
  for (std::string_view key : {"anyOf", "oneOf", "allOf"}) {
    if (const json::value* alts = s->if_contains(key); alts && alts->is_array() && !alts->get_array().empty())
      return minimal_value_for_schema(alts->get_array().front());
  }

  std::string type = "object";
  if (const json::value* t = s->if_contains("type")) {
    if (t->is_string()) type = std::string(t->get_string());
    if (t->is_array()) {  // ["string", "null"]: the first non-null type
      for (const json::value& each : t->get_array())
        if (each.is_string() && each.get_string() != "null") { type = std::string(each.get_string()); break; }
    }
  }
  if (type == "string") return "x";
  if (type == "integer" || type == "number") return 0;
  if (type == "boolean") return false;
  if (type == "array") return json::array{};
  if (type == "null") return nullptr;

  json::object out;
  const json::value* required = s->if_contains("required");
  const json::value* properties = s->if_contains("properties");
  if (required && required->is_array()) {
    for (const json::value& name : required->get_array()) {
      if (!name.is_string()) continue;
      const json::value* property = properties && properties->is_object()
                                        ? properties->get_object().if_contains(name.get_string())
                                        : nullptr;
      out[name.get_string()] = property ? minimal_value_for_schema(*property) : json::value("x");
    }
  }
  return out;
}

std::string default_chat_content(const ChatRequest& request) {
  if (!request.schema.is_null()) return json::serialize(minimal_value_for_schema(request.schema));
  if (request.json_object) return "{}";
  return "echo: " + std::string(utf8_prefix(request.last_user_text, k_echo_limit));
}

std::string chat_completion_body(const ChatRequest& request, std::string_view content, const CompletionId& id) {
  json::object message{{"role", "assistant"}, {"content", content}, {"refusal", nullptr}};
  json::object body{
      {"id", id.id},
      {"object", "chat.completion"},
      {"created", id.created},
      {"model", request.model},
      {"system_fingerprint", k_fingerprint},
      {"choices", json::array{json::object{{"index", 0},
                                           {"message", std::move(message)},
                                           {"logprobs", nullptr},
                                           {"finish_reason", "stop"}}}},
      {"usage", usage_object(estimate_tokens(request.message_bytes), estimate_tokens(content.size()))}};
  return json::serialize(body);
}

std::vector<std::string> split_into_pieces(std::string_view content) {
  std::vector<std::string> pieces;
  std::size_t start = 0;
  while (start < content.size()) {
    std::size_t end = content.find(' ', start);
    end = end == std::string_view::npos ? content.size() : content.find_first_not_of(' ', end);
    if (end == std::string_view::npos) end = content.size();
    pieces.emplace_back(content.substr(start, end - start));
    start = end;
  }
  return pieces;
}

std::vector<std::string> chat_stream_events(const ChatRequest& request, const std::vector<std::string>& pieces,
                                            const CompletionId& id) {
  std::vector<std::string> events;
  events.push_back(sse_event(chunk_object(
      request, id, delta_choice(json::object{{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}, nullptr))));
  std::size_t content_bytes = 0;
  for (const std::string& piece : pieces) {
    content_bytes += piece.size();
    events.push_back(sse_event(chunk_object(request, id, delta_choice(json::object{{"content", piece}}, nullptr))));
  }
  events.push_back(sse_event(chunk_object(request, id, delta_choice(json::object{}, "stop"))));
  if (request.include_usage) {
    json::object usage_chunk = chunk_object(request, id, json::array{});
    usage_chunk["usage"] = usage_object(estimate_tokens(request.message_bytes), estimate_tokens(content_bytes));
    events.push_back(sse_event(usage_chunk));
  }
  events.emplace_back("data: [DONE]\n\n");
  return events;
}

std::vector<double> embed_text(std::string_view text, std::size_t dimensions) {
  std::vector<double> vector(dimensions, 0.0);
  if (dimensions == 0) return vector;
  std::string word;
  auto add_word = [&] {
    if (word.empty()) return;
    std::uint64_t h = hash_word(word);
    vector[h % dimensions] += (h >> 63) ? -1.0 : 1.0;  // signed hashing: unrelated words cancel out
    word.clear();
  };
  for (unsigned char c : text) {
    if (is_word_byte(c)) word.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
    else add_word();
  }
  add_word();

  double norm = 0;
  for (double x : vector) norm += x * x;
  if (norm == 0) {
    vector[0] = 1.0;
    return vector;
  }
  norm = std::sqrt(norm);
  for (double& x : vector) x /= norm;
  return vector;
}

boost::system::result<std::string, BadRequest> embeddings_body(const json::value& body) {
  const json::object* root = body.if_object();
  if (!root) return BadRequest{"the request body must be a JSON object"};
  std::vector<std::string> inputs;
  const json::value* input = root->if_contains("input");
  if (input && input->is_string()) {
    inputs.emplace_back(input->get_string());
  } else if (input && input->is_array() && !input->get_array().empty()) {
    for (const json::value& each : input->get_array()) {
      if (!each.is_string()) return BadRequest{"'input' must be a string or an array of strings"};
      inputs.emplace_back(each.get_string());
    }
  } else {
    return BadRequest{"'input' must be a string or a non-empty array of strings"};
  }

  std::size_t dimensions = k_default_dimensions;
  if (const json::value* d = root->if_contains("dimensions")) {
    std::int64_t requested = d->is_int64() ? d->get_int64() : d->is_uint64() ? static_cast<std::int64_t>(d->get_uint64()) : 0;
    if (requested < 1 || requested > static_cast<std::int64_t>(k_max_dimensions))
      return BadRequest{"'dimensions' must be an integer in 1.." + std::to_string(k_max_dimensions)};
    dimensions = static_cast<std::size_t>(requested);
  }
  std::string model = "text-embedding-test";
  if (const json::value* m = root->if_contains("model"); m && m->is_string()) model = std::string(m->get_string());

  json::array data;
  std::size_t input_bytes = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    input_bytes += inputs[i].size();
    json::array embedding;
    for (double x : embed_text(inputs[i], dimensions)) embedding.push_back(x);
    data.push_back(json::object{{"object", "embedding"}, {"index", i}, {"embedding", std::move(embedding)}});
  }
  std::int64_t tokens = estimate_tokens(input_bytes);
  json::object reply{{"object", "list"},
                     {"data", std::move(data)},
                     {"model", model},
                     {"usage", json::object{{"prompt_tokens", tokens}, {"total_tokens", tokens}}}};
  // BadRequest is constructible from a string too, so name the alternative.
  return {boost::system::in_place_value, json::serialize(reply)};
}

std::string error_body(std::string_view message, std::string_view type, std::string_view code) {
  json::object error{{"message", message}, {"type", type}, {"param", nullptr}};
  if (code.empty()) error["code"] = nullptr;
  else error["code"] = code;
  return json::serialize(json::object{{"error", std::move(error)}});
}

}  // namespace dagent::test_server
