#pragma once
// The tools as the planner's prompts show them, rendered once per set of registered tools.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace dagent::tools {
class Registry;
}

namespace dagent::planner {

/// One rendered tool.
struct CatalogEntry {
  std::string name;
  std::string summary;  ///< "name: description"
  std::string full;     ///< summary plus the parameter schema as compact JSON
};

/// Renders each registered tool for the prompts. With caching on (caching.tool_catalog), the
/// rendering is kept and reused until a hash of the tools (names, descriptions, schemas) changes.
class ToolCatalog {
 public:
  explicit ToolCatalog(bool cache) : cache_(cache) {}

  /// Every tool of `registry`, sorted by name.
  const std::vector<CatalogEntry>& entries(const tools::Registry& registry);

  /// The summaries of every entry, one per line (intent analysis).
  static std::string summaries(const std::vector<CatalogEntry>& entries);
  /// The full entries whose names are in `only` (all when empty), separated by blank lines.
  static std::string full(const std::vector<CatalogEntry>& entries, std::span<const std::string> only);

  /// How many times the entries were rendered (not served from the cache).
  int builds() const noexcept { return builds_; }

 private:
  bool cache_;
  bool valid_ = false;
  std::uint64_t hash_ = 0;
  std::vector<CatalogEntry> entries_;
  int builds_ = 0;
};

}  // namespace dagent::planner
