#include "record/recording.hpp"

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include "support/process.hpp"
#include "text/bad_utf8_samples.hpp"
#include "text/utf8.hpp"

namespace {

namespace json = boost::json;
using dagent::record::k_format_version;
using dagent::record::read_recording;
using dagent::record::RecordWriter;
using dagent::test::read_text;
using dagent::test::TempDir;

json::object header() { return {{"type", "header"}, {"format", k_format_version}, {"run_id", "r1"}, {"task", "t"}}; }

std::string header_line() { return json::serialize(header()) + "\n"; }

RecordWriter open_writer(const std::filesystem::path& path, bool append, bool replace = false) {
  auto writer = RecordWriter::open(path, append, replace);
  REQUIRE(writer.has_value());
  return std::move(*writer);
}

}  // namespace

TEST_CASE("a recording reads back what was written", "[record]") {
  TempDir dir;
  const auto path = dir.path() / "run.jsonl";
  {
    auto writer = open_writer(path, false);
    writer.write(header());
    writer.write({{"type", "step"}, {"step", "a"}, {"status", "done"}, {"at_ms", 1.5}});
    writer.write({{"type", "end"}, {"status", "ok"}, {"answer", "line one\nline two"}});
    CHECK_FALSE(writer.error());
    CHECK(writer.path() == path);
  }
  const std::string text = read_text(path);
  CHECK(std::count(text.begin(), text.end(), '\n') == 3);  // one line per event; the answer's newline is escaped

  auto rec = read_recording(path);
  REQUIRE(rec.has_value());
  CHECK(rec->header == header());
  REQUIRE(rec->events.size() == 2);
  CHECK(rec->events[0].at("step") == "a");
  CHECK(rec->events[0].at("at_ms") == 1.5);
  CHECK(rec->events[1].at("answer") == "line one\nline two");
  CHECK(rec->lines == 3);
  CHECK_FALSE(rec->torn_tail);

  SECTION("append mode adds to the file; write mode truncates it") {
    {
      auto writer = open_writer(path, true);
      writer.write({{"type", "end"}, {"status", "resumed"}});
    }
    auto appended = read_recording(path);
    REQUIRE(appended.has_value());
    REQUIRE(appended->events.size() == 3);
    CHECK(appended->events.back().at("status") == "resumed");
    {
      auto writer = open_writer(path, false, true);
      writer.write(header());
    }
    auto truncated = read_recording(path);
    REQUIRE(truncated.has_value());
    CHECK(truncated->events.empty());
  }
  SECTION("a moved writer keeps writing to the same file") {
    auto writer = open_writer(path, true);
    RecordWriter moved = std::move(writer);
    moved.write({{"type", "end"}, {"status", "moved"}});
    auto again = read_recording(path);
    REQUIRE(again.has_value());
    CHECK(again->events.back().at("status") == "moved");
  }
}

TEST_CASE("a torn last line is ignored", "[record]") {
  TempDir dir;
  const std::string event = json::serialize(json::object{{"type", "end"}, {"status", "ok"}});
  SECTION("half a line without its newline") {
    const auto path = dir.write("run.jsonl", header_line() + event + "\n" + event.substr(0, event.size() / 2));
    auto rec = read_recording(path);
    REQUIRE(rec.has_value());
    CHECK(rec->torn_tail);
    CHECK(rec->events.size() == 1);
    CHECK(rec->lines == 2);
  }
  SECTION("a cut last line that ends in a newline") {
    const auto path = dir.write("run.jsonl", header_line() + event.substr(0, 7) + "\n\n");
    auto rec = read_recording(path);
    REQUIRE(rec.has_value());
    CHECK(rec->torn_tail);
    CHECK(rec->events.empty());
  }
  SECTION("empty lines are skipped and are not a torn tail") {
    const auto path = dir.write("run.jsonl", header_line() + "\n" + event + "\n\n");
    auto rec = read_recording(path);
    REQUIRE(rec.has_value());
    CHECK_FALSE(rec->torn_tail);
    CHECK(rec->events.size() == 1);
  }
}

TEST_CASE("a broken recording is an error with its file and line", "[record]") {
  TempDir dir;
  const std::string event = json::serialize(json::object{{"type", "end"}, {"status", "ok"}});
  SECTION("a malformed line before the last one") {
    const auto path = dir.write("run.jsonl", header_line() + event + "\n{\"type\": oops\n" + event + "\n");
    auto rec = read_recording(path);
    REQUIRE_FALSE(rec.has_value());
    CHECK_THAT(rec.error(), Catch::StartsWith(path.string() + ":3: not a JSON object"));
    CHECK_THAT(rec.error(), Catch::Contains("{\"type\": oops"));
  }
  SECTION("a line that is JSON but not an object") {
    const auto path = dir.write("run.jsonl", header_line() + "[1, 2]\n" + event + "\n");
    auto rec = read_recording(path);
    REQUIRE_FALSE(rec.has_value());
    CHECK_THAT(rec.error(), Catch::StartsWith(path.string() + ":2: not a JSON object"));
  }
  SECTION("no header") {
    const auto path = dir.write("run.jsonl", event + "\n");
    auto rec = read_recording(path);
    REQUIRE_FALSE(rec.has_value());
    CHECK_THAT(rec.error(), Catch::StartsWith(path.string() + ":1: not a recording"));
  }
  SECTION("an empty file") {
    const auto path = dir.write("run.jsonl", "");
    auto rec = read_recording(path);
    REQUIRE_FALSE(rec.has_value());
    CHECK(rec.error() == path.string() + ":1: not a recording: no header line");
  }
  SECTION("another format version") {
    auto h = header();
    h["format"] = k_format_version + 1;
    const auto path = dir.write("run.jsonl", json::serialize(h) + "\n" + event + "\n");
    auto rec = read_recording(path);
    REQUIRE_FALSE(rec.has_value());
    CHECK_THAT(rec.error(), Catch::StartsWith(path.string() + ":1: unsupported recording format 2"));
  }
  SECTION("a missing file") {
    const auto path = dir.path() / "absent.jsonl";
    auto rec = read_recording(path);
    REQUIRE_FALSE(rec.has_value());
    CHECK(rec.error() == "cannot open recording " + path.string() + ": No such file or directory");
    auto writer = RecordWriter::open(dir.path() / "no-such-dir" / "run.jsonl", false);
    REQUIRE_FALSE(writer.has_value());
    CHECK_THAT(writer.error(), Catch::Contains("no-such-dir/run.jsonl") && Catch::Contains("No such file or directory"));
  }
}

TEST_CASE("a failed write is kept and later writes are skipped", "[record]") {
  // /dev/full accepts the open and fails every flush with ENOSPC.
  auto writer = RecordWriter::open("/dev/full", false);
  REQUIRE(writer.has_value());
  writer->write(header());
  REQUIRE(writer->error());
  CHECK(*writer->error() == "cannot write recording /dev/full: No space left on device");
  writer->write(header());
  CHECK(*writer->error() == "cannot write recording /dev/full: No space left on device");
}

TEST_CASE("doubles read back bit for bit even where Boost.JSON 1.81 parses them one ulp off", "[record]") {
  // 0.9133014528990869 serializes as 9.133014528990869E-1, which boost::json::parse (1.81) reads
  // as a neighbouring double; a recorded temperature would then change its request's fingerprint.
  const double awkward = 0.9133014528990869;
  TempDir dir;
  const auto path = dir.path() / "run.jsonl";
  {
    auto writer = open_writer(path, false);
    writer.write(header());
    writer.write({{"type", "llm"}, {"temperature", awkward}, {"big", std::uint64_t{18446744073709551615u}}, {"neg", -3}});
  }
  auto rec = read_recording(path);
  REQUIRE(rec.has_value());
  REQUIRE(rec->events.size() == 1);
  CHECK(rec->events[0].at("temperature").as_double() == awkward);
  CHECK(rec->events[0].at("big").as_uint64() == 18446744073709551615u);
  CHECK(rec->events[0].at("neg").as_int64() == -3);
}

TEST_CASE("recording: --record empties an existing file even when nothing runs: the writer replaces it on its first event", "[record]") {
  TempDir dir;
  const auto path = dir.path() / "run.jsonl";
  dir.write("run.jsonl", "previous\n");
  auto entries = [&] {
    std::size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) n += e.path().filename().string().starts_with("run.jsonl");
    return n;
  };
  SECTION("no event written: the file is untouched and the temporary file is gone") {
    { auto writer = open_writer(path, false, true); }
    CHECK(read_text(path) == "previous\n");
    CHECK(entries() == 1);
  }
  SECTION("the first event replaces the file") {
    auto writer = open_writer(path, false, true);
    CHECK(read_text(path) == "previous\n");
    writer.write(header());
    CHECK_FALSE(writer.error());
    CHECK(read_text(path) == header_line());
    CHECK(entries() == 1);
  }
  SECTION("a moved-from writer leaves the temporary file to its new owner") {
    auto first = open_writer(path, false, true);
    auto second = std::move(first);
    second.write(header());
    CHECK(read_text(path) == header_line());
    CHECK(entries() == 1);
  }
  SECTION("without replace, a file that is there when the first event is written is kept, and the write fails") {
    // The CLI refuses an existing --record FILE up front; this is the file another process made
    // between that check and the run's first event. The kernel checks and moves in one step.
    auto writer = open_writer(path, false, false);
    writer.write(header());
    REQUIRE(writer.error());
    CHECK(*writer.error() == path.string() + " already exists (it appeared after the run was set up); give --force to replace it");
    CHECK(read_text(path) == "previous\n");
    writer.write(header());  // later events are skipped
    CHECK(read_text(path) == "previous\n");
  }
  SECTION("without replace, a free path gets the recording") {
    std::filesystem::remove(path);
    auto writer = open_writer(path, false, false);
    writer.write(header());
    CHECK_FALSE(writer.error());
    CHECK(read_text(path) == header_line());
  }
}

TEST_CASE("invalid_utf8_recording: text that is not UTF-8 made a recording that could not be read back",
          "[record][utf8]") {
  using dagent::test::k_bad_text;
  using dagent::test::k_bad_text_repaired;
  using dagent::test::k_fffd;
  TempDir dir;
  const auto path = dir.path() / "run.jsonl";
  SECTION("the writer repairs what it is given") {
    {
      auto writer = open_writer(path, false);
      auto h = header();
      h["goal"] = k_bad_text;
      writer.write(h);
      writer.write({{"type", "tool"}, {"step", 1}, {"output", json::object{{"k\xE9y", k_bad_text}}}});
      CHECK_FALSE(writer.error());
    }
    CHECK(dagent::text::is_valid_utf8(read_text(path)));
    auto rec = read_recording(path);
    REQUIRE(rec.has_value());
    CHECK(rec->header.at("goal") == k_bad_text_repaired.c_str());
    REQUIRE(rec->events.size() == 1);
    CHECK(rec->events[0].at("output") == json::value(json::object{{"k" + k_fffd + "y", k_bad_text_repaired}}));
    auto h = dagent::record::read_header(path);
    REQUIRE(h.has_value());
    CHECK(h->at("goal") == k_bad_text_repaired.c_str());
  }
  SECTION("a recording written raw (before the repair) reads back repaired, header included") {
    // What the old writer produced: JSON whose strings hold the bytes as they came.
    auto h = header();
    h["goal"] = k_bad_text;
    const std::string event = json::serialize(json::object{{"type", "end"}, {"status", "ok"}, {"answer", k_bad_text}});
    dir.write("run.jsonl", json::serialize(h) + "\n" + event + "\n");
    auto rec = read_recording(path);
    INFO((rec ? std::string() : rec.error()));
    REQUIRE(rec.has_value());  // was "…:1: not a recording: the first line must be the header"
    CHECK(rec->header.at("goal") == k_bad_text_repaired.c_str());
    CHECK(rec->events.at(0).at("answer") == k_bad_text_repaired.c_str());
    // Offsets are the file's (a resume cuts it there), not those of the repaired text.
    CHECK(rec->intact_bytes == std::filesystem::file_size(path));
    CHECK(dagent::record::read_header(path).has_value());
  }
  SECTION("a corrupt header is called that, with file and line, not 'not a recording'") {
    const std::string event = json::serialize(json::object{{"type", "end"}, {"status", "ok"}});
    dir.write("run.jsonl", R"({"type":"header","format":1,"task":"t",}")" "\n" + event + "\n");
    auto rec = read_recording(path);
    REQUIRE_FALSE(rec.has_value());
    CHECK_THAT(rec.error(), Catch::StartsWith(path.string() + ":1: the header line is corrupt ("));
    auto h = dagent::record::read_header(path);
    REQUIRE_FALSE(h.has_value());
    CHECK_THAT(h.error(), Catch::StartsWith(path.string() + ":1: the header line is corrupt ("));
    // A file that is not a recording at all still says so.
    dir.write("run.jsonl", "steps:\n  - id: 1\n");
    auto yaml = dagent::record::read_header(path);
    REQUIRE_FALSE(yaml.has_value());
    CHECK_THAT(yaml.error(), Catch::StartsWith(path.string() + ":1: not a recording"));
  }
}
