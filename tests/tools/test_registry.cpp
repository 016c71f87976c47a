#include "tools/registry.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>

#include "tools/json_schema.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using dagent::Tool;
using dagent::ToolErrc;
using dagent::tools::Registry;

class NamedTool final : public Tool {
 public:
  explicit NamedTool(std::string name) : name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  std::string_view description() const override { return "test tool"; }
  const json::object& parameters_schema() const override { return schema_; }
  asio::awaitable<dagent::ToolResult> invoke(json::object, dagent::ToolContext) override { co_return json::value(); }

 private:
  std::string name_;
  json::object schema_{{"type", "object"}};
};

std::vector<std::string_view> names_of(const Registry& registry) {
  std::vector<std::string_view> names;
  for (const Tool* tool : registry.tools()) names.push_back(tool->name());
  return names;
}

}  // namespace

TEST_CASE("Registry holds tools by name") {
  Registry registry;
  auto beta = std::make_shared<NamedTool>("beta");
  REQUIRE(registry.add(beta).has_value());
  REQUIRE(registry.add(std::make_shared<NamedTool>("alpha")).has_value());
  REQUIRE(registry.add(std::make_shared<NamedTool>("gamma")).has_value());

  CHECK(registry.size() == 3);
  CHECK(registry.find("beta") == beta.get());
  CHECK(registry.get("beta") == beta);
  CHECK(registry.find("delta") == nullptr);
  CHECK(registry.get("delta") == nullptr);
  CHECK(names_of(registry) == std::vector<std::string_view>{"alpha", "beta", "gamma"});

  SECTION("a taken name is refused and the first tool stays") {
    auto again = registry.add(std::make_shared<NamedTool>("beta"));
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().code == ToolErrc::invalid_parameters);
    CHECK(again.error().message == "tool 'beta' is already registered");
    CHECK(registry.find("beta") == beta.get());
    CHECK(registry.size() == 3);
  }
  SECTION("null and nameless tools are refused") {
    CHECK_FALSE(registry.add(nullptr).has_value());
    CHECK_FALSE(registry.add(std::make_shared<NamedTool>("")).has_value());
    CHECK(registry.size() == 3);
  }
}

TEST_CASE("make_builtin_registry adds the enabled built-in tools this build has") {
  SECTION("the default list; llm and memory tools are skipped") {
    auto registry = dagent::tools::make_builtin_registry(
        {"read_file", "write_file", "list_dir", "search_files", "llm", "memory_search", "memory_add"});
    CHECK(names_of(registry) == std::vector<std::string_view>{"list_dir", "read_file", "search_files", "write_file"});
  }
  SECTION("only what is enabled, once, ignoring unknown names") {
    auto registry = dagent::tools::make_builtin_registry({"read_file", "read_file", "no_such_tool"});
    CHECK(names_of(registry) == std::vector<std::string_view>{"read_file"});
  }
  SECTION("nothing enabled") { CHECK(dagent::tools::make_builtin_registry({}).size() == 0); }
}

TEST_CASE("built-in tools describe themselves precisely") {
  auto registry = dagent::tools::make_builtin_registry({"read_file", "write_file", "list_dir", "search_files"});
  REQUIRE(registry.size() == 4);
  for (const Tool* tool : registry.tools()) {
    INFO(tool->name());
    CHECK(dagent::tools::is_builtin_tool(tool->name()));
    CHECK_FALSE(tool->uses_llm());
    CHECK(tool->description().size() > 40);
    const json::object& schema = tool->parameters_schema();
    CHECK(&schema == &tool->parameters_schema());
    CHECK(schema.at("type") == "object");
    CHECK(schema.at("additionalProperties") == false);
    REQUIRE(schema.at("properties").is_object());
    for (const auto& property : schema.at("properties").get_object()) {
      INFO(std::string(property.key()));
      CHECK(property.value().as_object().contains("type"));
      CHECK(property.value().as_object().contains("description"));
    }
    if (const auto* required = schema.if_contains("required")) {
      for (const auto& name : required->as_array()) {
        CHECK(schema.at("properties").as_object().contains(name.as_string()));
      }
    }
    CHECK(dagent::tools::validate_json(json::object{{"unexpected", 1}}, schema).size() >= 1);
  }
}

TEST_CASE("the built-in tool names follow SPEC.md section 7") {
  CHECK(dagent::tools::builtin_tool_names() == std::vector<std::string_view>{"list_dir", "llm", "memory_add",
                                                                             "memory_search", "read_file",
                                                                             "search_files", "write_file"});
  CHECK(dagent::tools::is_builtin_tool("llm"));
  CHECK(dagent::tools::is_builtin_tool("search_files"));
  CHECK_FALSE(dagent::tools::is_builtin_tool("shell"));
  CHECK_FALSE(dagent::tools::is_builtin_tool(""));
}

namespace {

class DescribedTool final : public Tool {
 public:
  DescribedTool(std::string name, std::string description, json::object schema)
      : name_(std::move(name)), description_(std::move(description)), schema_(std::move(schema)) {}
  std::string_view name() const override { return name_; }
  std::string_view description() const override { return description_; }
  const json::object& parameters_schema() const override { return schema_; }
  asio::awaitable<dagent::ToolResult> invoke(json::object, dagent::ToolContext) override { co_return json::value(); }

 private:
  std::string name_;
  std::string description_;
  json::object schema_;
};

}  // namespace

TEST_CASE("Registry refuses a tool whose name, description or schema is not UTF-8 (they go into every prompt)") {
  Registry registry;
  const json::object schema{{"type", "object"}};
  auto named = registry.add(std::make_shared<DescribedTool>("caf\xE9", "ok", schema));
  REQUIRE_FALSE(named.has_value());
  CHECK(named.error().code == ToolErrc::invalid_parameters);
  CHECK(named.error().message == "cannot register tool 'caf\xEF\xBF\xBD': its name is not valid UTF-8");
  auto described = registry.add(std::make_shared<DescribedTool>("t", "an overlong \xC0\xAF slash", schema));
  REQUIRE_FALSE(described.has_value());
  CHECK(described.error().message == "cannot register tool 't': its description is not valid UTF-8");
  const json::object bad_key{{"type", "object"}, {"properties", json::object{{"\xED\xA0\x80", json::object{}}}}};
  auto keyed = registry.add(std::make_shared<DescribedTool>("t", "ok", bad_key));
  REQUIRE_FALSE(keyed.has_value());
  CHECK(keyed.error().message == "cannot register tool 't': its parameters schema is not valid UTF-8");
  CHECK(registry.size() == 0);
  CHECK(registry.add(std::make_shared<DescribedTool>("caf\xC3\xA9", "d\xC3\xA9j\xC3\xA0", schema)).has_value());
  CHECK(registry.size() == 1);
}

TEST_CASE("Registry refuses a tool whose parameter schema is not a valid draft-07 schema, naming the tool") {
  Registry registry;
  const json::object nonsense{{"type", "nonsense"}};
  auto refused = registry.add(std::make_shared<DescribedTool>("weird", "ok", nonsense));
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == ToolErrc::invalid_parameters);
  CHECK(refused.error().message.starts_with("tool 'weird' declares an invalid parameter schema: $.type"));
  const json::object remote{{"$ref", "http://example.invalid/schema.json"}};
  CHECK_FALSE(registry.add(std::make_shared<DescribedTool>("remote", "ok", remote)).has_value());
  CHECK(registry.size() == 0);
  const json::object fine{{"type", "object"}, {"properties", json::object{{"n", json::object{{"type", "integer"}}}}}};
  CHECK(registry.add(std::make_shared<DescribedTool>("fine", "ok", fine)).has_value());
}
