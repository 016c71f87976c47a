#include "config/loader.hpp"

#include <filesystem>
#include <string>

#include <boost/json/serialize.hpp>
#include <catch2/catch.hpp>

namespace {

namespace fs = std::filesystem;
using dagent::config::Config;

constexpr const char* k_label = "config.yaml";

boost::system::result<Config, dagent::config::Problems> load(const std::string& yaml) {
  return dagent::config::load_string(yaml, k_label, fs::temp_directory_path());
}

std::string problems_of(const std::string& yaml) {
  auto loaded = load(yaml);
  return loaded ? std::string() : loaded.error().to_string();
}

}  // namespace

TEST_CASE("mcp.servers: stdio and Streamable HTTP servers are read with their defaults", "[config][mcp]") {
  auto cfg = load(R"(mcp:
  servers:
    everything: {command: [npx, -y, "@modelcontextprotocol/server-everything"], env: {A: "1", TOKEN: "${MY_TOKEN}"}, timeout_ms: 5000}
    fs: {command: [npx, -y, "@modelcontextprotocol/server-filesystem", "./docs"], cwd: sub}
    single: {command: my-server}
    remote: {url: "https://mcp.example.com/mcp", headers: {Authorization: "Bearer ${MCP_TOKEN}"}}
    local: {url: "http://127.0.0.1:8931/mcp"}
)");
  INFO((cfg ? std::string() : cfg.error().to_string()));
  REQUIRE(cfg.has_value());
  const auto& servers = cfg->mcp.servers;
  REQUIRE(servers.size() == 5);
  const auto& everything = servers.at("everything");
  CHECK(everything.command == std::vector<std::string>{"npx", "-y", "@modelcontextprotocol/server-everything"});
  CHECK(everything.env == std::vector<std::pair<std::string, std::string>>{{"A", "1"}, {"TOKEN", "${MY_TOKEN}"}});
  CHECK(everything.timeout_ms == 5000);
  CHECK(everything.url.empty());
  CHECK(servers.at("fs").timeout_ms == 30000);
  CHECK(servers.at("fs").cwd == "sub");
  CHECK(servers.at("single").command == std::vector<std::string>{"my-server"});
  CHECK(servers.at("remote").url == "https://mcp.example.com/mcp");
  CHECK(servers.at("remote").headers ==
        std::vector<std::pair<std::string, std::string>>{{"Authorization", "Bearer ${MCP_TOKEN}"}});
  CHECK(servers.at("local").url == "http://127.0.0.1:8931/mcp");

  SECTION("to_json keeps templates unexpanded, and reads back the same (a replay's recorded config)") {
    const auto json = dagent::config::to_json(*cfg);
    const auto text = boost::json::serialize(json);
    CHECK(text.find("Bearer ${MCP_TOKEN}") != std::string::npos);
    auto again = dagent::config::load_string(text, "recorded", fs::temp_directory_path());
    REQUIRE(again.has_value());
    CHECK(boost::json::serialize(dagent::config::to_json(*again)) == text);
  }
}

TEST_CASE("a config without mcp has no mcp key in its JSON (recording digests are unchanged)", "[config][mcp]") {
  auto cfg = load("llm: {model: m}\n");
  REQUIRE(cfg.has_value());
  CHECK_FALSE(dagent::config::to_json(*cfg).contains("mcp"));
}

TEST_CASE("mcp.servers problems are reported with line and key", "[config][mcp]") {
  CHECK(problems_of("mcp:\n  servers:\n    a.b: {command: [x]}\n") ==
        "config.yaml:3: mcp.servers.a.b: a server name is 1 to 64 letters, digits, '_' or '-' (its tools are named "
        "SERVER.TOOL)\n");
  CHECK(problems_of("mcp:\n  servers:\n    s: {env: {}}\n") ==
        "config.yaml:3: mcp.servers.s: needs a command (a stdio server) or a url (Streamable HTTP)\n");
  CHECK(problems_of("mcp:\n  servers:\n    s: {command: [x], url: \"https://h/mcp\"}\n") ==
        "config.yaml:3: mcp.servers.s: has both command and url; a server is one or the other\n");
  CHECK(problems_of("mcp:\n  servers:\n    s: {command: []}\n") ==
        "config.yaml:3: mcp.servers.s.command: expected the program and its arguments, got an empty list\n");
  CHECK(problems_of("mcp:\n  servers:\n    s: {url: \"http://example.com/mcp\"}\n").find(
            "config.yaml:3: mcp.servers.s.url: ") == 0);
  CHECK(problems_of("mcp:\n  servers:\n    s: {url: \"ftp://example.com/mcp\"}\n").find("mcp.servers.s.url") !=
        std::string::npos);
  CHECK(problems_of("mcp:\n  servers:\n    s: {command: [x], timeout_ms: 0}\n") ==
        "config.yaml:3: mcp.servers.s.timeout_ms: expected an integer from 1 to 2147483647, got an integer ('0')\n");
  CHECK(problems_of("mcp:\n  servers:\n    s: {command: [x], env: {A: \"$HOME\"}}\n") ==
        "config.yaml:3: mcp.servers.s.env.A: a '$' must start ${NAME} (an environment variable) or be written $$, in "
        "'$HOME'\n");
  CHECK(problems_of("mcp:\n  servers:\n    s: {command: [x], headers: {A: b}}\n") ==
        "config.yaml:3: mcp.servers.s: headers apply to a url, not to a command\n");
  CHECK(problems_of("mcp:\n  servers:\n    s: {command: [x], comand: y}\n").find(
            "mcp.servers.s.comand: unknown key; did you mean 'command'?") != std::string::npos);
  CHECK(problems_of("mcp:\n  server: {}\n").find("mcp.server: unknown key; did you mean 'servers'?") !=
        std::string::npos);
  CHECK(problems_of("mcp: [1]\n") == "config.yaml:1: mcp: expected a map with servers, got a list\n");
}

TEST_CASE("MCP servers cannot be defined with --set", "[config][mcp]") {
  Config cfg;
  auto problems = dagent::config::apply_override(cfg, "mcp.servers.x.command=y");
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].message == "MCP servers cannot be set with --set; define them in the config");
}
