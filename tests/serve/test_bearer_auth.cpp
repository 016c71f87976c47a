#include "serve/bearer_auth.hpp"

#include <catch2/catch.hpp>

using dagent::serve::BearerAuth;

TEST_CASE("BearerAuth allows only the configured token", "[serve]") {
  const BearerAuth auth("s3cret-token");
  CHECK(auth.required());
  CHECK(auth.allows("Bearer s3cret-token"));
  CHECK(auth.allows("bearer s3cret-token"));
  CHECK(auth.allows("Bearer  s3cret-token "));
  CHECK_FALSE(auth.allows(""));
  CHECK_FALSE(auth.allows("Bearer"));
  CHECK_FALSE(auth.allows("Bearer "));
  CHECK_FALSE(auth.allows("Bearer s3cret-toke"));
  CHECK_FALSE(auth.allows("Bearer s3cret-token2"));
  CHECK_FALSE(auth.allows("Basic s3cret-token"));
  CHECK_FALSE(auth.allows("s3cret-token"));
}

TEST_CASE("BearerAuth without a token allows every request", "[serve]") {
  const BearerAuth open;
  CHECK_FALSE(open.required());
  CHECK(open.allows(""));
  CHECK(open.allows("Bearer anything"));
}
