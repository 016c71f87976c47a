#pragma once
// read_file (SPEC.md §7): a file's content.

#include <string_view>

#include <boost/json/object.hpp>

#include "dagent/tool.hpp"

namespace dagent::tools {

/// {path, max_bytes?} -> {path, content, bytes, truncated?}: the bytes of a regular file inside
/// the workspace, at most `max_bytes` of them; `truncated` is true when the file is longer.
class ReadFileTool final : public BlockingTool {
 public:
  std::string_view name() const override;
  std::string_view description() const override;
  const boost::json::object& parameters_schema() const override;
  ToolResult run(const boost::json::object& params, const ToolContext& ctx) override;
};

}  // namespace dagent::tools
