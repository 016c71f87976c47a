#pragma once
// Loading config.yaml and task files into typed structs, `--set` overrides, and the effective
// config as JSON. The only door to YAML: nothing outside src/config/ includes yaml-cpp.

#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include "config/config.hpp"
#include "config/problem.hpp"

namespace dagent::config {

/// Loads a config file (SPEC §4); missing keys keep their defaults. Fails with every problem found.
boost::system::result<Config, Problems> load_file(const std::filesystem::path& path);

/// Loads config YAML text; `file_label` names it in problems, `base_dir` resolves relative paths.
boost::system::result<Config, Problems> load_string(std::string_view yaml, std::string file_label,
                                                    std::filesystem::path base_dir);

/// Applies one `--set KEY=VALUE` (VALUE parsed as a YAML scalar or flow value) with the same
/// validation as the file; on a problem `cfg` is left unchanged for that key.
std::vector<Problem> apply_override(Config& cfg, std::string_view key_equals_value);

/// Applies several `--set` overrides in order, then checks the cross-field rules once, so that
/// related keys may be changed together. Returns every problem found.
std::vector<Problem> apply_overrides(Config& cfg, std::span<const std::string> keys_equal_values);

/// Loads a task file (SPEC §2); relative paths resolve against the task file's folder.
boost::system::result<Task, Problems> load_task_file(const std::filesystem::path& path);

/// Reads a task sent over the network (a service's request body: the task file's fields as JSON
/// or YAML, SPEC §2), with the same problems as a task file, named `label:LINE: key: ...`. It
/// names nothing of the host's: `workspace` and a plan given as a file name are refused, and its
/// tools run in `workspace` (absolute). `name` is its name unless it gives one.
boost::system::result<Task, Problems> load_task_text(std::string_view text, std::string_view label,
                                                     std::string name, const std::filesystem::path& workspace);

/// Where a task without a workspace of its own runs its tools: `tools.workspace` against the
/// config file's folder.
std::filesystem::path default_workspace(const Config& cfg);

/// Resolves a task argument: an existing file is loaded as a task file, otherwise `arg` is looked
/// up among `cfg.tasks`; a problem lists the configured names when neither matches.
boost::system::result<Task, Problems> find_task(std::string_view arg, const Config& cfg);

/// The effective config as JSON nested like the YAML, without `tasks`; stable key order.
boost::json::object to_json(const Config& cfg);

/// The config spelling of a scheduling mode: "eager" or "levels".
std::string_view to_string(Scheduling scheduling);

/// The config spelling of an index kind: "flat" or "hnsw".
std::string_view to_string(IndexKind index);

}  // namespace dagent::config
