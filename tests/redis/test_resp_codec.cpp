#include "redis/resp_codec.hpp"

#include <string>

#include <catch2/catch.hpp>

using dagent::redis::Reply;
using dagent::redis::RespCodec;

TEST_CASE("RespCodec formats commands as arrays of bulk strings, binary-safe") {
  std::string out;
  RespCodec::format({"SET", "k", std::string("a\r\n\0b", 5)}, out);
  CHECK(out == std::string("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\r\n\0b\r\n", 31));
  RespCodec::format({"PING"}, out);
  CHECK(out.ends_with("*1\r\n$4\r\nPING\r\n"));
}

TEST_CASE("RespCodec parses every reply type fed byte by byte") {
  const std::string bytes = "+OK\r\n-ERR wrong\r\n:-42\r\n$-1\r\n$5\r\nhe\r\nl\r\n*2\r\n:1\r\n*1\r\n$0\r\n\r\n";
  RespCodec codec;
  std::vector<Reply> replies;
  for (char c : bytes) {
    codec.feed(std::string_view(&c, 1));
    for (;;) {
      auto next = codec.next();
      REQUIRE(next.has_value());
      if (!*next) break;
      replies.push_back(std::move(**next));
    }
  }
  REQUIRE(replies.size() == 6);
  CHECK(replies[0].type == Reply::Type::status);
  CHECK(replies[0].str == "OK");
  CHECK(replies[1].is_error());
  CHECK(replies[1].str == "ERR wrong");
  CHECK(replies[2].type == Reply::Type::integer);
  CHECK(replies[2].integer == -42);
  CHECK(replies[3].type == Reply::Type::nil);
  CHECK(replies[4].type == Reply::Type::string);
  CHECK(replies[4].str == "he\r\nl");
  REQUIRE(replies[5].type == Reply::Type::array);
  REQUIRE(replies[5].elements.size() == 2);
  CHECK(replies[5].elements[0].integer == 1);
  REQUIRE(replies[5].elements[1].elements.size() == 1);
  CHECK(replies[5].elements[1].elements[0].str.empty());
}

TEST_CASE("RespCodec refuses bytes that are not RESP") {
  RespCodec codec;
  codec.feed("HTTP/1.1 400 Bad Request\r\n");
  auto next = codec.next();
  REQUIRE_FALSE(next.has_value());
  CHECK(next.error().find("invalid RESP") != std::string::npos);
}
