// The serve.* keys: shipped defaults, ranges, and their absence from the effective config.

#include <catch2/catch.hpp>

#include <filesystem>

#include "config/loader.hpp"

namespace {

using dagent::config::Config;
using dagent::config::load_string;

}  // namespace

TEST_CASE("serve keys of the shipped config.yaml are the defaults", "[serve]") {
  const auto shipped = dagent::config::load_file(std::filesystem::path(DAGENT_SOURCE_DIR) / "config.yaml");
  REQUIRE(shipped.has_value());
  const auto& s = shipped->serve;
  const dagent::config::ServeConfig d;
  CHECK(s.listen == d.listen);
  CHECK(s.listen == "127.0.0.1:8080");
  CHECK(s.token_env == d.token_env);
  CHECK(s.max_concurrent_runs == d.max_concurrent_runs);
  CHECK(s.max_queued_runs == d.max_queued_runs);
  CHECK(s.max_body_bytes == d.max_body_bytes);
  CHECK(s.drain_ms == d.drain_ms);
  CHECK(s.max_connections == d.max_connections);
  CHECK(s.idle_timeout_ms == d.idle_timeout_ms);
  CHECK(s.max_event_clients == d.max_event_clients);
  CHECK(s.runs_kept == d.runs_kept);
  CHECK(s.event_bytes == d.event_bytes);
  CHECK_FALSE(dagent::config::to_json(*shipped).contains("serve"));  // not part of how a run runs
}

TEST_CASE("serve keys are read and checked like every key", "[serve]") {
  auto ok = load_string("serve:\n  listen: 0.0.0.0:9000\n  token_env: MY_TOKEN\n  max_concurrent_runs: 16\n  drain_ms: 0\n",
                        "config.yaml", ".");
  REQUIRE(ok.has_value());
  CHECK(ok->serve.listen == "0.0.0.0:9000");
  CHECK(ok->serve.token_env == "MY_TOKEN");
  CHECK(ok->serve.max_concurrent_runs == 16);
  CHECK(ok->serve.drain_ms == 0);
  auto bad = load_string("serve:\n  max_concurrent_runs: 0\n  max_body_bytes: 10\n  lisen: x\n", "config.yaml", ".");
  REQUIRE_FALSE(bad.has_value());
  const auto text = bad.error().to_string();
  CHECK_THAT(text, Catch::Contains("serve.max_concurrent_runs"));
  CHECK_THAT(text, Catch::Contains("serve.max_body_bytes"));
  CHECK_THAT(text, Catch::Contains("lisen"));
  Config cfg;
  CHECK(dagent::config::apply_override(cfg, "serve.max_queued_runs=7").empty());
  CHECK(cfg.serve.max_queued_runs == 7);
}
