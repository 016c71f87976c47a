// Issue 13: llm.base_url and llm.api_key_env are checked when the config is loaded (a file, a
// recorded config, --set): no plain http to a host that is not loopback, and the key is read only
// from a variable whose name looks like an API key's or that the user allowed.

#include <cstdlib>
#include <string>

#include <catch2/catch.hpp>

#include "config/loader.hpp"

using dagent::config::Config;
using dagent::config::load_string;

namespace {

std::string problems_of(const std::string& yaml) {
  auto r = load_string(yaml, "config.yaml", ".");
  return r ? std::string() : r.error().to_string();
}

}  // namespace

TEST_CASE("llm.base_url: plain http only to loopback hosts, named with file and line", "[config][secrets]") {
  for (const char* url : {"http://127.0.0.1:8080/v1", "http://localhost:1234/v1", "http://[::1]:9/v1",
                          "http://127.9.9.9/v1", "http://[::ffff:127.0.0.1]:80/v1", "https://api.openai.com/v1",
                          "https://evil.example/v1"}) {
    INFO(url);
    CHECK(problems_of(std::string("llm:\n  model: m\n  base_url: ") + url + "\n").empty());
  }
  for (const char* url : {"http://api.openai.com/v1", "http://localhost.evil.com/v1", "http://10.0.0.1/v1",
                          "http://[::ffff:10.0.0.1]/v1", "http://0.0.0.0:8080/v1"}) {
    INFO(url);
    CHECK_THAT(problems_of(std::string("llm:\n  model: m\n  base_url: ") + url + "\n"),
               Catch::StartsWith("config.yaml:3: llm.base_url: http:// sends the API key in clear text to ") &&
                   Catch::Contains("use https:// (plain http is allowed only for loopback hosts"));
  }
  CHECK_THAT(problems_of("llm:\n  base_url: http://127.0.0.1.nip.io/v1\n"),
             Catch::StartsWith("config.yaml:2: llm.base_url: invalid base URL") &&
                 Catch::Contains("the host is not a valid name or address"));
  CHECK_THAT(problems_of("llm:\n  base_url: ftp://example.com/v1\n"),
             Catch::StartsWith("config.yaml:2: llm.base_url: invalid base URL"));
}

TEST_CASE("an llm.base_url given with --set is checked the same way and leaves the config unchanged", "[config][secrets]") {
  Config cfg;
  auto problems = dagent::config::apply_override(cfg, "llm.base_url=http://evil.example/v1");
  REQUIRE(problems.size() == 1);
  CHECK_THAT(problems[0].to_string(),
             Catch::StartsWith("--set: llm.base_url: http:// sends the API key in clear text to evil.example; use https://"));
  CHECK(cfg.llm.base_url == "https://api.openai.com/v1");
  CHECK(dagent::config::apply_override(cfg, "llm.base_url=http://localhost:9/v1").empty());
  CHECK(cfg.llm.base_url == "http://localhost:9/v1");
}

TEST_CASE("llm.api_key_env must look like an API key variable or be allowed by the user", "[config][secrets]") {
  ::unsetenv("DAGENT_ALLOWED_KEY_ENVS");
  CHECK(problems_of("llm:\n  api_key_env: MISTRAL_API_KEY\n").empty());
  CHECK(problems_of("llm:\n  api_key_env: API_KEY\n").empty());
  const std::string refused = problems_of("llm:\n  model: m\n  api_key_env: GITHUB_TOKEN\n");
  CHECK_THAT(refused, Catch::StartsWith("config.yaml:3: llm.api_key_env: 'GITHUB_TOKEN' does not look like an API key "
                                        "variable: the name must end in _API_KEY or _APIKEY (or be API_KEY), or be "
                                        "listed in the environment variable DAGENT_ALLOWED_KEY_ENVS"));
  Config cfg;
  auto problems = dagent::config::apply_override(cfg, "llm.api_key_env=AWS_SECRET_ACCESS_KEY");
  REQUIRE(problems.size() == 1);
  CHECK_THAT(problems[0].to_string(), Catch::StartsWith("--set: llm.api_key_env: 'AWS_SECRET_ACCESS_KEY'"));
  CHECK(cfg.llm.api_key_env == "OPENAI_API_KEY");

  ::setenv("DAGENT_ALLOWED_KEY_ENVS", "CORP_LLM_TOKEN,GITHUB_TOKEN", 1);
  CHECK(problems_of("llm:\n  api_key_env: GITHUB_TOKEN\n").empty());
  CHECK(dagent::config::apply_override(cfg, "llm.api_key_env=CORP_LLM_TOKEN").empty());
  ::unsetenv("DAGENT_ALLOWED_KEY_ENVS");
}

TEST_CASE("the exfiltration chain of issue 13 fails at load with both settings named", "[config][secrets]") {
  ::unsetenv("DAGENT_ALLOWED_KEY_ENVS");
  const std::string problems =
      problems_of("llm:\n  base_url: http://collector.evil.example/v1\n  api_key_env: GITHUB_TOKEN\n");
  CHECK_THAT(problems, Catch::Contains("config.yaml:2: llm.base_url: http:// sends the API key in clear text") &&
                           Catch::Contains("config.yaml:3: llm.api_key_env: 'GITHUB_TOKEN'"));
  // Over https the host is the user's business, but the variable still is not an API key's.
  CHECK_THAT(problems_of("llm:\n  base_url: https://collector.evil.example/v1\n  api_key_env: GITHUB_TOKEN\n"),
             Catch::StartsWith("config.yaml:3: llm.api_key_env: 'GITHUB_TOKEN'"));
}
