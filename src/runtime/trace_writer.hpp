#pragma once
// Chrome trace-event JSON of a run (opens in Perfetto or chrome://tracing).

#include <filesystem>
#include <string>

#include <boost/system/result.hpp>

#include "executor/run_types.hpp"

namespace dagent::runtime {

/// Writes one complete span per step that ran (per item for a for_each step), on one track per
/// concurrency slot.
boost::system::result<void, std::string> write_trace(const executor::RunResult& result, const std::filesystem::path& path);

}  // namespace dagent::runtime
