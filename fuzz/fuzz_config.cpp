// The config loader (src/config/loader), for both config files and task files: the same YAML is
// loaded by load_string as a config and, written to a file, by load_task_file as a task. Checks
// that loading never throws, that every problem names the file, that a loaded config's effective
// JSON (to_json) loads back to the same config, and that the text a task carries into prompts,
// recordings and --json output is valid UTF-8. The same text is also a task sent to `dagent
// serve` (load_task_text): it never names anything of the host's (its workspace is the one given,
// it has no plan file).

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <boost/json/serialize.hpp>

#include "check.hpp"
#include "config/loader.hpp"
#include "text/utf8.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace dagent::config;

using dagent::fuzz::check;
using dagent::fuzz::check_utf8;

const fs::path& scratch() { return dagent::fuzz::scratch_dir("config"); }

// Serialization copies string and key bytes as they are (only ASCII is escaped), so the text is
// valid UTF-8 exactly when every string and key is.
bool valid_json_text(const json::value& v) { return dagent::text::is_valid_utf8(json::serialize(v)); }

void check_problems(const Problems& problems, std::string_view file) {
  check(!problems.items.empty(), "a failed load without a problem");
  for (const auto& p : problems.items) {
    check(p.file == file, "a problem that does not name the file");
    check(p.line >= 0, "a negative line");
    check(!p.message.empty(), "a problem without a message");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);

  auto loaded = load_string(yaml, "fuzz.yaml", scratch());
  if (!loaded) {
    check_problems(loaded.error(), "fuzz.yaml");
  } else {
    const json::object effective = to_json(*loaded);
    check_utf8(valid_json_text(effective), "the effective config is not valid UTF-8");
    // JSON is YAML: the effective config reads back as itself.
    auto again = load_string(json::serialize(effective), "effective.yaml", scratch());
    if (!again) {
      std::fprintf(stderr, "%s\n%s", json::serialize(effective).c_str(), again.error().to_string().c_str());
    }
    check(again.has_value(), "the effective config does not load back");
    check(to_json(*again) == effective, "the effective config loads back as another config");
    for (const auto& [name, task] : loaded->tasks) {
      check_utf8(dagent::text::is_valid_utf8(name) && dagent::text::is_valid_utf8(task.goal), "a task name or goal is not UTF-8");
      check_utf8(valid_json_text(task.inputs), "task inputs are not valid UTF-8");
    }
  }

  const fs::path file = scratch() / "task.yaml";
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(yaml.data(), static_cast<std::streamsize>(yaml.size()));
  }
  auto task = load_task_file(file);
  if (!task) {
    check_problems(task.error(), file.string());
  } else {
    check_utf8(dagent::text::is_valid_utf8(task->name) && dagent::text::is_valid_utf8(task->goal), "a task name or goal is not UTF-8");
    check_utf8(valid_json_text(task->inputs), "task inputs are not valid UTF-8");
    if (task->plan) check_utf8(valid_json_text(*task->plan), "a task's plan is not valid UTF-8");
  }

  const fs::path service_workspace = scratch() / "service-ws";
  auto remote = load_task_text(yaml, "request", "request", service_workspace);
  if (!remote) {
    check_problems(remote.error(), "request");
  } else {
    check(remote->workspace == service_workspace, "a request's task chose its workspace");
    check(remote->plan_file.empty(), "a request's task read a plan file");
    check_utf8(dagent::text::is_valid_utf8(remote->name) && dagent::text::is_valid_utf8(remote->goal), "a request's name or goal is not UTF-8");
  }
  return 0;
}
