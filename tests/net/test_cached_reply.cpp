#include "net/cached_reply.hpp"

#include <zlib.h>

#include <string>

#include <catch2/catch.hpp>

namespace {

using namespace dagent::net;

ChatResponse chat_reply(std::string content) {
  ChatResponse r;
  r.id = "chatcmpl-1";
  r.model = "gpt-test";
  r.content = std::move(content);
  r.finish_reason = "stop";
  r.usage = {12, 34};
  return r;
}

EmbedResponse embed_reply() {
  EmbedResponse r;
  r.dimension = 3;
  r.vectors = {0.1f, -2.5f, 3.0e-8f, 1.0f / 3.0f, 1e30f, -0.0f};
  r.usage = {7, 0};
  return r;
}

// A zlib value by hand: header, a stated size, and whatever stream is given.
std::string zlib_value(std::uint32_t stated, const std::string& stream) {
  std::string out{static_cast<char>(k_reply_format), 1};
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((stated >> shift) & 0xff));
  return out + stream;
}

std::string deflated(const std::string& plain) {
  uLongf size = compressBound(static_cast<uLong>(plain.size()));
  std::string out(size, '\0');
  REQUIRE(compress2(reinterpret_cast<Bytef*>(out.data()), &size, reinterpret_cast<const Bytef*>(plain.data()),
                    static_cast<uLong>(plain.size()), Z_BEST_COMPRESSION) == Z_OK);
  out.resize(size);
  return out;
}

const std::string k_key = "ab12";

}  // namespace

TEST_CASE("a cached chat reply round-trips, small as JSON and large compressed", "[net][cache]") {
  const auto small = chat_reply("hello, wörld");
  const std::string bytes = encode_reply(small, k_key);
  REQUIRE(bytes.size() > 2);
  CHECK(bytes[0] == static_cast<char>(k_reply_format));
  CHECK(bytes[1] == 0);  // not compressed
  auto back = decode_reply(bytes, k_key, ReplyKind::chat);
  REQUIRE(back.has_value());
  const auto& chat = std::get<ChatResponse>(*back);
  CHECK(chat.id == small.id);
  CHECK(chat.model == small.model);
  CHECK(chat.content == small.content);
  CHECK(chat.finish_reason == small.finish_reason);
  CHECK(chat.usage.prompt_tokens == 12);
  CHECK(chat.usage.completion_tokens == 34);

  const auto large = chat_reply(std::string(20000, 'x') + " the end");
  const std::string packed = encode_reply(large, k_key);
  CHECK(packed[1] == 1);  // compressed
  CHECK(packed.size() < 1000);
  auto unpacked = decode_reply(packed, k_key, ReplyKind::chat);
  REQUIRE(unpacked.has_value());
  CHECK(std::get<ChatResponse>(*unpacked).content == large.content);
}

TEST_CASE("a cached embedding round-trips with every float exact", "[net][cache]") {
  const auto reply = embed_reply();
  for (std::size_t threshold : {k_compress_above, std::size_t{0}}) {
    auto back = decode_reply(encode_reply(reply, k_key, threshold), k_key, ReplyKind::embed);
    REQUIRE(back.has_value());
    const auto& e = std::get<EmbedResponse>(*back);
    CHECK(e.dimension == 3);
    CHECK(e.vectors == reply.vectors);
    CHECK(e.usage.prompt_tokens == 7);
  }
  EmbedResponse nan = reply;
  nan.vectors[0] = std::numeric_limits<float>::quiet_NaN();
  CHECK(encode_reply(nan, k_key).empty());  // not storable, never stored
}

TEST_CASE("a cached value of another kind, key or version is refused", "[net][cache]") {
  const std::string chat = encode_reply(chat_reply("hi"), k_key);
  const std::string embed = encode_reply(embed_reply(), k_key);
  CHECK_THAT(decode_reply(embed, k_key, ReplyKind::chat).error(), Catch::Contains("not a chat reply"));
  CHECK_THAT(decode_reply(chat, k_key, ReplyKind::embed).error(), Catch::Contains("not an embedding"));
  CHECK_THAT(decode_reply(chat, "cd34", ReplyKind::chat).error(), Catch::Contains("another key"));
  std::string future = chat;
  future[0] = 2;
  CHECK_THAT(decode_reply(future, k_key, ReplyKind::chat).error(), Catch::Contains("format 2, not 1"));
  std::string odd = chat;
  odd[1] = 7;
  CHECK_THAT(decode_reply(odd, k_key, ReplyKind::chat).error(), Catch::Contains("unknown encoding 7"));
}

TEST_CASE("a corrupt or truncated cached value is refused, never a crash", "[net][cache]") {
  const std::string chat = encode_reply(chat_reply("hello"), k_key);
  const std::string packed = encode_reply(chat_reply(std::string(5000, 'y')), k_key);
  // Every prefix of both: truncated values.
  for (const auto* value : {&chat, &packed})
    for (std::size_t n = 0; n < value->size(); ++n) CHECK_FALSE(decode_reply(value->substr(0, n), k_key, ReplyKind::chat).has_value());
  // Every byte of the compressed one flipped: refused, or (a flip that zlib cannot see, e.g. in
  // a literal) still a chat reply.
  for (std::size_t i = 0; i < packed.size(); ++i) {
    std::string bad = packed;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    auto r = decode_reply(bad, k_key, ReplyKind::chat);
    if (r) CHECK(std::holds_alternative<ChatResponse>(*r));
  }
  CHECK_THAT(decode_reply(std::string{1, 0} + "{not json", k_key, ReplyKind::chat).error(), Catch::Contains("not valid JSON"));
  CHECK_THAT(decode_reply(std::string{1, 0} + "[1,2]", k_key, ReplyKind::chat).error(), Catch::Contains("not a JSON object"));
  CHECK_THAT(decode_reply(std::string{1, 0} + R"({"kind":"chat","key":"ab12","id":1})", k_key, ReplyKind::chat).error(),
             Catch::Contains("missing or of the wrong type"));
  CHECK_THAT(decode_reply(std::string{1, 0} + "{\"kind\":\"chat\",\"key\":\"ab12\",\"content\":\"\xff\"}", k_key,
                          ReplyKind::chat)
                 .error(),
             Catch::Contains("not valid JSON"));  // not UTF-8
  CHECK_THAT(decode_reply(std::string{1, 0} +
                              R"({"kind":"embed","key":"ab12","dimension":2,"vectors":[1,2,3],"usage":[0,0]})",
                          k_key, ReplyKind::embed)
                 .error(),
             Catch::Contains("whole vectors"));
  CHECK_THAT(decode_reply(std::string{1, 0} +
                              R"({"kind":"embed","key":"ab12","dimension":1,"vectors":[1e300],"usage":[0,0]})",
                          k_key, ReplyKind::embed)
                 .error(),
             Catch::Contains("out of range"));
}

TEST_CASE("a compressed cached value cannot inflate past its stated size or the bound", "[net][cache]") {
  // A bomb: 64 MiB of zeros deflate to about 64 KiB.
  const std::string zeros(64u << 20, '\0');
  const std::string bomb = deflated(zeros);
  CHECK_THAT(decode_reply(zlib_value(static_cast<std::uint32_t>(zeros.size()), bomb), k_key, ReplyKind::chat).error(),
             Catch::Contains("more than a reply can be"));
  // The same stream claiming to be small: inflating stops at the stated size.
  CHECK_THAT(decode_reply(zlib_value(1000, bomb), k_key, ReplyKind::chat).error(),
             Catch::Contains("corrupt or not of its stated size"));
  // A body shorter than stated, and trailing bytes after the stream.
  const std::string body = R"({"kind":"chat","key":"ab12","id":"","model":"","content":"ok","finish_reason":"","usage":[0,0]})";
  CHECK(decode_reply(zlib_value(static_cast<std::uint32_t>(body.size()), deflated(body)), k_key, ReplyKind::chat).has_value());
  CHECK_FALSE(decode_reply(zlib_value(static_cast<std::uint32_t>(body.size() + 1), deflated(body)), k_key, ReplyKind::chat).has_value());
  CHECK_FALSE(decode_reply(zlib_value(static_cast<std::uint32_t>(body.size()), deflated(body) + "x"), k_key, ReplyKind::chat).has_value());
}
