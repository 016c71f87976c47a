#pragma once
// read_file (SPEC.md §7): a file's content.

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "dagent/tool.hpp"

namespace dagent::tools {

/// {path, max_bytes?} -> {path, content, bytes, truncated?}: the bytes of a regular file inside
/// the workspace, at most `max_bytes` of them and never more than the tool's cap (config
/// tools.read_max_bytes, also the default); `truncated` is true when the file is longer.
class ReadFileTool final : public BlockingTool {
 public:
  explicit ReadFileTool(std::uint64_t max_bytes = 1 << 20);
  std::string_view name() const override;
  std::string_view description() const override;
  const boost::json::object& parameters_schema() const override;
  ToolResult run(const boost::json::object& params, const ToolContext& ctx) override;

 private:
  std::uint64_t max_bytes_;
};

}  // namespace dagent::tools
