#pragma once
// What the benchmarks that talk to Redis share: their --redis option read into RedisOptions.

#include <cstdio>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "net_bench_common.hpp"
#include "redis/redis_client.hpp"

namespace dagent::bench {

/// The options of `--redis URL`; nullopt (after printing `usage` and what was wrong) when the URL
/// is missing or refused.
inline std::optional<redis::RedisOptions> redis_options(const Args& args, const char* usage) {
  config::RedisConfig cfg;
  cfg.url = args.str("redis", "");
  auto options = redis::RedisOptions::from(cfg, ".");
  if (cfg.url.empty() || !options) {
    std::fprintf(stderr, "usage: %s%s%s\n", usage, options ? "" : ": ", options ? "" : options.error().message.c_str());
    return std::nullopt;
  }
  return std::move(*options);
}

}  // namespace dagent::bench
