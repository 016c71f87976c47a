#include "serve/bearer_auth.hpp"

#include <cctype>

#include "net/sha256.hpp"

namespace dagent::serve {

namespace {

bool equal_constant_time(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;  // digests: always the same size
  volatile unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff = diff | (static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  return diff == 0;
}

bool starts_with_no_case(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  return true;
}

}  // namespace

BearerAuth::BearerAuth(std::string token) {
  if (!token.empty()) token_digest_ = net::sha256_hex(token);
}

bool BearerAuth::allows(std::string_view authorization) const {
  if (!required()) return true;
  constexpr std::string_view k_scheme = "bearer ";
  if (!starts_with_no_case(authorization, k_scheme)) return false;
  std::string_view token = authorization.substr(k_scheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  if (token.empty()) return false;
  return equal_constant_time(net::sha256_hex(token), token_digest_);
}

}  // namespace dagent::serve
