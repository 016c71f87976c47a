#include "serve/listen_address.hpp"

#include <catch2/catch.hpp>

using dagent::serve::ListenAddress;
using dagent::serve::parse_listen_address;

TEST_CASE("parse_listen_address reads HOST:PORT and knows loopback", "[serve]") {
  auto a = std::get<ListenAddress>(parse_listen_address("127.0.0.1:8080"));
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 8080);
  CHECK(a.loopback);
  auto local = std::get<ListenAddress>(parse_listen_address("localhost:0"));
  CHECK(local.host == "127.0.0.1");
  CHECK(local.port == 0);
  auto v6 = std::get<ListenAddress>(parse_listen_address("[::1]:9000"));
  CHECK(v6.loopback);
  auto any = std::get<ListenAddress>(parse_listen_address("0.0.0.0:8080"));
  CHECK_FALSE(any.loopback);
  CHECK_FALSE(std::get<ListenAddress>(parse_listen_address("[::]:8080")).loopback);
}

TEST_CASE("parse_listen_address refuses what is not HOST:PORT", "[serve]") {
  for (const char* bad : {"8080", ":8080", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:80x", "example.com:80", "1.2.3:80"}) {
    INFO(bad);
    CHECK(std::holds_alternative<std::string>(parse_listen_address(bad)));
  }
}
