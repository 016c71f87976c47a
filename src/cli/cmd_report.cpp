// `dagent report RUN_ID|RESULT.json [-o FILE]`: a run as one self-contained HTML page (README
// "Run report"). The page goes to FILE, or to stdout without -o (or with `-o -`).

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <boost/json/parse.hpp>

#include "cli/commands.hpp"
#include "cli/terminal_out.hpp"
#include "config/config.hpp"
#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"
#include "history/history_store.hpp"
#include "report/report.hpp"
#include "text/output_file.hpp"

namespace dagent::cli {

namespace {

namespace json = boost::json;

// A result file larger than this is refused: results keep outputs bounded, so it is no result.
constexpr std::uintmax_t k_max_result_bytes = 256u << 20;

struct Loaded {
  json::object result;
  std::string source;  // "file 'x.json'" or "run ID", for messages
  std::string goal;    // from the history; a result file has none
};

// The result in `path`; the error names the file. Exit code 2 for every failure: bad input.
std::optional<Loaded> load_file(const std::filesystem::path& path) {
  const std::string name = "'" + path.string() + "'";
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) {
    print_safe(stderr, "dagent: report: cannot read %s: %s\n", name.c_str(), ec.message().c_str());
    return std::nullopt;
  }
  if (size > k_max_result_bytes) {
    print_safe(stderr, "dagent: report: %s is %ju bytes, larger than a result can be (%ju)\n", name.c_str(), size,
               k_max_result_bytes);
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) {
    print_safe(stderr, "dagent: report: cannot read %s\n", name.c_str());
    return std::nullopt;
  }
  auto value = json::parse(text.str(), ec);
  if (ec) {
    print_safe(stderr, "dagent: report: %s is not JSON: %s\n", name.c_str(), ec.message().c_str());
    return std::nullopt;
  }
  if (!value.is_object()) {
    print_safe(stderr, "dagent: report: %s is not a dagent run result (a JSON object, as `dagent run --json` prints)\n",
               name.c_str());
    return std::nullopt;
  }
  return Loaded{std::move(value.get_object()), "file " + name, {}};
}

// The stored result of run `id`; on failure prints why and sets `code`.
std::optional<Loaded> load_run(const std::string& id, const Options& options, int& code) {
  code = 2;
  auto runtime = load_runtime(options);
  if (!runtime) return std::nullopt;
  const auto& cfg = runtime::config_of(*runtime);
  const auto path = history::database_path(cfg.history.path, cfg.base_dir);
  if (path.empty()) {
    print_safe(stderr, "dagent: history: no state folder (neither XDG_STATE_HOME nor HOME is set); set history.path\n");
    return std::nullopt;
  }
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    print_safe(stderr, "dagent: report: '%s' is neither a file nor a stored run: no run history yet (%s does not exist)\n",
               id.c_str(), path.c_str());
    return std::nullopt;
  }
  auto store = history::HistoryStore::open(path);
  if (!store) {
    print_safe(stderr, "dagent: history: %s\n", store.error().message.c_str());
    code = 1;
    return std::nullopt;
  }
  auto record = store->show(id);
  if (!record) {
    if (record.error().code == history::HistoryErrc::not_found)
      print_safe(stderr, "dagent: report: '%s' is neither a file nor a run in the history (%s)\n", id.c_str(),
                 path.c_str());
    else
      print_safe(stderr, "dagent: %s\n", record.error().message.c_str());
    code = record.error().code == history::HistoryErrc::not_found ? 2 : 1;
    return std::nullopt;
  }
  auto value = json::parse(record->result_json, ec);
  if (ec || !value.is_object()) {
    print_safe(stderr, "dagent: history: the stored result of run %s is not a JSON object\n", id.c_str());
    code = 1;
    return std::nullopt;
  }
  return Loaded{std::move(value.get_object()), "run " + id, record->run.goal};
}

// Writes `page` to `path` whole (a temporary file renamed over it; a device in place).
bool write_page(const std::filesystem::path& path, const std::string& page) {
  if (auto written = text::write_output_file(path, page); !written) {
    print_safe(stderr, "dagent: report: cannot write '%s': %s\n", path.c_str(), written.error().c_str());
    return false;
  }
  return true;
}

}  // namespace

int report_command(const Options& options) {
  if (options.args.size() != 1) {
    print_safe(stderr, "dagent: report takes one RUN_ID or result JSON file (dagent report ID -o report.html)\n");
    return 2;
  }
  const std::string& arg = options.args[0];
  std::error_code ec;
  std::optional<Loaded> loaded;
  int code = 2;
  // A run id has neither a slash nor an extension: anything shaped like a path is a file.
  const bool path_like = arg.find('/') != std::string::npos || arg.find('.') != std::string::npos;
  if (std::filesystem::exists(arg, ec) || path_like) loaded = load_file(arg);
  else loaded = load_run(arg, options, code);
  if (!loaded) return code;

  auto page = report::render_report(loaded->result, {.goal = loaded->goal});
  if (!page) {
    print_safe(stderr, "dagent: report: %s: %s\n", loaded->source.c_str(), page.error().c_str());
    return 2;
  }
  if (!options.output || *options.output == "-") {
    std::fwrite(page->data(), 1, page->size(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  if (!write_page(*options.output, *page)) return 1;
  if (options.verbosity >= 0)
    print_safe(stderr, "dagent: report of %s written to %s (%zu KiB)\n", loaded->source.c_str(),
               options.output->c_str(), (page->size() + 1023) / 1024);
  return 0;
}

}  // namespace dagent::cli
