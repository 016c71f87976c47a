// dagent end to end with the `llm` tool and the LLM judge, over real TLS to the scripted server.

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include "support/process.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace json = boost::json;
using dagent::test::read_text;
using dagent::test::run_process;
using dagent::test::ServerCert;
using dagent::test::TempDir;
using dagent::test::TestCerts;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

constexpr const char* k_sentinel = "sk-SENTINEL-7f3a9c-never-print-me";

// A task: ask the model, have the judge check the reply, write it out.
void write_llm_task(const TempDir& dir) {
  dir.write("task.yaml", R"(workspace: .
plan:
  - {id: 1, action: llm, parameters: {prompt: "Say hello", max_tokens: 20}, verify: "The reply greets the reader"}
  - {id: 2, action: write_file, parameters: {path: reply.txt, content: "$step1.text"}}
)");
}

json::value judge_script(bool passed) {
  return json::parse(std::string(R"({"rules": [{"path": "/v1/chat/completions", "contains": "\"verdict\"",
      "reply": "{\"passed\": )") + (passed ? "true" : "false") + R"(, \"reason\": \"checked by the test judge\"}"}]})");
}

dagent::test::ProcessResult run_dagent(const TempDir& dir, const TestServer& server, std::vector<std::string> args,
                                       bool trust_test_ca = true) {
  args.insert(args.begin(), DAGENT_BINARY);
  if (trust_test_ca) {
    args.push_back("--set");
    args.push_back("llm.ca_file=" + TestCerts::get().ca().string());
  }
  return run_process(args, dir.path(), {"OPENAI_BASE_URL=" + server.base_url(), std::string("OPENAI_API_KEY=") + k_sentinel});
}

}  // namespace

TEST_CASE("an llm step runs over TLS, the judge verifies it, metrics are filled", "[cli][llm]") {
  TestServer server(TestServerOptions{.cert = ServerCert::valid, .script = judge_script(true)});
  TempDir dir;
  write_llm_task(dir);
  auto r = run_dagent(dir, server, {"run", "task.yaml", "--json", "--trace", "trace.json"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(read_text(dir.path() / "reply.txt") == "echo: Say hello");
  auto o = json::parse(r.out).as_object();
  const auto& s1 = o.at("steps").as_array()[0];
  CHECK(s1.at("output").at("text") == "echo: Say hello");
  CHECK(s1.at("verification").at("status") == "passed");
  CHECK(s1.at("verification").at("reason") == "LLM judge: checked by the test judge");
  const auto& m = o.at("metrics");
  CHECK(m.at("llm_calls") == 2);
  CHECK(m.at("prompt_tokens").to_number<int>() > 0);
  CHECK(m.at("completion_tokens").to_number<int>() > 0);
  CHECK(m.at("connections_opened") == 1);
  // The key travelled only in the Authorization header.
  for (const auto* text : {&r.out, &r.err}) CHECK(text->find(k_sentinel) == std::string::npos);
  CHECK(read_text(dir.path() / "trace.json").find(k_sentinel) == std::string::npos);
  CHECK(read_text(dir.path() / "reply.txt").find(k_sentinel) == std::string::npos);
}

TEST_CASE("a failed verdict fails the run, llm_judge off leaves text criteria unchecked", "[cli][llm]") {
  TestServer server(TestServerOptions{.cert = ServerCert::valid, .script = judge_script(false)});
  TempDir dir;
  write_llm_task(dir);
  auto failed = run_dagent(dir, server, {"run", "task.yaml", "--json"});
  CHECK(failed.exit_code == 1);
  auto o = json::parse(failed.out).as_object();
  CHECK(o.at("steps").as_array()[0].at("verification").at("status") == "failed");
  auto off = run_dagent(dir, server, {"run", "task.yaml", "--json", "--set", "verification.llm_judge=false"});
  CHECK(off.exit_code == 0);
  auto v = json::parse(off.out).at("steps").as_array()[0].at("verification");
  CHECK(v.at("status") == "not_requested");
  CHECK_THAT(std::string(v.at("reason").as_string()), Catch::Contains("llm_judge"));
  CHECK(json::parse(off.out).at("metrics").at("llm_calls") == 1);
}

TEST_CASE("an untrusted CA, a wrong host name or an expired certificate ends the run with exit 3", "[cli][llm][tls]") {
  struct Case {
    ServerCert cert;
    bool trust_test_ca;
    const char* why;
  };
  for (const auto& c : {Case{ServerCert::valid, false, "unable to get local issuer certificate"},
                        Case{ServerCert::wrong_host, true, "hostname mismatch"},
                        Case{ServerCert::expired, true, "certificate has expired"}}) {
    DYNAMIC_SECTION(c.why) {
      TestServer server(TestServerOptions{.cert = c.cert});
      TempDir dir;
      write_llm_task(dir);
      auto r = run_dagent(dir, server, {"run", "task.yaml", "--json"}, c.trust_test_ca);
      CHECK(r.exit_code == 3);
      CHECK_THAT(r.err, Catch::Contains("TLS handshake") && Catch::Contains(c.why));
      CHECK(r.out.find(k_sentinel) == std::string::npos);
      CHECK(r.err.find(k_sentinel) == std::string::npos);
      CHECK(server.stats().at("requests").at("total") == 0);  // no insecure fallback
    }
  }
}

TEST_CASE("an API error never echoes the key, and a 401 exits 3", "[cli][llm]") {
  TestServer server(TestServerOptions{.cert = ServerCert::valid, .script = json::parse(R"({"rules": [{"path": "/v1/chat/completions",
      "status": 401, "body": {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
      "code": "invalid_api_key"}}}]})")});
  TempDir dir;
  write_llm_task(dir);
  auto r = run_dagent(dir, server, {"run", "task.yaml", "--json", "--trace", "t.json", "-v"});
  CHECK(r.exit_code == 3);
  CHECK_THAT(r.err, Catch::Contains("Incorrect API key provided"));
  for (const auto* text : {&r.out, &r.err}) CHECK(text->find(k_sentinel) == std::string::npos);
  CHECK(read_text(dir.path() / "t.json").find(k_sentinel) == std::string::npos);
}

TEST_CASE("a remote provider without an API key is refused before anything runs", "[cli][llm]") {
  TempDir dir;
  write_llm_task(dir);
  auto r = run_process({DAGENT_BINARY, "run", "task.yaml"}, dir.path(),
                       {"OPENAI_BASE_URL=https://api.example.invalid/v1", "OPENAI_API_KEY="});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("OPENAI_API_KEY is not set"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "reply.txt"));
}

TEST_CASE("caching.llm_responses answers a repeated prompt from the cache", "[cli][llm][cache]") {
  TestServer server(TestServerOptions{.cert = ServerCert::valid});
  TempDir dir;
  dir.write("twice.yaml", R"(workspace: .
plan:
  - {id: 1, action: llm, parameters: {prompt: "Same question"}}
  - {id: 2, action: llm, parameters: {prompt: "Same question"}, dependencies: [1]}
)");
  auto off = run_dagent(dir, server, {"run", "twice.yaml", "--json"});
  REQUIRE(off.exit_code == 0);
  CHECK(json::parse(off.out).at("metrics").at("cache_hits") == 0);
  CHECK(server.stats().at("requests").at("total") == 2);
  server.reset();
  auto on = run_dagent(dir, server, {"run", "twice.yaml", "--json", "--set", "performance.caching.llm_responses=true"});
  REQUIRE(on.exit_code == 0);
  auto m = json::parse(on.out).at("metrics");
  CHECK(m.at("cache_hits") == 1);
  CHECK(m.at("llm_calls") == 1);
  CHECK(server.stats().at("requests").at("total") == 1);
}

TEST_CASE("the rate-limiting and connection-pooling switches change what reaches the server", "[cli][llm]") {
  // The first reply says no tokens remain this minute: the limiter empties its token bucket, so
  // the second call waits for the part of its estimate the first did not give back to refill
  // (about 100 ms at 3 000 tokens a minute; at 60 000 it was 5 ms, which a loaded machine's
  // gap between the two calls could cover, so no wait was left to see).
  TestServer server(TestServerOptions{.cert = ServerCert::valid, .script = json::parse(R"({"rules": [
      {"path": "/v1/chat/completions", "nth": 1, "headers": {"x-ratelimit-remaining-tokens": "0"}}]})")});
  TempDir dir;
  dir.write("two.yaml", R"(workspace: .
plan:
  - {id: 1, action: llm, parameters: {prompt: "first", max_tokens: 100}}
  - {id: 2, action: llm, parameters: {prompt: "second", max_tokens: 100}, dependencies: [1]}
)");
  auto with = [&](std::vector<std::string> extra) {
    server.reset();
    server.set_script(json::parse(R"({"rules": [{"path": "/v1/chat/completions", "nth": 1,
        "headers": {"x-ratelimit-remaining-tokens": "0"}}]})"));
    std::vector<std::string> args{"run", "two.yaml", "--json", "--set", "performance.rate_limiting.tpm_limit=3000",
                                  "--set", "performance.rate_limiting.safety_margin=1.0"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_dagent(dir, server, args);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out).at("metrics");
  };
  auto limited = with({});
  INFO("waited " << limited.at("rate_limit_wait_ms").to_number<double>() << " ms");
  CHECK(limited.at("rate_limit_wait_ms").to_number<double>() > 0);
  CHECK(limited.at("connections_opened") == 1);
  auto unlimited = with({"--set", "performance.rate_limiting.enabled=false"});
  CHECK(unlimited.at("rate_limit_wait_ms").to_number<double>() == 0);
  auto unpooled = with({"--set", "performance.connection_pooling.enabled=false"});
  CHECK(unpooled.at("connections_opened") == 2);
}
