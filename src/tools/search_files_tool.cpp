// search_files: finds workspace files by glob and, given a query, the lines that hold it.

#include "tools/search_files_tool.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/regex.hpp>

#include <fcntl.h>
#include <sys/stat.h>

#include "dagent/workspace.hpp"
#include "text/utf8.hpp"
#include "tools/file_handle.hpp"
#include "tools/glob_pattern.hpp"
#include "tools/json_schema.hpp"

namespace dagent::tools {
namespace {

namespace json = boost::json;

constexpr std::string_view k_name = "search_files";
constexpr std::size_t k_chunk_bytes = 64 * 1024;
constexpr std::size_t k_binary_probe_bytes = 8 * 1024;
constexpr std::uint64_t k_default_max_results = 100;

constexpr std::string_view k_description =
    "Find files inside the workspace whose relative path matches a glob pattern: * and ? within a "
    "name, [abc] classes, ** for any number of folders (e.g. \"docs/**/*.md\"); names starting with "
    "'.' match only a pattern name starting with '.'. Without query, returns one match {\"path\"} "
    "per file. With query, returns one match {\"path\", \"line\", \"text\"} per line containing the "
    "query (an ECMAScript-style regular expression when regex is true); binary files are skipped. "
    "Returns {\"matches\", \"count\"} with at most max_results matches and \"truncated\": true when "
    "there were more.";

constexpr std::string_view k_schema = R"({
  "type": "object",
  "properties": {
    "pattern": {"type": "string", "minLength": 1, "description": "glob relative to the workspace, ** allowed"},
    "query": {"type": "string", "minLength": 1, "description": "text to find in the matching files"},
    "regex": {"type": "boolean", "default": false, "description": "treat query as an ECMAScript regular expression"},
    "max_results": {"type": "integer", "minimum": 1, "default": 100, "description": "most matches to return"}
  },
  "required": ["pattern"],
  "additionalProperties": false
})";

struct Candidate {
  std::string path;      // as shown: relative to the workspace, valid UTF-8
  std::string relative;  // what to open beneath the workspace: the raw names
};

// Boost.Regex rather than std::regex: libstdc++'s matcher recurses once per character and
// overflows the stack on long lines (`.*x` against a 100 KB minified line crashes the process),
// where Boost's throws. Its ECMAScript (Perl) syntax is a superset of what plans use.
struct Query {
  std::string text;
  std::optional<boost::regex> regex;

  // Throws std::runtime_error when the regex is too complex for the line.
  bool matches(std::string_view line) const {
    if (regex) return boost::regex_search(line.begin(), line.end(), *regex);
    return line.find(text) != std::string_view::npos;
  }
};

ToolError cancelled() { return ToolError{ToolErrc::cancelled, "search_files: cancelled"}; }

// How `relative` is shown: a name that is not UTF-8 with U+FFFD (it then names the file for
// people, not for another call).
std::string shown_name(std::string_view relative) {
  std::string shown(relative);
  text::make_valid_utf8(shown);
  return shown;
}

// Adds the matching files below `folder` (open beneath the workspace; `relative` from the root),
// whose names below the pattern's base are `names`. Subfolders are opened by name beneath the
// workspace without following symlinks, so one swapped for a symlink is skipped. Unreadable
// folders are skipped.
boost::system::result<void, ToolError> collect(const Workspace& workspace, const GlobPattern& glob,
                                               const UniqueFd& folder, const std::string& relative,
                                               std::vector<std::string>& names, std::vector<Candidate>& found,
                                               const ToolContext& ctx) {
  auto reader = DirReader::open(folder, relative);
  if (!reader) return {};
  int err = 0;
  while (const char* name = reader->next(err)) {
    if (ctx.is_cancelled()) return cancelled();
    struct stat info {};
    if (::fstatat(reader->fd(), name, &info, AT_SYMLINK_NOFOLLOW) != 0) continue;
    names.emplace_back(name);
    std::string path = join_relative(relative, name);
    if (S_ISDIR(info.st_mode)) {
      if (glob.may_match_below(names)) {
        if (auto below = workspace.open_folder_nofollow(path)) {
          if (auto more = collect(workspace, glob, *below, path, names, found, ctx); !more) return more;
        }
      }
    } else if (S_ISREG(info.st_mode)) {
      if (glob.matches(names)) found.push_back({shown_name(path), std::move(path)});
    } else if (S_ISLNK(info.st_mode) && glob.matches(names)) {
      // Symlinked files count when they lead to a regular file inside; symlinked folders are not entered.
      auto target = workspace.open_existing(path, O_PATH);
      struct stat target_info {};
      if (target && ::fstat(target->fd.get(), &target_info) == 0 && S_ISREG(target_info.st_mode))
        found.push_back({shown_name(path), std::move(path)});
    }
    names.pop_back();
  }
  return {};
}

// The longest prefix of `text` that does not end inside a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view text) {
  std::size_t end = text.size();
  std::size_t back = 0;  // continuation bytes at the end
  while (back < end && back < 3 && (static_cast<unsigned char>(text[end - 1 - back]) & 0xC0) == 0x80) ++back;
  if (back == end) return text;
  const auto lead = static_cast<unsigned char>(text[end - 1 - back]);
  const std::size_t need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
  return need > back ? text.substr(0, end - 1 - back) : text;
}

// Reads `file` line by line in blocks, keeping at most `max_line` bytes of each line.
struct LineScan {
  const Candidate& file;
  const Query& query;
  std::size_t limit;
  std::size_t max_line;
  json::array& matches;
  std::string line;        // the current line's first bytes, at most max_line of them
  bool cut = false;        // the current line is longer than `line`
  std::uint64_t number = 0;

  // Takes `data`; false once `matches` is full. Throws std::runtime_error from a regex.
  bool take(std::string_view data) {
    std::size_t pos = 0;
    while (pos < data.size()) {
      const std::size_t newline = data.find('\n', pos);
      const std::size_t end = newline == std::string_view::npos ? data.size() : newline;
      const std::size_t room = max_line - line.size();
      const std::size_t take = std::min(room, end - pos);
      line.append(data.substr(pos, take));
      if (take < end - pos) cut = true;
      if (newline == std::string_view::npos) break;
      if (!finish_line()) return false;
      pos = newline + 1;
    }
    return true;
  }

  bool finish_line() {
    ++number;
    std::string_view text = line;
    if (cut) text = utf8_prefix(text);
    else if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    const bool hit = query.matches(text);
    if (hit) {
      json::object match;
      match["path"] = file.path;
      match["line"] = number;
      // Matched on the file's bytes, shown as valid UTF-8: a Latin-1 line keeps its ASCII.
      match["text"] = text::valid_utf8(text);
      matches.push_back(std::move(match));
    }
    line.clear();
    cut = false;
    return matches.size() < limit;
  }
};

// Appends the lines of `file` that match `query` until `matches` holds `limit` entries. Binary
// and unreadable files add nothing. Holds one block and at most `max_line` bytes of a line.
boost::system::result<void, ToolError> scan_file(const Workspace& workspace, const Candidate& file, const Query& query, std::size_t limit,
                                                 std::size_t max_line, json::array& matches, const ToolContext& ctx) {
  // Opened again beneath the workspace: a file swapped for a symlink since the walk can only lead
  // inside. Files with more than one hard link are skipped like unreadable ones.
  std::string shown;
  auto handle = FileHandle::open_regular(workspace, file.relative, shown);
  if (!handle) return {};
  LineScan scan{file, query, limit, max_line, matches, {}, false, 0};
  std::string block(k_chunk_bytes, '\0');
  std::string head;  // the first bytes, until the binary probe is decided
  bool probed = false;
  try {
    for (;;) {
      if (ctx.is_cancelled()) return cancelled();
      auto n = handle->read_some(std::span<char>(block.data(), block.size()), file.path);
      if (!n) return {};
      const bool at_end = *n == 0;
      std::string_view data(block.data(), *n);
      if (!probed) {
        head.append(data);
        if (head.size() < k_binary_probe_bytes && !at_end) continue;
        probed = true;
        if (std::memchr(head.data(), '\0', std::min(head.size(), k_binary_probe_bytes)) != nullptr) return {};
        data = head;
      }
      if (!scan.take(data)) return {};
      head.clear();
      if (at_end) {
        if (!scan.line.empty() || scan.cut) scan.finish_line();  // the last line has no newline
        return {};
      }
    }
  } catch (const std::runtime_error& e) {
    return ToolError{ToolErrc::failed, "regex '" + query.text + "' failed on line " + std::to_string(scan.number) +
                                           " of '" + file.path + "': " + e.what()};
  }
}

}  // namespace

SearchFilesTool::SearchFilesTool(std::size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {}

std::string_view SearchFilesTool::name() const { return k_name; }

std::string_view SearchFilesTool::description() const { return k_description; }

const json::object& SearchFilesTool::parameters_schema() const {
  static const json::object schema = json::parse(k_schema).as_object();
  return schema;
}

ToolResult SearchFilesTool::run(const json::object& params, const ToolContext& ctx) {
  if (auto checked = check_parameters(params, parameters_schema()); !checked) return checked.error();
  if (ctx.workspace == nullptr) return tool_error(ToolErrc::failed, "search_files: no workspace is configured");
  const Workspace& workspace = *ctx.workspace;

  auto glob = GlobPattern::parse(params.at("pattern").get_string());
  if (!glob) return glob.error();
  std::uint64_t max_results = k_default_max_results;
  if (const auto* max = params.if_contains("max_results")) max_results = max->to_number<std::uint64_t>();
  std::optional<Query> query;
  if (const auto* text = params.if_contains("query")) {
    query.emplace();
    query->text = text->get_string();
    const auto* regex = params.if_contains("regex");
    if (regex != nullptr && regex->get_bool()) {
      try {
        query->regex.emplace(query->text, boost::regex::ECMAScript);
      } catch (const boost::regex_error& e) {
        return tool_error(ToolErrc::invalid_parameters, "invalid regex '" + query->text + "': " + e.what());
      }
    }
  }

  json::object out;
  json::array matches;
  bool truncated = false;
  std::vector<Candidate> found;
  // A missing base folder means no match; one that leads outside is an error.
  if (auto base = workspace.open_existing(glob->base(), O_PATH)) {
    struct stat info {};
    if (::fstat(base->fd.get(), &info) == 0 && S_ISDIR(info.st_mode)) {
      std::vector<std::string> names;
      if (auto collected = collect(workspace, *glob, base->fd, workspace.display(base->real), names, found, ctx);
          !collected)
        return collected.error();
    }
  } else if (base.error().code != ToolErrc::not_found) {
    return ToolError{base.error().code,
                     "pattern '" + std::string(params.at("pattern").get_string()) + "': " + base.error().message};
  }
  std::sort(found.begin(), found.end(), [](const Candidate& a, const Candidate& b) { return a.path < b.path; });

  // One more than asked for, to know whether the result was cut.
  const std::size_t limit = static_cast<std::size_t>(std::min<std::uint64_t>(max_results, std::uint64_t{1} << 32)) + 1;
  if (query) {
    for (const auto& file : found) {
      if (auto scanned = scan_file(workspace, file, *query, limit, max_line_bytes_, matches, ctx); !scanned)
        return scanned.error();
      if (matches.size() >= limit) break;
    }
  } else {
    for (auto& file : found) {
      if (matches.size() >= limit) break;
      json::object match;
      match["path"] = std::move(file.path);
      matches.push_back(std::move(match));
    }
  }
  if (matches.size() >= limit) {
    matches.pop_back();
    truncated = true;
  }
  const std::size_t count = matches.size();
  out["matches"] = std::move(matches);
  out["count"] = count;
  if (truncated) out["truncated"] = true;
  return json::value(std::move(out));
}

}  // namespace dagent::tools
