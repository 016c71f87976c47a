// The scripted OpenAI-compatible test server (tests/server/) checked through its control client,
// so the network tests can trust what it sends.

#include "support/test_server_process.hpp"

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <chrono>
#include <cmath>
#include <thread>

namespace json = boost::json;
using dagent::test::BodyFraming;
using dagent::test::HttpReply;
using dagent::test::HttpRequest;
using dagent::test::post_json;
using dagent::test::ServerCert;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

namespace {

json::value chat(std::string user, json::object extra = {}) {
  json::array messages{json::object{{"role", "system"}, {"content", "be brief"}},
                       json::object{{"role", "user"}, {"content", user}}};
  json::object body{{"model", "gpt-test"}, {"messages", std::move(messages)}};
  for (auto& [key, value] : extra) body[key] = value;
  return body;
}

HttpRequest chat_request(std::string user, json::object extra = {}) {
  return post_json("/v1/chat/completions", chat(std::move(user), std::move(extra)));
}

std::string content_of(const HttpReply& reply) {
  return std::string(reply.json().at("choices").at(0).at("message").at("content").as_string());
}

/// The `data:` payloads of an SSE body, checking the framing on the way.
std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < body.size()) {
    const std::size_t end = body.find("\n\n", start);
    REQUIRE(end != std::string::npos);  // every event ends with a blank line
    const std::string event = body.substr(start, end - start);
    REQUIRE(event.rfind("data: ", 0) == 0);
    out.push_back(event.substr(6));
    start = end + 2;
  }
  return out;
}

std::vector<double> embedding_of(const json::value& reply, std::size_t index) {
  std::vector<double> v;
  for (const json::value& x : reply.at("data").at(index).at("embedding").as_array()) v.push_back(x.to_number<double>());
  return v;
}

double cosine(const std::vector<double>& a, const std::vector<double>& b) {
  double dot = 0;
  for (std::size_t i = 0; i < a.size(); ++i) dot += a[i] * b[i];
  return dot;  // the server's vectors are unit length
}

std::int64_t count(const json::value& stats, std::string_view key) { return stats.at(key).to_number<std::int64_t>(); }

}  // namespace

TEST_CASE("test server answers health and a default chat completion", "[server]") {
  TestServer server;
  REQUIRE(server.base_url() == "http://127.0.0.1:" + std::to_string(server.port()) + "/v1");

  HttpReply health = server.request(HttpRequest{});
  CHECK(health.status == 200);
  CHECK(health.body == "ok");

  HttpReply reply = server.request(chat_request("hello there"));
  REQUIRE(reply.status == 200);
  CHECK(reply.header("content-type") == "application/json");
  json::value body = reply.json();
  CHECK(body.at("object") == "chat.completion");
  CHECK(body.at("model") == "gpt-test");
  CHECK(body.at("id").as_string().starts_with("chatcmpl-"));
  CHECK(body.at("created").is_int64());
  CHECK(body.at("choices").at(0).at("message").at("role") == "assistant");
  CHECK(body.at("choices").at(0).at("finish_reason") == "stop");
  CHECK(content_of(reply) == "echo: hello there");
  // ceil(("be brief" + "hello there") / 4) and ceil("echo: hello there" / 4)
  CHECK(body.at("usage").at("prompt_tokens") == 5);
  CHECK(body.at("usage").at("completion_tokens") == 5);
  CHECK(body.at("usage").at("total_tokens") == 10);

  SECTION("the echo is trimmed to 200 bytes") {
    CHECK(content_of(server.request(chat_request(std::string(300, 'a')))) == "echo: " + std::string(200, 'a'));
  }
  SECTION("the /v1 prefix is optional") {
    HttpRequest bare = chat_request("no prefix");
    bare.target = "/chat/completions";
    CHECK(content_of(server.request(bare)) == "echo: no prefix");
  }
  SECTION("a chunked request body is read") {
    HttpRequest chunked = chat_request("sent in chunks");
    chunked.framing = BodyFraming::chunked;
    CHECK(content_of(server.request(chunked)) == "echo: sent in chunks");
  }
  SECTION("bad requests get OpenAI's error shape") {
    HttpReply bad = server.request(post_json("/v1/chat/completions", json::object{{"model", "m"}}));
    CHECK(bad.status == 400);
    CHECK(bad.json().at("error").at("type") == "invalid_request_error");
    CHECK(server.request(HttpRequest{"GET", "/v1/nowhere"}).status == 404);
  }
}

TEST_CASE("test server fills a json_schema response_format with a minimal valid value", "[server]") {
  TestServer server;
  json::value schema = json::parse(R"({"type":"object","required":["goal","steps","count","done","kind","inner"],
    "properties":{"goal":{"type":"string"},"steps":{"type":"array","items":{"type":"string"}},
    "count":{"type":"integer"},"done":{"type":"boolean"},"kind":{"enum":["plan","answer"]},
    "inner":{"type":"object","required":["note"],"properties":{"note":{"type":"string"},"x":{"type":"number"}}},
    "optional":{"type":"string"}}})");
  json::object format{{"type", "json_schema"}, {"json_schema", json::object{{"name", "plan"}, {"schema", schema}}}};
  HttpReply reply = server.request(chat_request("plan this", json::object{{"response_format", format}}));
  REQUIRE(reply.status == 200);
  CHECK(json::parse(content_of(reply)) ==
        json::parse(R"({"goal":"x","steps":[],"count":0,"done":false,"kind":"plan","inner":{"note":"x"}})"));
}

TEST_CASE("test server streams SSE chunks ending with DONE", "[server]") {
  TestServer server;

  SECTION("default content with usage") {
    json::object options{{"stream", true}, {"stream_options", json::object{{"include_usage", true}}}};
    HttpReply reply = server.request(chat_request("stream me please", options));
    REQUIRE(reply.status == 200);
    CHECK(reply.header("content-type").starts_with("text/event-stream"));
    CHECK(reply.header("transfer-encoding") == "chunked");
    std::vector<std::string> payloads = sse_payloads(reply.body);
    REQUIRE(payloads.size() >= 4);
    CHECK(payloads.back() == "[DONE]");

    json::value first = json::parse(payloads.front());
    CHECK(first.at("object") == "chat.completion.chunk");
    CHECK(first.at("choices").at(0).at("delta").at("role") == "assistant");

    json::value usage = json::parse(payloads[payloads.size() - 2]);
    CHECK(usage.at("choices").as_array().empty());
    CHECK(usage.at("usage").at("completion_tokens") == 6);  // ceil("echo: stream me please" / 4)

    json::value finish = json::parse(payloads[payloads.size() - 3]);
    CHECK(finish.at("choices").at(0).at("finish_reason") == "stop");

    std::string content;
    for (std::size_t i = 1; i + 3 < payloads.size(); ++i) {
      json::value chunk = json::parse(payloads[i]);
      CHECK(chunk.at("id") == first.at("id"));
      content += chunk.at("choices").at(0).at("delta").at("content").as_string();
    }
    CHECK(content == "echo: stream me please");
  }

  SECTION("scripted chunks, no usage unless asked") {
    server.set_script(json::parse(R"({"rules":[{"path":"/v1/chat/completions","stream_chunks":["Hel","lo"]}]})"));
    HttpReply reply = server.request(chat_request("x", json::object{{"stream", true}}));
    std::vector<std::string> payloads = sse_payloads(reply.body);
    REQUIRE(payloads.size() == 5);  // role, "Hel", "lo", finish, [DONE]
    CHECK(json::parse(payloads[1]).at("choices").at(0).at("delta").at("content") == "Hel");
    CHECK(json::parse(payloads[2]).at("choices").at(0).at("delta").at("content") == "lo");
    CHECK_FALSE(json::parse(payloads[3]).as_object().contains("usage"));
    CHECK(payloads[4] == "[DONE]");
  }
}

TEST_CASE("test server embeddings are deterministic and dimensioned and word based", "[server]") {
  TestServer server;
  json::object request{{"model", "text-embedding-test"},
                       {"input", json::array{"The cat sat on the mat", "the CAT sat on a mat!",
                                             "quarterly revenue forecast spreadsheet"}}};
  HttpReply reply = server.request(post_json("/v1/embeddings", request));
  REQUIRE(reply.status == 200);
  json::value body = reply.json();
  REQUIRE(body.at("data").as_array().size() == 3);
  CHECK(body.at("data").at(2).at("index") == 2);
  CHECK(body.at("usage").at("prompt_tokens") == 21);  // ceil((22 + 21 + 39) / 4)

  std::vector<double> cat = embedding_of(body, 0), cat2 = embedding_of(body, 1), revenue = embedding_of(body, 2);
  REQUIRE(cat.size() == 64);
  CHECK(cosine(cat, cat) == Approx(1.0));
  CHECK(cosine(cat, cat2) > 0.6);
  CHECK(cosine(cat, cat2) > cosine(cat, revenue) + 0.3);

  HttpReply again = server.request(post_json("/v1/embeddings", request));
  CHECK(again.body == reply.body);

  request["dimensions"] = 16;
  request["input"] = "just one string";
  json::value small = server.request(post_json("/v1/embeddings", request)).json();
  CHECK(embedding_of(small, 0).size() == 16);
}

TEST_CASE("test server sends a scripted 429 with OpenAI headers and error body", "[server]") {
  TestServer server;
  server.set_script(json::parse(R"({"rules":[{"path":"/v1/chat/completions","status":429,
    "headers":{"retry-after-ms":"250","x-ratelimit-limit-requests":"60","x-ratelimit-remaining-requests":"0",
               "x-ratelimit-reset-requests":"1s","x-ratelimit-limit-tokens":"1000",
               "x-ratelimit-remaining-tokens":"0","x-ratelimit-reset-tokens":"6m0s"},
    "body":{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}},
    {"path":"/v1/embeddings","status":503}]})"));

  HttpReply limited = server.request(chat_request("hi"));
  CHECK(limited.status == 429);
  CHECK(limited.header("retry-after-ms") == "250");
  CHECK(limited.header("x-ratelimit-remaining-requests") == "0");
  CHECK(limited.header("x-ratelimit-reset-tokens") == "6m0s");
  json::value error = limited.json().at("error");
  CHECK(error.at("code") == "rate_limit_exceeded");
  CHECK(error.at("param").is_null());

  // A scripted error status without a body still gets OpenAI's error shape.
  HttpReply unavailable = server.request(post_json("/v1/embeddings", json::object{{"input", "x"}}));
  CHECK(unavailable.status == 503);
  CHECK(unavailable.json().at("error").at("type") == "server_error");

  json::value stats = server.stats();
  CHECK(count(stats, "rate_limited") == 1);
  CHECK(stats.at("status").at("429") == 1);
  CHECK(stats.at("status").at("503") == 1);
}

TEST_CASE("test server script rules with nth and times fall through", "[server]") {
  TestServer server;
  server.set_script(json::parse(R"({"rules":[
    {"path":"/v1/chat/completions","contains":"plan","nth":2,"status":500},
    {"path":"/v1/chat/completions","contains":"plan","times":2,"reply":"scripted plan"}]})"));

  std::vector<unsigned> statuses;
  std::vector<std::string> contents;
  for (int i = 0; i < 4; ++i) {
    HttpReply reply = server.request(chat_request("make a plan"));
    statuses.push_back(reply.status);
    contents.push_back(reply.status == 200 ? content_of(reply) : "");
  }
  // Each rule counts every request passing its filters, whichever rule answered it.
  CHECK(statuses == std::vector<unsigned>{200, 500, 200, 200});
  CHECK(contents == std::vector<std::string>{"scripted plan", "", "echo: make a plan", "echo: make a plan"});
  CHECK(content_of(server.request(chat_request("something else"))) == "echo: something else");

  json::value rules = server.stats().at("script_rules");
  CHECK(rules.at(0).at("seen") == 4);
  CHECK(rules.at(0).at("applied") == 1);
  CHECK(rules.at(1).at("applied") == 1);

  SECTION("a bad script is refused with the reason") {
    HttpReply refused = server.request(post_json("/_script", json::parse(R"({"rules":[{"path":"/x","nht":2}]})")));
    CHECK(refused.status == 400);
    CHECK(refused.body.find("unknown key \\\"nht\\\"") != std::string::npos);
  }
  SECTION("reset clears the script and the counters") {
    server.reset();
    CHECK(content_of(server.request(chat_request("make a plan"))) == "echo: make a plan");
    json::value stats = server.stats();
    CHECK(stats.at("requests").at("total") == 1);
    CHECK(stats.at("script_rules").as_array().empty());
  }
}

TEST_CASE("test server loads a script file given on its command line", "[server]") {
  TestServerOptions options;
  options.script = json::parse(R"({"rules":[{"path":"/v1/chat/completions","reply":"from the file"}]})");
  TestServer server(options);
  CHECK(content_of(server.request(chat_request("hi"))) == "from the file");
}

TEST_CASE("test server stats count connections and requests and redact authorization", "[server]") {
  TestServer server;
  HttpRequest request = chat_request("count me");
  request.headers = {{"Authorization", "Bearer sk-very-secret"}, {"X-Trace", "t1"}};
  std::vector<HttpReply> replies = server.request_on_one_connection({request, request, request});
  REQUIRE(replies.size() == 3);
  for (const HttpReply& reply : replies) CHECK(reply.header("connection").empty());  // keep-alive is implied

  HttpReply stats_reply = server.request(HttpRequest{"GET", "/_stats"});
  CHECK(stats_reply.body.find("sk-very-secret") == std::string::npos);
  json::value stats = stats_reply.json();
  CHECK(count(stats, "connections_accepted") == 1);  // the control connections are not counted
  CHECK(count(stats, "connections_open") == 0);
  CHECK(stats.at("requests").at("total") == 3);
  CHECK(stats.at("requests").at("by_path").at("/v1/chat/completions") == 3);
  CHECK(stats.at("status").at("200") == 3);
  CHECK(count(stats, "max_concurrent_requests") == 1);

  const json::array& recent = stats.at("recent").as_array();
  REQUIRE(recent.size() == 3);
  for (const json::value& entry : recent) {
    CHECK(entry.at("method") == "POST");
    CHECK(entry.at("path") == "/v1/chat/completions");
    CHECK(entry.at("headers").at("authorization") == "present");
    CHECK(entry.at("headers").at("x-trace") == "t1");
    CHECK(entry.at("connection_id") == recent.at(0).at("connection_id"));
    CHECK(entry.at("completion_ms").to_number<double>() >= entry.at("arrival_ms").to_number<double>());
    CHECK(entry.at("body").as_string().find("count me") != json::string::npos);
  }
}

TEST_CASE("test server enforces rpm and tpm with 429 and retry-after-ms", "[server]") {
  SECTION("requests per minute") {
    TestServerOptions options;
    options.rpm = 3;
    TestServer server(options);
    for (int i = 0; i < 3; ++i) {
      HttpReply ok = server.request(chat_request("hi"));
      CHECK(ok.status == 200);
      CHECK(ok.header("x-ratelimit-limit-requests") == "3");
      CHECK(ok.header("x-ratelimit-remaining-requests") == std::to_string(2 - i));
      CHECK_FALSE(ok.header("x-ratelimit-reset-requests").empty());
    }
    HttpReply limited = server.request(chat_request("hi"));
    CHECK(limited.status == 429);
    const long retry_ms = std::stol(limited.header("retry-after-ms"));
    CHECK(retry_ms > 50'000);  // the first request is at most seconds old
    CHECK(retry_ms <= 60'000);
    CHECK(limited.json().at("error").at("type") == "requests");
    CHECK(server.request(HttpRequest{}).status == 200);  // control endpoints are never limited
    CHECK(count(server.stats(), "rate_limited") == 1);
  }
  SECTION("tokens per minute, declared by max_tokens") {
    TestServerOptions options;
    options.tpm = 1000;
    TestServer server(options);
    HttpReply first = server.request(chat_request("hi", json::object{{"max_tokens", 900}}));
    CHECK(first.status == 200);
    const long remaining = std::stol(first.header("x-ratelimit-remaining-tokens"));
    CHECK(remaining < 100);
    HttpReply limited = server.request(chat_request("hi", json::object{{"max_tokens", 200}}));
    CHECK(limited.status == 429);
    CHECK(limited.json().at("error").at("type") == "tokens");
    CHECK(std::stol(limited.header("retry-after-ms")) > 0);
  }
}

TEST_CASE("test server faults break the connection as scripted", "[server]") {
  TestServer server;
  server.set_script(json::parse(R"({"rules":[
    {"contains":"reset","fault":"reset"},
    {"contains":"truncate","fault":"truncate"},
    {"contains":"stream cut","fault":"truncate"},
    {"contains":"close after","fault":"close_after_response"}]})"));

  CHECK_THROWS(server.request(chat_request("reset")));
  CHECK_THROWS(server.request(chat_request("truncate")));
  CHECK_THROWS(server.request(chat_request("stream cut", json::object{{"stream", true}})));

  // close_after_response: a normal reply with no `Connection: close`, then the next request on
  // the same connection gets nothing.
  std::vector<HttpReply> replies = server.request_on_one_connection({chat_request("close after"), chat_request("x")});
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].status == 200);
  CHECK(replies[0].header("connection").empty());

  // An honest `Connection: close` is honoured and announced.
  HttpRequest closing = chat_request("bye");
  closing.headers = {{"Connection", "close"}};
  replies = server.request_on_one_connection({closing, chat_request("x")});
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].header("connection") == "close");

  json::value stats = server.stats();
  CHECK(stats.at("faults").at("reset") == 1);
  CHECK(stats.at("faults").at("truncate") == 2);
  CHECK(stats.at("faults").at("close_after_response") == 1);
}

TEST_CASE("test server serves TLS with the test CA's certificate", "[server]") {
  TestServerOptions options;
  options.cert = ServerCert::valid;
  TestServer server(options);
  CHECK(server.base_url() == "https://localhost:" + std::to_string(server.port()) + "/v1");
  CHECK(server.request(HttpRequest{}).body == "ok");
  CHECK(content_of(server.request(chat_request("over tls"))) == "echo: over tls");
  json::value stats = server.stats();
  CHECK(count(stats, "tls_handshakes") == 1);  // the chat request's; control connections are not counted
  CHECK(count(stats, "connections_accepted") == 1);

  const auto& certs = dagent::test::TestCerts::get();
  for (const auto& path : {certs.ca(), certs.server_cert(), certs.server_key(), certs.wrong_host_cert(),
                           certs.wrong_host_key(), certs.expired_cert(), certs.expired_key(), certs.other_ca()})
    CHECK(std::filesystem::file_size(path) > 0);
}

TEST_CASE("test server connect delay holds each new connection before reading it", "[server]") {
  TestServerOptions options;
  options.cert = ServerCert::valid;
  options.connect_delay_ms = 150;
  TestServer server(options);
  std::vector<HttpReply> replies =
      server.request_on_one_connection({chat_request("first"), chat_request("second"), chat_request("third")});
  REQUIRE(replies.size() == 3);
  CHECK(content_of(replies[2]) == "echo: third");
  json::value stats = server.stats();
  CHECK(count(stats, "connections_accepted") == 1);
  CHECK(count(stats, "tls_handshakes") == 1);
  const json::array& recent = stats.at("recent").as_array();
  REQUIRE(recent.size() == 3);
  // The server's own clock: nothing is read from a new connection before the delay is over.
  const double accepted = recent.at(0).at("connection_accepted_ms").to_number<double>();
  CHECK(recent.at(0).at("arrival_ms").to_number<double>() - accepted >= 150.0);
  for (const json::value& entry : recent) CHECK(entry.at("connection_accepted_ms").to_number<double>() == accepted);
}

TEST_CASE("a script with \"bytes\" sends each character U+0000..U+00FF as one byte", "[server][utf8]") {
  TestServer server;
  // "caf\u00e9" is the Latin-1 byte E9 on the wire, inside the JSON reply as it is.
  server.set_script(json::parse(R"({"rules": [{"path": "/v1/chat/completions", "reply": "caf\u00e9", "bytes": true}]})"));
  HttpReply reply = server.request(chat_request("hello"));
  CHECK(reply.status == 200);
  CHECK(reply.body.find("\"caf\xE9\"") != std::string::npos);
  HttpReply refused = server.request(post_json(
      "/_script", json::parse(R"({"rules": [{"reply": "\u20ac", "bytes": true}]})")));
  CHECK(refused.status == 400);
  CHECK(refused.body.find("U+0000..U+00FF") != std::string::npos);
}

TEST_CASE("test server holds a reply until the request named by hold_until arrives", "[server]") {
  TestServer server;
  server.set_script(json::parse(R"({"rules":[
    {"path":"/v1/chat/completions","contains":"first","hold_until":{"contains":"second"},"reply":"held"}]})"));
  // Waits (bounded) until the server has seen `total` requests.
  auto await_requests = [&server](std::int64_t total) {
    for (int i = 0; i < 2000 && server.stats().at("requests").at("total").to_number<std::int64_t>() < total; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  };

  SECTION("the held reply goes once the other request has arrived") {
    HttpReply first;
    std::thread held([&] { first = server.request(chat_request("first")); });
    await_requests(1);
    const HttpReply second = server.request(chat_request("second"));
    held.join();
    CHECK(content_of(first) == "held");
    CHECK(content_of(second) == "echo: second");
    const json::value stats = server.stats();
    CHECK(count(stats, "max_concurrent_requests") == 2);
    const json::array& recent = stats.at("recent").as_array();
    REQUIRE(recent.size() == 2);
    // The first request's reply went after the second request arrived.
    CHECK(recent[0].at("completion_ms").to_number<double>() >= recent[1].at("arrival_ms").to_number<double>());
  }
  SECTION("a request that arrived before the held one already meets the hold") {
    CHECK(content_of(server.request(chat_request("second"))) == "echo: second");
    CHECK(content_of(server.request(chat_request("first"))) == "held");
  }
  SECTION("a new script releases the replies the old one held") {
    HttpReply first;
    std::thread held([&] { first = server.request(chat_request("first")); });
    await_requests(1);
    server.set_script(json::parse(R"({"rules":[]})"));
    held.join();
    CHECK(content_of(first) == "held");
  }
  SECTION("hold_until takes only path and contains") {
    HttpReply refused = server.request(post_json("/_script", json::parse(R"({"rules":[{"hold_until":{"nth":1}}]})")));
    CHECK(refused.status == 400);
    CHECK(refused.body.find("hold_until must be an object with only path and/or contains") != std::string::npos);
  }
}
