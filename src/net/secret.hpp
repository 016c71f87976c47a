#pragma once
// Where the API key may go, and where it may come from.

#include <optional>
#include <string>
#include <string_view>

namespace dagent::net {

struct BaseUrl;

/// True for a host that never leaves the machine: `localhost` (exactly, any case), an IPv4
/// address in 127.0.0.0/8, `::1`, or an IPv4-mapped 127.x address (`::ffff:127.0.0.1`). Names
/// that merely start like one (`localhost.evil.com`, `127.0.0.1.nip.io`) are not: DNS decides
/// where they go.
bool is_loopback_host(std::string_view host) noexcept;

/// Why `url` must not carry the API key: plain http to a host that is not loopback. Empty when
/// the URL is fine.
std::optional<std::string> plain_http_problem(const BaseUrl& url);

/// The environment variable that lists further names llm.api_key_env may take (comma-separated).
inline constexpr std::string_view k_allowed_key_envs = "DAGENT_ALLOWED_KEY_ENVS";

/// Why `name` may not be read as the API key: it must end in `_API_KEY` or `_APIKEY`, be exactly
/// `API_KEY`, or be listed in DAGENT_ALLOWED_KEY_ENVS. Empty when it may.
std::optional<std::string> api_key_env_problem(std::string_view name);

}  // namespace dagent::net
