#pragma once
// Glob patterns over workspace-relative paths, for search_files.

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

#include "dagent/tool.hpp"

namespace dagent::tools {

/// A parsed glob: `*` (any characters), `?` (one character) and `[...]` (a class, `!` or `^`
/// negates, `a-z` ranges) within one name, `**` as a whole name for any number of folders.
/// A name starting with '.' is matched only by a pattern name starting with '.', and `**` does
/// not enter such folders. The pattern is split into a literal folder part (base) and the rest,
/// which is matched against paths relative to the base.
class GlobPattern {
 public:
  /// Parses `pattern`; refuses NUL bytes and absolute patterns (outside_workspace), empty ones,
  /// and `..` outside the literal folder part (invalid_parameters).
  static boost::system::result<GlobPattern, ToolError> parse(std::string_view pattern);

  /// The leading names without wildcards, joined with '/', or "." when there are none. Always
  /// leaves at least the last name to the rest. Not yet checked against the workspace.
  const std::string& base() const noexcept { return base_; }

  /// Whether a file whose path below the base has these names matches.
  bool matches(std::span<const std::string> names) const;

  /// Whether a folder whose path below the base has these names may hold matching files.
  bool may_match_below(std::span<const std::string> names) const;

  /// Whether one name matches one pattern name (no `**`, no '/').
  static bool match_name(std::string_view pattern, std::string_view name);

 private:
  GlobPattern(std::string base, std::vector<std::string> rest) : base_(std::move(base)), rest_(std::move(rest)) {}
  bool match_from(std::size_t index, std::span<const std::string> names, bool below) const;

  std::string base_;
  std::vector<std::string> rest_;
};

}  // namespace dagent::tools
