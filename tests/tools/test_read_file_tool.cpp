#include "tools/read_file_tool.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <utility>

#include <boost/json/serialize.hpp>

#include "tools/registry.hpp"

#include <sys/stat.h>

#include "text/bad_utf8_samples.hpp"
#include "text/utf8.hpp"
#include "tool_test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using dagent::ToolErrc;
using dagent::test::k_bad_text;
using dagent::test::k_bad_text_repaired;
using dagent::test::k_fffd;
using dagent::tools::ReadFileTool;
using dagent::tools::test::object;
using dagent::tools::test::WorkspaceFixture;

}  // namespace

TEST_CASE("read_file returns a file's content") {
  WorkspaceFixture fx;
  ReadFileTool tool;
  CHECK(tool.name() == "read_file");
  fx.write("docs/a.md", "# Title\nbody\n");

  SECTION("whole file") {
    auto result = tool.run(object(R"({"path": "docs/a.md"})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(*result == json::parse(R"({"path": "docs/a.md", "content": "# Title\nbody\n", "bytes": 13})"));
  }
  SECTION("the path is shown relative to the workspace") {
    auto result = tool.run(object(R"({"path": "./docs/../docs/a.md"})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(result->at("path") == "docs/a.md");
  }
  SECTION("max_bytes cuts and says so") {
    auto result = tool.run(object(R"({"path": "docs/a.md", "max_bytes": 7})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(*result == json::parse(R"({"path": "docs/a.md", "content": "# Title", "bytes": 7, "truncated": true})"));
  }
  SECTION("max_bytes equal to the size is not a cut") {
    auto result = tool.run(object(R"({"path": "docs/a.md", "max_bytes": 13})"), fx.context());
    REQUIRE(result.has_value());
    CHECK_FALSE(result->as_object().contains("truncated"));
    CHECK(result->at("bytes") == 13);
  }
  SECTION("max_bytes 0") {
    auto result = tool.run(object(R"({"path": "docs/a.md", "max_bytes": 0})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(result->at("content") == "");
    CHECK(result->at("truncated") == true);
  }
  SECTION("an empty file") {
    fx.write("empty.txt", "");
    auto result = tool.run(object(R"({"path": "empty.txt"})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(result->at("content") == "");
    CHECK(result->at("bytes") == 0);
  }
  SECTION("NULs pass through; bytes that are not UTF-8 become U+FFFD; bytes counts the file's") {
    const std::string raw("a\0b\xff\xfe", 5);
    fx.write("raw.bin", raw);
    auto result = tool.run(object(R"({"path": "raw.bin"})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(std::string(result->at("content").as_string()) == std::string("a\0b", 3) + k_fffd + k_fffd);
    CHECK(result->at("bytes") == 5);
  }
  SECTION("a file larger than one read chunk") {
    const std::string big(200'000, 'x');
    fx.write("big.txt", big);
    auto result = tool.run(object(R"({"path": "big.txt", "max_bytes": 150000})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(result->at("content").as_string().size() == 150'000);
    CHECK(result->at("truncated") == true);
  }
  SECTION("a symlink inside is read through") {
    fs::create_symlink("docs/a.md", fx.root() / "link.md");
    auto result = tool.run(object(R"({"path": "link.md"})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(result->at("content") == "# Title\nbody\n");
  }
}

TEST_CASE("read_file regression: without max_bytes it reads at most tools.read_max_bytes, and a larger "
          "max_bytes is clamped") {
  WorkspaceFixture fx;
  fx.write("big.bin", std::string((3 << 20) + 5, 'b'));

  SECTION("the default cap is 1 MiB") {
    ReadFileTool tool;
    auto result = tool.run(object(R"({"path": "big.bin"})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(result->at("bytes") == 1u << 20);
    CHECK(result->at("content").as_string().size() == 1u << 20);
    CHECK(result->at("truncated") == true);
  }
  SECTION("a configured cap, through the registry's options") {
    auto registry = dagent::tools::make_builtin_registry({"read_file"}, {.read_max_bytes = 1000});
    auto* tool = dynamic_cast<ReadFileTool*>(registry.get("read_file").get());
    REQUIRE(tool != nullptr);
    auto capped = tool->run(object(R"({"path": "big.bin"})"), fx.context());
    REQUIRE(capped.has_value());
    CHECK(capped->at("bytes") == 1000);
    CHECK(capped->at("truncated") == true);
    auto clamped = tool->run(object(R"({"path": "big.bin", "max_bytes": 100000000})"), fx.context());
    REQUIRE(clamped.has_value());
    CHECK(clamped->at("bytes") == 1000);
    CHECK(clamped->at("truncated") == true);
    auto smaller = tool->run(object(R"({"path": "big.bin", "max_bytes": 10})"), fx.context());
    REQUIRE(smaller.has_value());
    CHECK(smaller->at("bytes") == 10);
  }
  SECTION("a file exactly at the cap is not truncated") {
    ReadFileTool tool(100);
    fx.write("exact.txt", std::string(100, 'e'));
    auto result = tool.run(object(R"({"path": "exact.txt"})"), fx.context());
    REQUIRE(result.has_value());
    CHECK(result->at("bytes") == 100);
    CHECK_FALSE(result->as_object().contains("truncated"));
  }
}

TEST_CASE("read_file errors") {
  WorkspaceFixture fx;
  ReadFileTool tool;
  fx.write("docs/a.md", "x");
  auto error_of = [&](std::string_view params) {
    auto result = tool.run(object(params), fx.context());
    REQUIRE(result.has_error());
    return result.error();
  };

  SECTION("missing file") {
    auto e = error_of(R"({"path": "docs/missing.md"})");
    CHECK(e.code == ToolErrc::not_found);
    CHECK(e.message == "'docs/missing.md' does not exist");
  }
  SECTION("escapes") {
    CHECK(error_of(R"({"path": "../outside/secret.txt"})").code == ToolErrc::outside_workspace);
    CHECK(error_of(R"({"path": "/etc/passwd"})").code == ToolErrc::outside_workspace);
    CHECK(error_of(R"({"path": "docs/a.md\u0000"})").code == ToolErrc::outside_workspace);
    fs::create_symlink(fx.base() / "outside" / "secret.txt", fx.root() / "leak.txt");
    auto e = error_of(R"({"path": "leak.txt"})");
    CHECK(e.code == ToolErrc::outside_workspace);
    CHECK(e.message.find("outside secret") == std::string::npos);
  }
  SECTION("a folder is not a regular file") {
    auto e = error_of(R"({"path": "docs"})");
    CHECK(e.code == ToolErrc::invalid_parameters);
    CHECK(e.message == "'docs' is not a regular file");
  }
  SECTION("a FIFO is refused without blocking") {
    REQUIRE(::mkfifo((fx.root() / "pipe").c_str(), 0600) == 0);
    auto e = error_of(R"({"path": "pipe"})");
    CHECK(e.code == ToolErrc::invalid_parameters);
    CHECK(e.message == "'pipe' is not a regular file");
  }
  SECTION("bad parameters") {
    auto e = error_of(R"({"path": 3})");
    CHECK(e.code == ToolErrc::invalid_parameters);
    CHECK(e.message == "invalid parameters: $.path: expected string, got integer");
    CHECK(error_of(R"({})").message == "invalid parameters: $.path: missing required property");
    CHECK(error_of(R"({"path": "docs/a.md", "max_bytes": -1})").message ==
          "invalid parameters: $.max_bytes: must be >= 0, got -1");
    CHECK(error_of(R"({"path": "docs/a.md", "max_bytes": 1.0})").code == ToolErrc::invalid_parameters);
    CHECK(error_of(R"({"path": "docs/a.md", "offset": 1})").code == ToolErrc::invalid_parameters);
    CHECK(error_of(R"({"path": ""})").code == ToolErrc::invalid_parameters);
  }
  SECTION("an unreadable file is an io_error") {
    if (::geteuid() == 0) return;  // root reads anything
    fs::permissions(fx.root() / "docs" / "a.md", fs::perms::none);
    auto e = error_of(R"({"path": "docs/a.md"})");
    CHECK(e.code == ToolErrc::io_error);
    CHECK(e.message == "cannot open 'docs/a.md': Permission denied");
  }
  SECTION("cancelled") {
    fx.cancel();
    CHECK(error_of(R"({"path": "docs/a.md"})").code == ToolErrc::cancelled);
  }
  SECTION("no workspace") {
    auto result = tool.run(object(R"({"path": "docs/a.md"})"), dagent::ToolContext{});
    REQUIRE(result.has_error());
    CHECK(result.error().code == ToolErrc::failed);
  }
}

TEST_CASE("read_file regression: a Latin-1 file, truncated sequences, overlong forms and surrogates "
          "were returned raw and made the result, prompts and recording invalid UTF-8") {
  WorkspaceFixture fx;
  ReadFileTool tool;
  fx.write("latin1.txt", k_bad_text + "\n");
  auto result = tool.run(object(R"({"path": "latin1.txt"})"), fx.context());
  REQUIRE(result.has_value());
  CHECK(std::string(result->at("content").as_string()) == k_bad_text_repaired + "\n");
  CHECK(result->at("bytes") == k_bad_text.size() + 1);
  CHECK(dagent::text::is_valid_utf8(json::serialize(*result)));
}

TEST_CASE("read_file regression: a max_bytes cut inside a character returned half of it") {
  WorkspaceFixture fx;
  ReadFileTool tool;
  fx.write("euro.txt", "ab\xE2\x82\xAC" "cd\xF0\x9F\x98\x80");  // ab€cd😀: 2 + 3 + 2 + 4 bytes
  auto read = [&](int max_bytes) {
    auto result = tool.run(object(R"({"path": "euro.txt", "max_bytes": )" + std::to_string(max_bytes) + "}"),
                           fx.context());
    REQUIRE(result.has_value());
    CHECK(result->at("truncated") == true);
    CHECK(dagent::text::is_valid_utf8(result->at("content").as_string()));
    return std::pair{std::string(result->at("content").as_string()), result->at("bytes").to_number<int>()};
  };
  // Inside €: the character is left out whole, not replaced.
  CHECK(read(3) == std::pair{std::string("ab"), 2});
  CHECK(read(4) == std::pair{std::string("ab"), 2});
  CHECK(read(5) == std::pair{std::string("ab\xE2\x82\xAC"), 5});
  // Inside 😀 at each of its 3 inner positions.
  for (int cut = 8; cut <= 10; ++cut) CHECK(read(cut) == std::pair{std::string("ab\xE2\x82\xAC" "cd"), 7});
  // A Latin-1 file is cut where asked: no byte of it continues another.
  fx.write("latin1.txt", "\xE9\xE9\xE9\xE9");
  auto result = tool.run(object(R"({"path": "latin1.txt", "max_bytes": 2})"), fx.context());
  REQUIRE(result.has_value());
  CHECK(std::string(result->at("content").as_string()) == k_fffd + k_fffd);
  CHECK(result->at("bytes") == 2);
}
