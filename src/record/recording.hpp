#pragma once
// A run's recording (SPEC §6): JSON Lines, one event per line, flushed as written so a crash
// loses at most the line in flight. Reading tolerates a torn last line.
//
// Lines, each an object with "type":
//   header  {"type":"header","format":1,"run_id","task","task_ref","goal"?,"plan"?,"inputs","config_digest",
//            "effective_config" (the config after --set; a replay runs with it),"model","config"?}
//   llm     {"type":"llm","kind":"chat"|"chat_stream"|"embed","fingerprint","request":{normalized},
//            "response":{…} | "error":{"code","message","status","type","api_code","attempts"},
//            "chunks":[{"at_ms","text"}]   (chat_stream only), "ms"}
//   plan    {"type":"plan","steps":[…]}                (the validated plan a goal run executes)
//   tool    {"type":"tool","step","action","params","output" | "error":{"code","message"}}
//   step    {"type":"step","step","status","attempt","at_ms","output"?,"error"?}
//   approval {"type":"approval","step","action","params_sha256","pattern","decision":"allow"|"deny"|"allow_always",
//            "by":"terminal"|"flag"|"callback"|"always"|"recording","reason"?}   (tools.approval)
//   end     {"type":"end","status","answer"?}
// No API key or authorization header is ever part of an event.

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

namespace dagent::record {

constexpr int k_format_version = 1;

/// Appends events to a recording file. Not thread-safe: write from the loop.
class RecordWriter {
 public:
  /// Appends to `path` when `append` (resume). Otherwise writes to a new temporary file in
  /// `path`'s folder that replaces `path` only once the first event (the header) is written, so a
  /// run that never starts leaves an existing file alone; the temporary file is removed if no
  /// event is ever written. Unless `replace`, the move refuses a file that exists at `path` by
  /// then (atomically: renameat2 RENAME_NOREPLACE, else link), and error() says so. The error
  /// names the path.
  static boost::system::result<RecordWriter, std::string> open(const std::filesystem::path& path, bool append,
                                                               bool replace = false);
  RecordWriter(RecordWriter&&) noexcept;
  RecordWriter& operator=(RecordWriter&&) noexcept;
  ~RecordWriter();

  /// Writes `event` as one line and flushes it to the OS (fflush, no fsync); the first write moves
  /// the temporary file to path(). The first failure is kept (see error()) and later writes are skipped.
  void write(const boost::json::object& event);
  const std::optional<std::string>& error() const noexcept { return error_; }
  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  RecordWriter(std::FILE* file, std::filesystem::path path, std::filesystem::path pending, bool replace)
      : file_(file), path_(std::move(path)), pending_(std::move(pending)), replace_(replace) {}
  std::FILE* file_ = nullptr;
  std::filesystem::path path_;
  std::filesystem::path pending_;  ///< the temporary file not yet moved to path_; empty once moved (or appending)
  std::optional<std::string> error_;
  bool replace_ = false;
};

/// A recording read back.
struct Recording {
  boost::json::object header;
  std::vector<boost::json::object> events;  ///< every line after the header, in order
  bool torn_tail = false;                   ///< the last line was cut short (a crash) and was ignored
  std::size_t lines = 0;                    ///< complete lines read, header included
  std::uint64_t intact_bytes = 0;           ///< where the last complete line ends: a resume cuts the file here
};

/// Reads `path`. Errors (with file and line): missing or unreadable file, no header, an
/// unsupported format version, a malformed line that is not the last one.
boost::system::result<Recording, std::string> read_recording(const std::filesystem::path& path);

/// Only the header line of `path` (to learn the task and config of a recording), checked as
/// read_recording() checks it.
boost::system::result<boost::json::object, std::string> read_header(const std::filesystem::path& path);

}  // namespace dagent::record
