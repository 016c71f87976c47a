#pragma once
// What a run's tools may never write: config `tools.protected` and what is always protected.

#include <filesystem>

#include "config/config.hpp"
#include "dagent/workspace.hpp"

namespace dagent::tools {

/// The protection for a run under `cfg`: the config file, the prompt files (planner.prompts.*),
/// the memory folder (memory.path) and the recordings in use (`record_file`, `resume_file`, when
/// set) always; then each entry of tools.protected (`name/`: that name at any depth; otherwise a
/// path relative to the config file's folder, or absolute).
Protection protection_for(const config::Config& cfg, const std::filesystem::path& record_file,
                          const std::filesystem::path& resume_file);

}  // namespace dagent::tools
