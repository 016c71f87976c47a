#include "net/tls_context.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <optional>
#include <string>

#include "support/process.hpp"

namespace {

// Sets an environment variable for one scope.
struct ScopedEnv {
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("TlsContext loads CA certificates and refuses an empty trust store", "[net]") {
  dagent::test::TempDir dir;
  SECTION("an empty system bundle and no extra CA is a startup error") {
    auto empty = dir.write("empty.pem", "");
    ScopedEnv env("SSL_CERT_FILE", empty.string());
    auto tls = dagent::net::TlsContext::create("");
    REQUIRE_FALSE(tls.has_value());
    CHECK_THAT(tls.error(), Catch::Contains("no trusted CA certificates"));
  }
  SECTION("an unreadable extra CA file is named in the error") {
    auto tls = dagent::net::TlsContext::create((dir.path() / "missing.pem").string());
    REQUIRE_FALSE(tls.has_value());
    CHECK_THAT(tls.error(), Catch::Contains("missing.pem"));
  }
}
