// Issue 13, "secrets stay home": the masker, the loopback and key-variable rules, and the live
// client against the scripted server: redirects are never followed (a second server listens where
// the redirect points), and a key the server echoes (in errors, replies, deltas split anywhere) is
// masked before the caller sees it.

#include <catch2/catch.hpp>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "net/net_error.hpp"
#include "net/openai_client.hpp"
#include "net/secret.hpp"
#include "net/url.hpp"
#include "support/run_on.hpp"
#include "support/test_server_process.hpp"
#include "text/redact.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace dagent::net;
using dagent::test::run_on;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;
using dagent::text::Redactor;
using dagent::text::StreamRedactor;

constexpr const char* k_key = "sk-test-ABCDEFGH0123456789-XYZ";

bool has_key(std::string_view text) { return text.find(k_key) != std::string_view::npos; }

OpenAiOptions options_for(const TestServer& server) {
  OpenAiOptions o;
  o.base_url = *parse_base_url(server.base_url());
  o.api_key = k_key;
  o.max_retries = 0;
  o.http.connect_timeout = std::chrono::milliseconds(2000);
  o.http.request_timeout = std::chrono::milliseconds(5000);
  o.random01 = [] { return 0.0; };
  return o;
}

ChatRequest hello() {
  ChatRequest r;
  r.model = "gpt-test";
  r.messages.push_back({"user", "hello"});
  r.max_tokens = 50;
  return r;
}

std::int64_t total_requests(const TestServer& server) {
  return server.stats().at("requests").at("total").to_number<std::int64_t>();
}

struct DeltaSink {
  std::vector<std::string>* seen;
  void operator()(std::string_view d) const { seen->emplace_back(d); }
};

std::string joined(const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += p;
  return out;
}

}  // namespace

TEST_CASE("the masker replaces every secret, ignores short ones and walks JSON", "[net][secrets]") {
  Redactor r({k_key, "short", ""});
  REQUIRE(r.secrets().size() == 1);  // "short" is below the minimum
  std::string text = std::string("a ") + k_key + " b " + k_key + k_key + " short";
  CHECK(r.mask(text));
  CHECK(text == "a [redacted API key] b [redacted API key][redacted API key] short");
  std::string clean = "nothing here";
  CHECK_FALSE(r.mask(clean));

  json::value v = json::parse(std::string(R"({"content": "key=)") + k_key + R"(", "list": [1, {"deep": ")" + k_key +
                              R"("}], ")" + k_key + R"(": true})");
  CHECK(r.mask(v));
  const std::string out = json::serialize(v);
  CHECK_FALSE(has_key(out));
  CHECK(v.at("content") == "key=[redacted API key]");
  CHECK(v.at("list").at(1).at("deep") == "[redacted API key]");
  CHECK(v.as_object().contains("[redacted API key]"));
}

TEST_CASE("the stream masker masks a secret split across pieces at any point", "[net][secrets]") {
  auto r = std::make_shared<const Redactor>(std::vector<std::string>{k_key});
  const std::string text = std::string("before ") + k_key + " middle sk-test-ABC not it " + k_key + " end";
  const std::string expected = "before [redacted API key] middle sk-test-ABC not it [redacted API key] end";
  for (std::size_t piece = 1; piece <= text.size(); ++piece) {
    StreamRedactor s(r);
    std::string out;
    for (std::size_t at = 0; at < text.size(); at += piece) out += s.feed(std::string_view(text).substr(at, piece));
    out += s.finish();
    INFO("piece size " << piece);
    REQUIRE(out == expected);
  }
  // Nothing is held back once no secret can start in the tail.
  StreamRedactor s(r);
  CHECK(s.feed("plain word.") == "plain word.");
  CHECK(s.feed(" then sk-t") == " then ");  // "sk-t" may start the key
  CHECK(s.feed("oo") == "sk-too");
  CHECK(s.feed(" s") == " ");
  CHECK(s.finish() == "s");
}

TEST_CASE("only loopback hosts may take plain http", "[net][secrets]") {
  for (const char* host : {"localhost", "LocalHost", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "::ffff:127.0.0.1"}) {
    INFO(host);
    CHECK(is_loopback_host(host));
  }
  for (const char* host : {"localhost.evil.com", "127.0.0.1.nip.io", "localhost.", "10.0.0.1", "::ffff:10.0.0.1",
                           "128.0.0.1", "0.0.0.0", "example.com", "", "::"}) {
    INFO(host);
    CHECK_FALSE(is_loopback_host(host));
  }
  CHECK_FALSE(plain_http_problem(*parse_base_url("http://127.0.0.1:8080/v1")));
  CHECK_FALSE(plain_http_problem(*parse_base_url("http://[::1]:8080/v1")));
  CHECK_FALSE(plain_http_problem(*parse_base_url("https://api.openai.com/v1")));
  auto refused = plain_http_problem(*parse_base_url("http://localhost.evil.com/v1"));
  REQUIRE(refused);
  // Boost.URL 1.81 reads this as the address 127.0.0.1 and the path ".nip.io/v1": refused outright.
  auto nip = parse_base_url("http://127.0.0.1.nip.io/v1");
  REQUIRE_FALSE(nip.has_value());
  CHECK_THAT(nip.error(), Catch::Contains("the host is not a valid name or address"));
  CHECK_THAT(*refused, Catch::Contains("http:// sends the API key in clear text") && Catch::Contains("use https://"));
}

TEST_CASE("the key variable's name must look like an API key or be allowed by the user", "[net][secrets]") {
  ::unsetenv("DAGENT_ALLOWED_KEY_ENVS");
  for (const char* name : {"OPENAI_API_KEY", "API_KEY", "GROQ_APIKEY", "MY_LLM_API_KEY"}) {
    INFO(name);
    CHECK_FALSE(api_key_env_problem(name));
  }
  for (const char* name : {"GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "HOME", "_API_KEY", "OPENAI_API_KEY_FILE", "api_key"}) {
    INFO(name);
    auto p = api_key_env_problem(name);
    REQUIRE(p);
    CHECK_THAT(*p, Catch::Contains(name) && Catch::Contains("_API_KEY") && Catch::Contains("DAGENT_ALLOWED_KEY_ENVS"));
  }
  ::setenv("DAGENT_ALLOWED_KEY_ENVS", "LLM_TOKEN, OTHER_SECRET", 1);
  CHECK_FALSE(api_key_env_problem("LLM_TOKEN"));
  CHECK_FALSE(api_key_env_problem("OTHER_SECRET"));
  CHECK(api_key_env_problem("GITHUB_TOKEN"));
  CHECK(api_key_env_problem("LLM"));
  ::unsetenv("DAGENT_ALLOWED_KEY_ENVS");
}

TEST_CASE("a 307 to another origin is an error naming it, nothing reaches the other origin", "[net][secrets]") {
  TestServer elsewhere;  // records every request it gets
  const std::string target = "http://127.0.0.1:" + std::to_string(elsewhere.port());
  json::object rule{{"status", 307}, {"body", ""}, {"headers", json::object{{"location", target + "/v1/steal?x=1"}}}};
  TestServer server(TestServerOptions{.script = json::object{{"rules", json::array{rule}}}});
  asio::io_context io;
  OpenAiClient client(io.get_executor(), nullptr, options_for(server));
  const std::string ours = parse_base_url(server.base_url())->origin.key();
  const std::string expected = "the server answered HTTP 307 redirecting to " + target +
                               "; redirects are not followed (the API key is sent only to " + ours + ")";

  auto chat = run_on(io, client.chat(hello()));
  REQUIRE_FALSE(chat.has_value());
  CHECK(chat.error().code == NetErrc::protocol_error);
  CHECK(chat.error().message == expected);

  std::vector<std::string> deltas;
  auto streamed = run_on(io, client.chat_stream(hello(), DeltaSink{&deltas}));
  REQUIRE_FALSE(streamed.has_value());
  CHECK(streamed.error().message == expected);

  EmbedRequest embed;
  embed.model = "text-embedding-3-small";
  embed.inputs = {"a"};
  auto embedded = run_on(io, client.embed(embed));
  REQUIRE_FALSE(embedded.has_value());
  CHECK(embedded.error().message == expected);

  CHECK(total_requests(server) == 3);
  CHECK(total_requests(elsewhere) == 0);
  CHECK(elsewhere.stats().at("connections_accepted") == 0);
}

TEST_CASE("a relative redirect is not followed either", "[net][secrets]") {
  json::object rule{{"status", 308}, {"body", ""}, {"headers", json::object{{"location", "/v2/chat/completions"}}}};
  TestServer server(TestServerOptions{.script = json::object{{"rules", json::array{rule}}}});
  asio::io_context io;
  OpenAiClient client(io.get_executor(), nullptr, options_for(server));
  auto r = run_on(io, client.chat(hello()));
  REQUIRE_FALSE(r.has_value());
  CHECK_THAT(r.error().message, Catch::StartsWith("the server answered HTTP 308 redirecting to " +
                                                  parse_base_url(server.base_url())->origin.key() + " (a relative location)"));
  CHECK(total_requests(server) == 1);
}

TEST_CASE("a key the server echoes in an error is masked in every field", "[net][secrets]") {
  for (int status : {400, 401, 403, 500}) {
    DYNAMIC_SECTION("status " << status) {
      const std::string k = k_key;
      json::object error{{"message", "Incorrect API key provided: " + k + ". You can find your API key at ..."},
                         {"type", "invalid_request_error " + k},
                         {"code", "bad_key_" + k}};
      json::object rule{{"status", status}, {"headers", json::object{{"x-should-retry", "false"}}},
                        {"body", json::object{{"error", error}}}};
      TestServer server(TestServerOptions{.script = json::object{{"rules", json::array{rule}}}});
      asio::io_context io;
      OpenAiClient client(io.get_executor(), nullptr, options_for(server));
      auto r = run_on(io, client.chat(hello()));
      REQUIRE_FALSE(r.has_value());
      CHECK_THAT(r.error().message, Catch::Contains("Incorrect API key provided: [redacted API key]."));
      CHECK_FALSE(has_key(r.error().message));
      CHECK_FALSE(has_key(r.error().type));
      CHECK_FALSE(has_key(r.error().api_code));
      std::vector<std::string> deltas;
      auto s = run_on(io, client.chat_stream(hello(), DeltaSink{&deltas}));
      REQUIRE_FALSE(s.has_value());
      CHECK_FALSE(has_key(s.error().message));
      CHECK_FALSE(has_key(s.error().type));
      CHECK_FALSE(has_key(s.error().api_code));
    }
  }
  SECTION("a body that is not JSON, the key near the excerpt's cut") {
    const std::string body = std::string(290, 'x') + k_key + " tail";
    json::object rule{{"status", 401}, {"body", body}};
    TestServer server(TestServerOptions{.script = json::object{{"rules", json::array{rule}}}});
    asio::io_context io;
    OpenAiClient client(io.get_executor(), nullptr, options_for(server));
    auto r = run_on(io, client.chat(hello()));
    REQUIRE_FALSE(r.has_value());
    CHECK_FALSE(has_key(r.error().message));
    CHECK(r.error().message.find("sk-test-ABC") == std::string::npos);  // not even its start
  }
}

TEST_CASE("a key in a reply is masked, also when streamed split across deltas", "[net][secrets]") {
  const std::string k = k_key;
  // The key cut after every byte position in turn, over two deltas.
  for (std::size_t cut = 1; cut < k.size(); cut += 4) {
    DYNAMIC_SECTION("cut at " << cut) {
      json::array chunks{"the key is " + k.substr(0, cut), k.substr(cut) + " indeed"};
      json::object rule{{"path", "/v1/chat/completions"}, {"stream_chunks", chunks}};
      TestServer server(TestServerOptions{.script = json::object{{"rules", json::array{rule}}}});
      asio::io_context io;
      OpenAiClient client(io.get_executor(), nullptr, options_for(server));
      std::vector<std::string> deltas;
      auto r = run_on(io, client.chat_stream(hello(), DeltaSink{&deltas}));
      REQUIRE(r.has_value());
      CHECK(r->content == "the key is [redacted API key] indeed");
      CHECK(joined(deltas) == "the key is [redacted API key] indeed");
      for (const auto& d : deltas) CHECK(d.find(k.substr(0, 8)) == std::string::npos);
      auto whole = run_on(io, client.chat(hello()));
      REQUIRE(whole.has_value());
      CHECK(whole->content == "the key is [redacted API key] indeed");
    }
  }
}
