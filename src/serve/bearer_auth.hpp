#pragma once
// The service's bearer token check (serve.token_env).

#include <string>
#include <string_view>

namespace dagent::serve {

/// Checks `Authorization: Bearer TOKEN` headers against one token, in constant time. Without a
/// token every request is allowed.
class BearerAuth {
 public:
  BearerAuth() = default;
  /// `token` empty: no token is asked for.
  explicit BearerAuth(std::string token);

  bool required() const noexcept { return !token_digest_.empty(); }
  /// Whether the value of an Authorization header (empty when absent) carries the token. The
  /// time taken does not depend on how much of the token matched.
  bool allows(std::string_view authorization) const;

 private:
  std::string token_digest_;  // SHA-256: compared digests have the same length whatever was sent
};

}  // namespace dagent::serve
