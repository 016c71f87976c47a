#include "net/cached_reply.hpp"

#include <zlib.h>

#include <cmath>
#include <limits>
#include <optional>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "text/json_utf8.hpp"

namespace dagent::net {

namespace json = boost::json;

namespace {

constexpr std::uint8_t k_plain = 0;
constexpr std::uint8_t k_zlib = 1;
constexpr std::size_t k_header = 2;
constexpr std::size_t k_size_field = 4;

std::string_view kind_name(ReplyKind kind) { return kind == ReplyKind::chat ? "chat" : "embed"; }

json::array usage_json(const Usage& u) { return json::array{u.prompt_tokens, u.completion_tokens}; }

json::object body_of(const ChatResponse& r) {
  return json::object{{"id", r.id}, {"model", r.model}, {"content", r.content}, {"finish_reason", r.finish_reason},
                      {"usage", usage_json(r.usage)}};
}

std::optional<json::object> body_of(const EmbedResponse& r) {
  json::array vectors;
  vectors.reserve(r.vectors.size());
  for (float f : r.vectors) {
    if (!std::isfinite(f)) return std::nullopt;
    vectors.emplace_back(static_cast<double>(f));
  }
  return json::object{{"dimension", r.dimension}, {"vectors", std::move(vectors)}, {"usage", usage_json(r.usage)}};
}

void put_size(std::string& out, std::uint32_t n) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
}

std::uint32_t get_size(std::string_view bytes) {
  std::uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  return n;
}

// `plain` deflated after the header; "" if zlib fails (it does not, short of memory).
std::string compressed(std::string_view plain) {
  uLongf bound = compressBound(static_cast<uLong>(plain.size()));
  std::string out{static_cast<char>(k_reply_format), static_cast<char>(k_zlib)};
  put_size(out, static_cast<std::uint32_t>(plain.size()));
  out.resize(k_header + k_size_field + bound);
  auto* dest = reinterpret_cast<Bytef*>(out.data() + k_header + k_size_field);
  if (compress2(dest, &bound, reinterpret_cast<const Bytef*>(plain.data()), static_cast<uLong>(plain.size()),
                Z_DEFAULT_COMPRESSION) != Z_OK)
    return {};
  out.resize(k_header + k_size_field + bound);
  return out;
}

// Inflates `stream` into exactly `size` bytes; none when it does not. Why exactly: the size is checked against
// k_max_reply_body before anything is allocated, and a stream that would inflate past it (a
// bomb) or end short of it is refused, so no value costs more than that bound to read.
std::optional<std::string> inflated(std::string_view stream, std::size_t size) {
  std::string out(size, '\0');
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return std::nullopt;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(stream.data()));
  z.avail_in = static_cast<uInt>(stream.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_FINISH);  // output full before the stream ends: not Z_STREAM_END
  const bool whole = rc == Z_STREAM_END && z.total_out == size && z.avail_in == 0;
  inflateEnd(&z);
  if (!whole) return std::nullopt;
  return out;
}

const json::string* string_field(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  return v ? v->if_string() : nullptr;
}

const json::array* array_field(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  return v ? v->if_array() : nullptr;
}

bool read_count(const json::value& v, std::int64_t& out) {
  if (const auto* i = v.if_int64(); i && *i >= 0) return out = *i, true;
  if (const auto* u = v.if_uint64(); u && *u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    return out = static_cast<std::int64_t>(*u), true;
  return false;
}

bool read_usage(const json::object& o, Usage& usage) {
  const auto* a = array_field(o, "usage");
  return a && a->size() == 2 && read_count((*a)[0], usage.prompt_tokens) && read_count((*a)[1], usage.completion_tokens);
}

boost::system::result<CachedReply, std::string> chat_of(const json::object& o) {
  ChatResponse r;
  const auto* id = string_field(o, "id");
  const auto* model = string_field(o, "model");
  const auto* content = string_field(o, "content");
  const auto* finish = string_field(o, "finish_reason");
  if (!id || !model || !content || !finish || !read_usage(o, r.usage))
    return std::string("a chat reply's field is missing or of the wrong type");
  r.id = *id;
  r.model = *model;
  r.content = *content;
  r.finish_reason = *finish;
  return CachedReply(std::move(r));
}

boost::system::result<CachedReply, std::string> embed_of(const json::object& o) {
  EmbedResponse r;
  std::int64_t dimension = 0;
  const auto* dim = o.if_contains("dimension");
  const auto* vectors = array_field(o, "vectors");
  if (!dim || !read_count(*dim, dimension) || !vectors || !read_usage(o, r.usage))
    return std::string("an embedding's field is missing or of the wrong type");
  if (dimension == 0 ? !vectors->empty() : vectors->size() % static_cast<std::size_t>(dimension) != 0)
    return std::string("an embedding's values do not fill whole vectors");
  r.dimension = static_cast<std::size_t>(dimension);
  r.vectors.reserve(vectors->size());
  constexpr double k_float_max = std::numeric_limits<float>::max();
  for (const auto& v : *vectors) {
    if (!v.is_number()) return std::string("an embedding value is not a number");
    const double d = v.to_number<double>();
    if (!std::isfinite(d) || std::fabs(d) > k_float_max) return std::string("an embedding value is out of range");
    r.vectors.push_back(static_cast<float>(d));
  }
  return CachedReply(std::move(r));
}

}  // namespace

ReplyKind kind_of(const CachedReply& reply) noexcept {
  return std::holds_alternative<ChatResponse>(reply) ? ReplyKind::chat : ReplyKind::embed;
}

std::string encode_reply(const CachedReply& reply, std::string_view key, std::size_t compress_above) {
  std::optional<json::object> body =
      std::visit([](const auto& r) -> std::optional<json::object> { return body_of(r); }, reply);
  if (!body) return {};
  body->emplace("kind", kind_name(kind_of(reply)));
  body->emplace("key", key);
  const std::string plain = text::serialize_valid(*body);
  if (plain.size() > k_max_reply_body) return {};
  if (plain.size() > compress_above) return compressed(plain);
  std::string out;
  out.reserve(k_header + plain.size());
  out.push_back(static_cast<char>(k_reply_format));
  out.push_back(static_cast<char>(k_plain));
  return out + plain;
}

boost::system::result<CachedReply, std::string> decode_reply(std::string_view bytes, std::string_view key, ReplyKind kind) {
  if (bytes.size() < k_header) return std::string("the value is truncated");
  if (static_cast<std::uint8_t>(bytes[0]) != k_reply_format)
    return "the value has format " + std::to_string(static_cast<unsigned char>(bytes[0])) + ", not " +
           std::to_string(k_reply_format);
  std::string storage;
  std::string_view plain;
  const auto encoding = static_cast<std::uint8_t>(bytes[1]);
  if (encoding == k_plain) {
    plain = bytes.substr(k_header);
    if (plain.size() > k_max_reply_body) return std::string("the value is larger than a reply can be");
  } else if (encoding == k_zlib) {
    if (bytes.size() < k_header + k_size_field) return std::string("the value is truncated");
    const std::size_t size = get_size(bytes.substr(k_header));
    if (size > k_max_reply_body) return "the value would inflate to " + std::to_string(size) + " bytes, more than a reply can be";
    auto body = inflated(bytes.substr(k_header + k_size_field), size);
    if (!body) return std::string("the compressed body is corrupt or not of its stated size");
    storage = std::move(*body);
    plain = storage;
  } else {
    return "the value has an unknown encoding " + std::to_string(encoding);
  }
  boost::system::error_code ec;
  json::value parsed = json::parse(plain, ec);  // rejects text that is not UTF-8
  if (ec) return "the value is not valid JSON: " + ec.message();
  const auto* o = parsed.if_object();
  if (!o) return std::string("the value is not a JSON object");
  const auto* stored_kind = string_field(*o, "kind");
  if (!stored_kind || *stored_kind != kind_name(kind))
    return std::string("the value is not ") + (kind == ReplyKind::chat ? "a chat reply" : "an embedding");
  const auto* stored_key = string_field(*o, "key");
  if (!stored_key || *stored_key != key) return std::string("the value was stored under another key");
  return kind == ReplyKind::chat ? chat_of(*o) : embed_of(*o);
}

}  // namespace dagent::net
