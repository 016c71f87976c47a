#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <boost/json/serialize.hpp>

#include "cli/terminal_out.hpp"
#include "cli/commands.hpp"
#include "config/loader.hpp"
#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"
#include "record/recording.hpp"
#include "runtime/resume.hpp"

namespace dagent::cli {

namespace {

void print(const std::vector<std::string>& problems) {
  for (const auto& p : problems) print_safe(stderr, "%s\n", p.c_str());
  print_safe(stderr, "dagent: %zu configuration problem%s\n", problems.size(), problems.size() == 1 ? "" : "s");
}

// A replay runs with the configuration its recording was made with (the config file as it was,
// with the run's --set overrides): the recording's effective config over the config file it names
// (or the usual one), which still provides the tasks and the folder relative paths resolve in.
// Empty when the recording carries no effective config (an older recording).
std::optional<std::variant<config::Config, std::vector<std::string>>> recorded_config(
    const Options& options, const std::filesystem::path& base_file) {
  auto header = record::read_header(options.replay_file);
  if (!header) return std::nullopt;  // the run reports the unreadable recording
  const auto* effective = header->if_contains("effective_config");
  if (!effective || !effective->is_object()) return std::nullopt;
  config::Config base;
  if (!base_file.empty()) {
    auto loaded = config::load_file(base_file);
    if (!loaded) return loaded.error().lines();
    base = std::move(*loaded);
  }
  // Keys added after a recording was made take the behaviour the recording had, not today's
  // default: a recording without planner.intent_mode ran its intent call before the plan call.
  boost::json::object recorded = effective->get_object();
  if (auto* planner = recorded.if_contains("planner"); planner && planner->is_object() &&
                                                       !planner->get_object().contains("intent_mode"))
    planner->get_object()["intent_mode"] = "sequential";
  // JSON is YAML: the recorded config goes through the same loader and checks as a file.
  auto cfg = config::load_string(boost::json::serialize(recorded),
                                 options.replay_file.string() + " (recorded config)", base.base_dir);
  if (!cfg) return cfg.error().lines();
  cfg->tasks = std::move(base.tasks);
  cfg->base_dir = base.base_dir;
  cfg->source = base.source;
  auto problems = config::apply_overrides(*cfg, options.overrides);
  if (!problems.empty()) return config::Problems{std::move(problems)}.lines();
  return std::move(*cfg);
}

// The config file a recording names (relative to the recording's folder), when it exists; a file
// outside that folder is refused (*refused set): only --config may name one (issue 13).
std::optional<std::filesystem::path> recorded_config_file(const std::filesystem::path& recording, std::string* refused) {
  auto header = record::read_header(recording);
  if (!header) return std::nullopt;
  const auto* c = header->if_contains("config");
  if (!c || !c->is_string()) return std::nullopt;
  return runtime::recorded_file(recording, "config", std::string_view(c->get_string()), refused);
}

}  // namespace

std::unique_ptr<Runtime> load_runtime(const Options& options) {
  auto given = options;
  if (!options.replay_file.empty() && !options.config) {  // the recorded run's config, unless --config says otherwise
    std::string refused;
    auto file = recorded_config_file(options.replay_file, &refused);
    if (!refused.empty()) {
      std::fprintf(stderr, "dagent: %s\n", refused.c_str());
      return nullptr;
    }
    if (file) given.config = file;
    std::filesystem::path base_file;
    if (auto path = config_path(given); std::holds_alternative<std::filesystem::path>(path))
      base_file = std::get<std::filesystem::path>(path);
    if (auto recorded = recorded_config(given, base_file)) {
      if (auto* problems = std::get_if<std::vector<std::string>>(&*recorded)) {
        print(*problems);
        return nullptr;
      }
      return std::make_unique<Runtime>(runtime::make_runtime(std::move(std::get<config::Config>(*recorded))));
    }
  }
  auto path = config_path(given);
  if (auto* error = std::get_if<std::string>(&path)) {
    print_safe(stderr, "dagent: %s\n", error->c_str());
    return nullptr;
  }
  auto loaded = Runtime::load(std::get<std::filesystem::path>(path), given.overrides);
  if (auto* problems = std::get_if<std::vector<std::string>>(&loaded)) {
    print(*problems);
    return nullptr;
  }
  return std::make_unique<Runtime>(std::move(std::get<Runtime>(loaded)));
}

}  // namespace dagent::cli
