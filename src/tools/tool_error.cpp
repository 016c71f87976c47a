// The tool error category and the helpers declared beside ToolErrc in dagent/tool.hpp.

#include "dagent/tool.hpp"

#include <string>
#include <utility>

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

namespace dagent {
namespace {

class ToolCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "dagent.tool"; }

  std::string message(int ev) const override {
    switch (static_cast<ToolErrc>(ev)) {
      case ToolErrc::invalid_parameters: return "invalid tool parameters";
      case ToolErrc::outside_workspace: return "path is outside the workspace";
      case ToolErrc::not_found: return "file or folder not found";
      case ToolErrc::io_error: return "file system error";
      case ToolErrc::timed_out: return "tool call timed out";
      case ToolErrc::cancelled: return "tool call cancelled";
      case ToolErrc::failed: return "tool call failed";
      case ToolErrc::unavailable: return "service unavailable";
    }
    return "unknown tool error";
  }
};

}  // namespace

const boost::system::error_category& tool_category() noexcept {
  static const ToolCategory category;
  return category;
}

boost::system::error_code make_error_code(ToolErrc e) noexcept { return {static_cast<int>(e), tool_category()}; }

void throw_exception_from_error(const ToolError& e, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(e.code, e.message), loc);
}

ToolResult tool_error(ToolErrc code, std::string message) {
  return ToolError{make_error_code(code), std::move(message)};
}

}  // namespace dagent
