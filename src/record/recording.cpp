#include "record/recording.hpp"

#include <fcntl.h>  // AT_FDCWD
#include <stdio.h>  // renameat2, RENAME_NOREPLACE (glibc, _GNU_SOURCE)
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <simdjson.h>

#include "text/simdjson_boost.hpp"
#include "text/utf8.hpp"

namespace dagent::record {

namespace json = boost::json;

namespace {

std::string os_error(std::string_view what, const std::filesystem::path& path) {
  return std::string(what) + " " + path.string() + ": " + std::strerror(errno);
}

// Lines are parsed with simdjson, not Boost.JSON: Boost 1.81's parser can be one unit in the last
// place off on doubles, and a recorded temperature or vector must come back bit for bit (a
// temperature that drifted would change the request's fingerprint).
// The line as an object, or why it is not one.
boost::system::result<json::object, std::string> parse_line(simdjson::dom::parser& parser, std::string_view line) {
  // Recordings made before text was repaired on the way in can hold bytes that are not UTF-8;
  // they read back as U+FFFD, as the run that recorded them would now have seen them. Line by
  // line, so offsets (a resume cuts the file at intact_bytes) stay those of the file.
  std::string repaired;
  if (!text::is_valid_utf8(line)) line = repaired = text::valid_utf8(line);
  simdjson::dom::element root;
  if (auto e = parser.parse(line.data(), line.size()).get(root)) return std::string(simdjson::error_message(e));
  if (root.type() != simdjson::dom::element_type::OBJECT) return std::string("a JSON value that is not an object");
  return std::move(text::to_boost_json(root).as_object());
}

std::string clip(std::string_view line) {
  constexpr std::size_t k_max = 60;
  std::string out = text::valid_utf8(line.substr(0, text::utf8_cut(line, k_max)));
  return line.size() <= k_max ? out : out + "…";
}

// Why the first line, which did not parse, is not a header: a line that starts as one is a
// corrupt header (say so, with the parser's reason); anything else is not a recording at all.
std::string first_line_problem(std::string_view line, const std::string& parse_error, const std::string& where) {
  const std::size_t start = line.find_first_not_of(" \t");
  if (start != std::string_view::npos && line.substr(start).starts_with(R"({"type":"header")"))
    return where + ": the header line is corrupt (" + parse_error + "): " + clip(line);
  return where + ": not a recording: the first line must be the header, got " + clip(line);
}

// The file's bytes; the error names it. Both alternatives are strings, hence the in_place tags.
boost::system::result<std::string, std::string> read_file(const std::filesystem::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) return {boost::system::in_place_error, os_error("cannot open recording", path)};
  std::string bytes;
  char buffer[1 << 16];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0) bytes.append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  const int saved = errno;
  std::fclose(file);
  errno = saved;
  if (failed) return {boost::system::in_place_error, os_error("cannot read recording", path)};
  return {boost::system::in_place_value, std::move(bytes)};
}

// Why `line` (the first line, at `where`, parsed) is not a recording's header, or nothing when it is one.
std::optional<std::string> header_problem(const json::object& parsed, std::string_view line, const std::string& where) {
  const json::value* type = parsed.if_contains("type");
  if (!type || *type != "header") return where + ": not a recording: the first line must be the header, got " + clip(line);
  const json::value* format = parsed.if_contains("format");
  if (!format || !format->is_int64() || format->get_int64() != k_format_version)
    return where + ": unsupported recording format " + (format ? json::serialize(*format) : std::string("(none)")) +
           " (this dagent reads format " + std::to_string(k_format_version) + ")";
  return std::nullopt;
}

// Moves `from` to `to`: over an existing file when `replace`, else only if nothing is at `to`,
// checked by the kernel in the same step (a file that appeared since the caller looked is kept).
// 0 or an errno value.
int move_into_place(const std::filesystem::path& from, const std::filesystem::path& to, bool replace) {
  if (replace) return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  // A file system without RENAME_NOREPLACE: a hard link fails the same way on an existing name.
  if (::link(from.c_str(), to.c_str()) != 0) return errno;
  ::unlink(from.c_str());
  return 0;
}

}  // namespace

boost::system::result<RecordWriter, std::string> RecordWriter::open(const std::filesystem::path& path, bool append, bool replace) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  // A device or pipe (/dev/stdout) is written in place: a rename would replace the node itself.
  if (append || std::filesystem::is_character_file(status) || std::filesystem::is_fifo(status)) {
    std::FILE* file = std::fopen(path.c_str(), append ? "a" : "w");
    if (!file) return os_error("cannot open recording", path);
    return RecordWriter(file, path, {}, replace);
  }
  // In the target's folder, so the rename on the first event stays on one file system.
  auto pending = path;
  pending += ".XXXXXX";
  std::string name = pending.string();
  const int fd = ::mkstemp(name.data());
  if (fd < 0) return os_error("cannot open recording", path);
  std::FILE* file = ::fdopen(fd, "w");
  if (!file) {
    const int saved = errno;
    ::close(fd);
    ::unlink(name.c_str());
    errno = saved;
    return os_error("cannot open recording", path);
  }
  return RecordWriter(file, path, name, replace);
}

RecordWriter::RecordWriter(RecordWriter&& other) noexcept
    : file_(std::exchange(other.file_, nullptr)),
      path_(std::move(other.path_)),
      pending_(std::exchange(other.pending_, {})),
      error_(std::move(other.error_)),
      replace_(other.replace_) {}

RecordWriter& RecordWriter::operator=(RecordWriter&& other) noexcept {
  if (this != &other) {
    if (file_) std::fclose(file_);
    if (!pending_.empty()) ::unlink(pending_.c_str());
    file_ = std::exchange(other.file_, nullptr);
    path_ = std::move(other.path_);
    pending_ = std::exchange(other.pending_, {});
    error_ = std::move(other.error_);
    replace_ = other.replace_;
  }
  return *this;
}

RecordWriter::~RecordWriter() {
  if (file_) std::fclose(file_);
  if (!pending_.empty()) ::unlink(pending_.c_str());  // no event was written: the run never started
}

void RecordWriter::write(const json::object& event) {
  if (error_ || !file_) return;
  std::string line = json::serialize(event);
  // The last guard of what a replay and a resume read back: text is repaired where it enters
  // dagent, and whatever was missed still makes a line that parses. Free when valid.
  text::make_valid_utf8(line);
  line.push_back('\n');
  // One fwrite per line, then a flush: a crash cuts at most this line (read back as a torn tail).
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    error_ = os_error("cannot write recording", path_);
    return;
  }
  if (pending_.empty()) return;
  // The first event is out: only now does the new recording replace whatever was at path_.
  if (const int err = move_into_place(pending_, path_, replace_); err != 0) {
    error_ = err == EEXIST ? path_.string() + " already exists (it appeared after the run was set up); give --force to replace it"
                           : "cannot write recording " + path_.string() + ": " + std::generic_category().message(err);
    return;  // the destructor removes the temporary file
  }
  pending_.clear();
}

boost::system::result<Recording, std::string> read_recording(const std::filesystem::path& path) {
  auto bytes = read_file(path);
  if (!bytes) return bytes.error();
  const std::string_view text = *bytes;
  const std::string where = path.string() + ":";

  Recording out;
  bool have_header = false;
  simdjson::dom::parser parser;
  std::size_t line_no = 0;
  for (std::size_t start = 0; start < text.size();) {
    ++line_no;
    const std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {  // no newline: the writer died mid-line
      out.torn_tail = true;
      break;
    }
    const std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    auto parsed = parse_line(parser, line);
    if (!parsed) {
      if (text.find_first_not_of(" \t\r\n", start) == std::string_view::npos) {
        out.torn_tail = true;  // a cut-short last line that happened to end in a newline byte
        break;
      }
      if (!have_header) return first_line_problem(line, parsed.error(), where + std::to_string(line_no));
      return where + std::to_string(line_no) + ": not a JSON object: " + parsed.error() + ": " + clip(line);
    }
    ++out.lines;
    out.intact_bytes = start;
    if (have_header) {
      out.events.push_back(std::move(*parsed));
      continue;
    }
    if (auto problem = header_problem(*parsed, line, where + std::to_string(line_no))) return *problem;
    out.header = std::move(*parsed);
    have_header = true;
  }
  if (!have_header)
    return where + "1: not a recording: no header line" + (out.torn_tail ? " (the file was cut short)" : "");
  return out;
}

boost::system::result<boost::json::object, std::string> read_header(const std::filesystem::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) return os_error("cannot open recording", path);
  std::string line;
  for (int c; (c = std::fgetc(file)) != EOF && c != '\n';) line.push_back(static_cast<char>(c));
  std::fclose(file);
  const std::string where = path.string() + ":";
  simdjson::dom::parser parser;
  auto parsed = parse_line(parser, line);
  if (!parsed) return first_line_problem(line, parsed.error(), where + "1");
  if (auto problem = header_problem(*parsed, line, where + "1")) return *problem;
  return std::move(*parsed);
}

}  // namespace dagent::record
