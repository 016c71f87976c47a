#pragma once
// write_file (SPEC.md §7): writes or appends to a file.

#include <string_view>

#include <boost/json/object.hpp>

#include "dagent/tool.hpp"

namespace dagent::tools {

/// {path, content, append? = false} -> {path, bytes}: writes `content` to a file inside the
/// workspace, creating parent folders there. Without `append` the file is replaced atomically
/// (a temporary file in the same folder, then rename), so a failure never leaves half a file.
class WriteFileTool final : public BlockingTool {
 public:
  std::string_view name() const override;
  std::string_view description() const override;
  const boost::json::object& parameters_schema() const override;
  ToolResult run(const boost::json::object& params, const ToolContext& ctx) override;
};

}  // namespace dagent::tools
