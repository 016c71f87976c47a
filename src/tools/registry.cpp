// Registry, and the built-in tool set.

#include "tools/registry.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include <boost/json/serialize.hpp>

#include "text/utf8.hpp"
#include "tools/json_schema.hpp"
#include "tools/list_dir_tool.hpp"
#include "tools/read_file_tool.hpp"
#include "tools/search_files_tool.hpp"
#include "tools/write_file_tool.hpp"

namespace dagent::tools {
namespace {

namespace json = boost::json;

// Sorted.
constexpr std::array<std::string_view, 7> k_builtin_names = {"list_dir",  "llm",          "memory_add", "memory_search",
                                                             "read_file", "search_files", "write_file"};

// The built-in tool called `name` when this build provides it, else nullptr.
std::shared_ptr<Tool> make_builtin(std::string_view name, const BuiltinOptions& options) {
  if (name == "read_file") return std::make_shared<ReadFileTool>(options.read_max_bytes);
  if (name == "write_file") return std::make_shared<WriteFileTool>();
  if (name == "list_dir") return std::make_shared<ListDirTool>();
  if (name == "search_files") return std::make_shared<SearchFilesTool>(options.search_max_line_bytes);
  return nullptr;
}

}  // namespace

boost::system::result<void, ToolError> Registry::add(std::shared_ptr<Tool> tool) {
  if (!tool) return ToolError{ToolErrc::invalid_parameters, "cannot register a null tool"};
  std::string name(tool->name());
  if (name.empty()) return ToolError{ToolErrc::invalid_parameters, "cannot register a tool without a name"};
  // What a tool says about itself goes into every planning prompt as it is, and a plan names the
  // tool byte for byte: refused here, where the program that registers it learns why.
  const char* bad = !text::is_valid_utf8(name)                                           ? "name"
                    : !text::is_valid_utf8(tool->description())                          ? "description"
                    : !text::is_valid_utf8(json::serialize(tool->parameters_schema())) ? "parameters schema"
                                                                                         : nullptr;
  if (bad != nullptr) {
    return ToolError{ToolErrc::invalid_parameters,
                     "cannot register tool '" + text::valid_utf8(name) + "': its " + bad + " is not valid UTF-8"};
  }
  if (tools_.contains(name)) {
    return ToolError{ToolErrc::invalid_parameters, "tool '" + name + "' is already registered"};
  }
  // A schema valijson cannot compile (or that is not draft-07) would fail every step that uses
  // the tool; the program that registers it is the one to tell.
  if (auto problems = check_schema(tool->parameters_schema(), "$"); !problems.empty()) {
    return ToolError{ToolErrc::invalid_parameters,
                     "tool '" + name + "' declares an invalid parameter schema: " + problems.front()};
  }
  tools_.emplace(std::move(name), std::move(tool));
  return {};
}

const Tool* Registry::find(std::string_view name) const {
  const auto it = tools_.find(name);
  return it == tools_.end() ? nullptr : it->second.get();
}

std::shared_ptr<Tool> Registry::get(std::string_view name) const {
  const auto it = tools_.find(name);
  return it == tools_.end() ? nullptr : it->second;
}

std::vector<const Tool*> Registry::tools() const {
  std::vector<const Tool*> out;
  out.reserve(tools_.size());
  for (const auto& [name, tool] : tools_) out.push_back(tool.get());
  return out;
}

Registry make_builtin_registry(const std::vector<std::string>& enabled, BuiltinOptions options) {
  Registry registry;
  for (const auto& name : enabled) {
    if (registry.find(name) != nullptr) continue;
    if (auto tool = make_builtin(name, options)) (void)registry.add(std::move(tool));
  }
  return registry;
}

bool is_builtin_tool(std::string_view name) {
  return std::binary_search(k_builtin_names.begin(), k_builtin_names.end(), name);
}

std::vector<std::string_view> builtin_tool_names() { return {k_builtin_names.begin(), k_builtin_names.end()}; }

}  // namespace dagent::tools
