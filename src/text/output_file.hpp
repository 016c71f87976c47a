#pragma once
// Output files the user names (--trace, --metrics-file, dagent report -o): written whole or not
// at all.

#include <filesystem>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>

namespace dagent::text {

/// Writes `content` to `path` through a temporary file beside it (PATH.tmpPID), renamed over it,
/// so a reader never sees half a file; a device, pipe or terminal (/dev/stdout) is written in
/// place, since a rename would replace the node. Every step that can report a full disk is
/// checked (write, flush, close). The error is the system's reason; the caller names the file.
boost::system::result<void, std::string> write_output_file(const std::filesystem::path& path, std::string_view content);

}  // namespace dagent::text
