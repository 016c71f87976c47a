#pragma once
// SHA-256 (OpenSSL) as lower-case hex: content hashes of ingested files, request fingerprints
// and the config digest of recordings.

#include <string>
#include <string_view>

namespace dagent::net {

/// The 64 hex digits of SHA-256(`bytes`).
std::string sha256_hex(std::string_view bytes);

}  // namespace dagent::net
