// `dagent mcp list [SERVER] [--json]`: what a plan may call on the configured MCP servers.

#include <algorithm>
#include <cstdio>
#include <string>

#include <boost/json/serialize.hpp>

#include "cli/commands.hpp"
#include "cli/terminal_out.hpp"
#include "config/config.hpp"
#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"
#include "text/json_utf8.hpp"

namespace dagent::cli {

namespace {

namespace json = boost::json;

// "string", "number|null", "array of string", "one of a|b", or "any".
std::string type_of(const json::object& schema) {
  if (const auto* e = schema.if_contains("enum"); e && e->is_array()) {
    std::string out = "one of ";
    for (const auto& v : e->get_array()) out += (out.size() > 7 ? "|" : "") + json::serialize(v);
    return out;
  }
  const auto* type = schema.if_contains("type");
  std::string out;
  if (type && type->is_string()) {
    out = type->get_string();
  } else if (type && type->is_array()) {
    for (const auto& t : type->get_array())
      if (t.is_string()) out += (out.empty() ? "" : "|") + std::string(t.get_string());
  } else if (schema.contains("anyOf") || schema.contains("oneOf")) {
    const auto& alts = schema.contains("anyOf") ? schema.at("anyOf") : schema.at("oneOf");
    if (alts.is_array())
      for (const auto& a : alts.get_array())
        if (a.is_object()) out += (out.empty() ? "" : "|") + type_of(a.get_object());
  }
  if (out == "array") {
    if (const auto* items = schema.if_contains("items"); items && items->is_object())
      out += " of " + type_of(items->get_object());
  }
  return out.empty() ? "any" : out;
}

void print_tool(const McpToolInfo& tool) {
  print_safe(stdout, "%s", tool.name.c_str());
  if (!tool.description.empty()) print_safe(stdout, ": %s", tool.description.c_str());
  print_safe(stdout, "\n");
  const auto* props = tool.input_schema.if_contains("properties");
  if (!props || !props->is_object() || props->get_object().empty()) {
    print_safe(stdout, "    (no parameters)\n");
    return;
  }
  const json::array* required = nullptr;
  if (const auto* r = tool.input_schema.if_contains("required"); r && r->is_array()) required = &r->get_array();
  for (const auto& [name, sub] : props->get_object()) {
    const bool needed = required && std::find(required->begin(), required->end(), json::value(name)) != required->end();
    std::string line = "    " + std::string(name) + ": ";
    if (sub.is_object()) {
      const auto& s = sub.get_object();
      line += type_of(s);
      line += needed ? ", required" : ", optional";
      if (const auto* d = s.if_contains("default")) line += ", default " + json::serialize(*d);
      if (const auto* d = s.if_contains("description"); d && d->is_string()) line += " — " + std::string(d->get_string());
    } else {
      line += needed ? "any, required" : "any, optional";
    }
    print_safe(stdout, "%s\n", line.c_str());
  }
}

}  // namespace

int mcp_command(const Options& options) {
  if (options.args.empty() || options.args[0] != "list" || options.args.size() > 2) {
    print_safe(stderr, "dagent: usage: dagent mcp list [SERVER] [--json]\n");
    return 2;
  }
  auto runtime = load_runtime(options);
  if (!runtime) return 2;
  if (runtime::config_of(*runtime).mcp.servers.empty()) {
    print_safe(stderr, "dagent: no MCP servers are configured (mcp.servers)\n");
    return 2;
  }
  const auto listing = runtime->list_mcp_tools(options.args.size() == 2 ? options.args[1] : std::string());
  for (const auto& p : listing.problems) print_safe(stderr, "dagent: %s\n", p.c_str());
  if (listing.unknown_server) return 2;
  if (options.json) {
    json::array tools;
    for (const auto& t : listing.tools)
      tools.push_back(json::object{{"server", t.server}, {"name", t.name}, {"description", t.description},
                                   {"input_schema", t.input_schema}});
    json::array problems(listing.problems.begin(), listing.problems.end());
    std::printf("%s\n", json_for_terminal(text::serialize_valid(
                             json::object{{"tools", std::move(tools)}, {"problems", std::move(problems)}}))
                             .c_str());
  } else {
    for (const auto& t : listing.tools) print_tool(t);
  }
  return listing.problems.empty() ? 0 : 3;
}

}  // namespace dagent::cli
