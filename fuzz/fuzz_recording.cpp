// The recording reader (src/record/recording), from bytes written to a file. Checks what a replay
// and a resume rely on: the counts and the cut point (intact_bytes) agree with the lines, the file
// cut at intact_bytes reads back the same events without a torn tail, read_header agrees with
// read_recording, what was read survives being written again by RecordWriter, and every error
// message (it reaches the terminal and --json) is valid UTF-8.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "check.hpp"
#include "record/recording.hpp"
#include "text/utf8.hpp"

namespace {

namespace fs = std::filesystem;
using namespace dagent::record;
using dagent::fuzz::check;
using dagent::fuzz::check_utf8;

const fs::path& scratch() { return dagent::fuzz::scratch_dir("recording"); }

void write_bytes(const fs::path& file, std::string_view bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  check(out.good(), "cannot write the input file");
}

bool same_events(const Recording& a, const Recording& b) {
  return a.header == b.header && a.events == b.events && a.lines == b.lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const fs::path file = scratch() / "run.jsonl";
  write_bytes(file, text);

  auto rec = read_recording(file);
  auto header = read_header(file);
  if (!header) check_utf8(dagent::text::is_valid_utf8(header.error()), "a read_header error is not UTF-8");
  if (!rec) {
    check_utf8(dagent::text::is_valid_utf8(rec.error()), "a read_recording error is not UTF-8");
    check(rec.error().starts_with(file.string() + ":"), "an error that does not name the file");
    return 0;
  }

  check(rec->lines == rec->events.size() + 1, "lines does not count the header and the events");
  check(rec->intact_bytes > 0 && rec->intact_bytes <= text.size() && text[rec->intact_bytes - 1] == '\n',
        "intact_bytes is not the end of a line");
  check(rec->header.contains("type") && rec->header.at("type") == "header", "the header is not a header");
  if (!rec->torn_tail) {
    check(text.substr(rec->intact_bytes).find_first_not_of(" \t\r\n") == std::string_view::npos,
          "content after the last intact line, yet no torn tail");
  }
  if (header) check(*header == rec->header, "read_header read another header");
  if (!text.empty() && text.front() == '{') check(header.has_value(), "read_header refused the header read_recording took");

  // A resume cuts the file at intact_bytes and appends: the cut file reads back the same.
  write_bytes(file, text.substr(0, rec->intact_bytes));
  auto cut = read_recording(file);
  check(cut.has_value(), "the file cut at intact_bytes does not read back");
  check(same_events(*cut, *rec) && !cut->torn_tail && cut->intact_bytes == rec->intact_bytes,
        "the file cut at intact_bytes reads back differently");

  // What was read can be written again and read back unchanged (a resumed run rewrites nothing,
  // but a recorded request is compared with a new one after a write/read round trip).
  const fs::path copy = scratch() / "copy.jsonl";
  std::error_code ec;
  fs::remove(copy, ec);
  {
    auto writer = RecordWriter::open(copy, false);
    check(writer.has_value(), "cannot open a RecordWriter");
    writer->write(rec->header);
    for (const auto& e : rec->events) writer->write(e);
    check(!writer->error(), "RecordWriter failed");
  }
  auto again = read_recording(copy);
  check(again.has_value(), "a recording written by RecordWriter does not read back");
  check(same_events(*again, *rec) && !again->torn_tail, "a rewritten recording reads back differently");
  return 0;
}
