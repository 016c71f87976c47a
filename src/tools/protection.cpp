// protection_for: the paths a run's tools never write.

#include "tools/protection.hpp"

#include <string>
#include <string_view>
#include <utility>

namespace dagent::tools {

namespace {

namespace fs = std::filesystem;

// `name/` with no other `/`: a name protected at any depth.
bool is_bare_name(std::string_view entry) {
  if (!entry.ends_with('/')) return false;
  entry.remove_suffix(1);
  return !entry.empty() && entry.find('/') == std::string_view::npos && entry != "." && entry != "..";
}

}  // namespace

Protection protection_for(const config::Config& cfg, const fs::path& record_file, const fs::path& resume_file) {
  Protection out;
  const auto add = [&](const fs::path& path, std::string rule) {
    if (!path.empty()) out.paths.push_back({path.is_absolute() ? path : cfg.base_dir / path, std::move(rule)});
  };
  if (cfg.source != "<defaults>") out.paths.push_back({fs::path(cfg.source), "the config file"});
  const auto& prompts = cfg.planner.prompts;
  for (const auto& [key, file] : {std::pair<std::string_view, const std::string*>{"intent", &prompts.intent},
                                  {"plan", &prompts.plan},
                                  {"repair", &prompts.repair},
                                  {"replan", &prompts.replan},
                                  {"answer", &prompts.answer}}) {
    if (!file->empty()) add(*file, "the prompt file planner.prompts." + std::string(key));
  }
  add(cfg.memory.path, "the memory folder (memory.path)");
  // Recordings are named on the command line: relative to the current folder.
  if (!record_file.empty()) out.paths.push_back({record_file, "the recording in use"});
  if (!resume_file.empty()) out.paths.push_back({resume_file, "the recording in use"});
  for (const auto& entry : cfg.tools.protected_paths) {
    if (is_bare_name(entry)) {
      out.names.push_back(entry.substr(0, entry.size() - 1));
    } else {
      add(entry, "'" + entry + "'");
    }
  }
  return out;
}

}  // namespace dagent::tools
