#pragma once
// search_files (SPEC.md §7): files by glob, optionally lines by text or regex.

#include <cstddef>
#include <string_view>

#include <boost/json/object.hpp>

#include "dagent/tool.hpp"

namespace dagent::tools {

/// {pattern, query?, regex? = false, max_results? = 100} -> {matches, count, truncated?}.
/// Without `query`: one {path} per regular file whose workspace-relative path matches the glob
/// (see GlobPattern). With `query`: one {path, line, text} per line (1-based, without its line
/// ending) holding the text, or matching the regex (Boost.Regex, ECMAScript syntax) when
/// `regex`; files with a NUL byte in their first 8 KiB are skipped as binary. Files are read in
/// bounded blocks and only the first `max_line_bytes` of a line (config
/// tools.search_max_line_bytes) are searched and returned, cut at a UTF-8 boundary, so a file
/// without newlines is never held whole. Files are visited in path order; at most `max_results`
/// matches are returned, and `truncated` is true when there were more.
class SearchFilesTool final : public BlockingTool {
 public:
  explicit SearchFilesTool(std::size_t max_line_bytes = 64 << 10);
  std::string_view name() const override;
  std::string_view description() const override;
  const boost::json::object& parameters_schema() const override;
  ToolResult run(const boost::json::object& params, const ToolContext& ctx) override;

 private:
  std::size_t max_line_bytes_;
};

}  // namespace dagent::tools
