#pragma once
// The tools a run may call, by name.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

#include "dagent/tool.hpp"

namespace dagent::tools {

/// The tools available to a run, keyed by Tool::name(). Filled before the run, then only read.
class Registry {
 public:
  /// Adds `tool`; fails (invalid_parameters) when it is null, its name is taken, or its name,
  /// description or parameters schema is not valid UTF-8.
  boost::system::result<void, ToolError> add(std::shared_ptr<Tool> tool);

  /// The tool called `name`, or nullptr.
  const Tool* find(std::string_view name) const;

  /// The tool called `name` with shared ownership, or nullptr.
  std::shared_ptr<Tool> get(std::string_view name) const;

  /// Every tool, sorted by name.
  std::vector<const Tool*> tools() const;

  std::size_t size() const noexcept { return tools_.size(); }

 private:
  std::map<std::string, std::shared_ptr<Tool>, std::less<>> tools_;
};

/// The limits of the built-in file tools (config `tools.*`; the defaults are config's).
struct BuiltinOptions {
  std::uint64_t read_max_bytes = 1 << 20;          ///< read_file's default and largest max_bytes
  std::size_t search_max_line_bytes = 64 << 10;    ///< search_files looks at this much of a line
};

/// A registry with the built-in tools named in `enabled` (config `tools.enabled`) that this build
/// provides; other names are skipped, and a name given twice is added once.
Registry make_builtin_registry(const std::vector<std::string>& enabled, BuiltinOptions options = {});

/// Whether `name` is a built-in tool of SPEC.md §7 (provided by this build or not).
bool is_builtin_tool(std::string_view name);

/// The names of the built-in tools of SPEC.md §7, sorted.
std::vector<std::string_view> builtin_tool_names();

}  // namespace dagent::tools
