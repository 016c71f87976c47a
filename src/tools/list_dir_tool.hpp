#pragma once
// list_dir (SPEC.md §7): the entries of a folder.

#include <string_view>

#include <boost/json/object.hpp>

#include "dagent/tool.hpp"

namespace dagent::tools {

/// {path? = ".", recursive? = false} -> {entries: [{path, type: "file"|"dir", size}]} sorted by
/// path, paths relative to the workspace. Symlinked folders are listed but not descended into;
/// a symlink is shown with its target's type when the target is inside the workspace and left
/// out otherwise (also when dangling). Other file types (FIFOs, sockets, devices) are left out.
class ListDirTool final : public BlockingTool {
 public:
  std::string_view name() const override;
  std::string_view description() const override;
  const boost::json::object& parameters_schema() const override;
  ToolResult run(const boost::json::object& params, const ToolContext& ctx) override;
};

}  // namespace dagent::tools
