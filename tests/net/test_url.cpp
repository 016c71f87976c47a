#include "net/url.hpp"

#include <catch2/catch.hpp>

using dagent::net::parse_base_url;

TEST_CASE("parse_base_url splits origin and path prefix", "[net]") {
  SECTION("https with the default port") {
    auto u = parse_base_url("https://api.openai.com/v1/");
    REQUIRE(u.has_value());
    CHECK(u->origin.tls);
    CHECK(u->origin.host == "api.openai.com");
    CHECK(u->origin.port == "443");
    CHECK(u->path == "/v1");
    CHECK(u->target("/chat/completions") == "/v1/chat/completions");
    CHECK(u->origin.key() == "https://api.openai.com:443");
  }
  SECTION("http with a port and no path") {
    auto u = parse_base_url("http://127.0.0.1:8080");
    REQUIRE(u.has_value());
    CHECK_FALSE(u->origin.tls);
    CHECK(u->origin.port == "8080");
    CHECK(u->path.empty());
    CHECK(u->target("/embeddings") == "/embeddings");
  }
  SECTION("an IPv6 literal") {
    auto u = parse_base_url("https://[::1]:9443/v1");
    REQUIRE(u.has_value());
    CHECK(u->origin.host == "::1");
  }
  SECTION("refused") {
    for (auto bad : {"ftp://x/v1", "not a url", "https:///v1", "https://host/v1?x=1", "https://user:pw@host/v1"}) {
      INFO(bad);
      auto u = parse_base_url(bad);
      REQUIRE_FALSE(u.has_value());
      CHECK_THAT(u.error(), Catch::Contains("URL"));
    }
  }
}

TEST_CASE("base URL ports are parsed loosely: :84386 wrapped to another port, :18850x was accepted", "[net]") {
  for (auto bad : {"http://127.0.0.1:84386/v1", "http://127.0.0.1:65536/v1", "http://127.0.0.1:0/v1",
                   "http://127.0.0.1:18850x/v1", "http://127.0.0.1:-80/v1", "http://127.0.0.1:+80/v1",
                   "http://127.0.0.1:/v1", "https://host:000000443/v1"}) {
    INFO(bad);
    auto u = parse_base_url(bad);
    REQUIRE_FALSE(u.has_value());
    CHECK_THAT(u.error(), Catch::Contains("URL"));
  }
  for (auto [good, port] : {std::pair{"http://127.0.0.1:1/v1", "1"}, std::pair{"http://127.0.0.1:65535/v1", "65535"},
                            std::pair{"https://[::1]:08443/v1", "8443"}}) {
    INFO(good);
    auto u = parse_base_url(good);
    REQUIRE(u.has_value());
    CHECK(u->origin.port == port);
  }
}
