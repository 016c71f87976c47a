#include "dagent/workspace.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <string_view>

#include <fcntl.h>

#include "tool_test_support.hpp"

namespace {

namespace fs = std::filesystem;
using dagent::ToolErrc;
using dagent::Workspace;
using dagent::tools::test::TempDir;
using dagent::tools::test::WorkspaceFixture;
using dagent::tools::test::write_text;

// The real path a resolution reaches, as the tools see it through the descriptor.
boost::system::result<fs::path, dagent::ToolError> existing(const Workspace& ws, std::string_view path) {
  auto opened = ws.open_existing(path, O_PATH);
  if (!opened) return opened.error();
  return opened->real;
}

boost::system::result<fs::path, dagent::ToolError> for_write(const Workspace& ws, std::string_view path, bool create) {
  auto target = ws.open_for_write(path, create);
  if (!target) return target.error();
  return target->real;
}

template <class Result>
void require_error(const Result& result, ToolErrc code, const std::string& message) {
  REQUIRE_FALSE(result.has_value());
  CHECK(result.error().code == code);
  CHECK(result.error().message == message);
}

}  // namespace

TEST_CASE("Workspace::open makes the root canonical and checks it") {
  TempDir temp;
  fs::create_directories(temp.path() / "real" / "sub");
  fs::create_directory_symlink(temp.path() / "real", temp.path() / "link");

  SECTION("a path through a symlink and `..` becomes the real folder") {
    auto ws = Workspace::open(temp.path() / "link" / "sub" / "..");
    REQUIRE(ws.has_value());
    CHECK(ws->root() == fs::canonical(temp.path() / "real"));
  }
  SECTION("a missing folder is not_found") {
    auto ws = Workspace::open(temp.path() / "missing");
    REQUIRE_FALSE(ws.has_value());
    CHECK(ws.error().code == ToolErrc::not_found);
  }
  SECTION("a file is refused") {
    write_text(temp.path() / "file.txt", "x");
    auto ws = Workspace::open(temp.path() / "file.txt");
    REQUIRE_FALSE(ws.has_value());
    CHECK(ws.error().code == ToolErrc::invalid_parameters);
  }
  SECTION("an empty path is refused") {
    auto ws = Workspace::open("");
    REQUIRE_FALSE(ws.has_value());
    CHECK(ws.error().code == ToolErrc::invalid_parameters);
  }
}

TEST_CASE("Workspace refuses paths that leave it") {
  WorkspaceFixture fx;
  const Workspace& ws = fx.workspace();
  fx.write("docs/a.md", "a");

  SECTION("absolute path") {
    require_error(existing(ws, "/etc/passwd"), ToolErrc::outside_workspace,
                  "absolute path '/etc/passwd' is not allowed");
    require_error(for_write(ws, "/tmp/x", true), ToolErrc::outside_workspace,
                  "absolute path '/tmp/x' is not allowed");
    const std::string inside = (fx.root() / "docs" / "a.md").string();
    require_error(existing(ws, inside), ToolErrc::outside_workspace,
                  "absolute path '" + inside + "' is not allowed");
  }
  SECTION("`..` at the start") {
    require_error(existing(ws, "../x"), ToolErrc::outside_workspace, "path '../x' leaves the workspace");
    require_error(for_write(ws, "../ws2/new.txt", true), ToolErrc::outside_workspace,
                  "path '../ws2/new.txt' leaves the workspace");
    CHECK_FALSE(fs::exists(fx.base() / "ws2" / "new.txt"));
  }
  SECTION("`..` after a folder") {
    require_error(existing(ws, "docs/../../outside/secret.txt"), ToolErrc::outside_workspace,
                  "path 'docs/../../outside/secret.txt' leaves the workspace");
    require_error(for_write(ws, "a/../../x", true), ToolErrc::outside_workspace,
                  "path 'a/../../x' leaves the workspace");
    CHECK_FALSE(fs::exists(fx.root() / "a"));
  }
  SECTION("NUL byte") {
    const std::string with_nul("docs/a.md\0../../etc/passwd", 26);
    require_error(existing(ws, with_nul), ToolErrc::outside_workspace, "path contains a NUL byte");
    require_error(for_write(ws, with_nul, true), ToolErrc::outside_workspace, "path contains a NUL byte");
  }
  SECTION("symlinked file pointing outside") {
    fs::create_symlink(fx.base() / "outside" / "secret.txt", fx.root() / "leak.txt");
    require_error(existing(ws, "leak.txt"), ToolErrc::outside_workspace,
                  "path 'leak.txt' leads outside the workspace through a symlink");
    require_error(for_write(ws, "leak.txt", true), ToolErrc::outside_workspace,
                  "path 'leak.txt' leads outside the workspace through a symlink");
  }
  SECTION("symlinked folder pointing outside") {
    fs::create_directory_symlink(fx.base() / "outside", fx.root() / "out");
    require_error(existing(ws, "out/secret.txt"), ToolErrc::outside_workspace,
                  "path 'out/secret.txt' leads outside the workspace through a symlink");
    require_error(existing(ws, "out"), ToolErrc::outside_workspace,
                  "path 'out' leads outside the workspace through a symlink");
    require_error(for_write(ws, "out/new/file.txt", true), ToolErrc::outside_workspace,
                  "path 'out/new/file.txt' leads outside the workspace through a symlink");
    CHECK_FALSE(fs::exists(fx.base() / "outside" / "new"));
  }
  SECTION("dangling symlink pointing outside") {
    fs::create_symlink(fx.base() / "outside" / "planted.txt", fx.root() / "dangling.txt");
    require_error(existing(ws, "dangling.txt"), ToolErrc::outside_workspace,
                  "path 'dangling.txt' leads outside the workspace through a symlink");
    require_error(for_write(ws, "dangling.txt", true), ToolErrc::outside_workspace,
                  "path 'dangling.txt' leads outside the workspace through a symlink");
    fs::create_symlink(fx.base() / "outside" / "newdir" / "planted.txt", fx.root() / "deep.txt");
    require_error(for_write(ws, "deep.txt", true), ToolErrc::outside_workspace,
                  "path 'deep.txt' leads outside the workspace through a symlink");
    CHECK_FALSE(fs::exists(fx.base() / "outside" / "newdir"));
  }
  SECTION("relative symlink climbing out") {
    fs::create_directory_symlink("..", fx.root() / "up");
    require_error(existing(ws, "up/outside/secret.txt"), ToolErrc::outside_workspace,
                  "path 'up/outside/secret.txt' leads outside the workspace through a symlink");
    fs::create_symlink("../../outside/secret.txt", fx.root() / "docs" / "rel.txt");
    require_error(existing(ws, "docs/rel.txt"), ToolErrc::outside_workspace,
                  "path 'docs/rel.txt' leads outside the workspace through a symlink");
  }
  SECTION("/ws2 is not inside /ws") {
    fs::create_symlink("../ws2/secret.txt", fx.root() / "sneaky.txt");
    fs::create_directory_symlink(fx.base() / "ws2", fx.root() / "sneaky_dir");
    require_error(existing(ws, "sneaky.txt"), ToolErrc::outside_workspace,
                  "path 'sneaky.txt' leads outside the workspace through a symlink");
    require_error(for_write(ws, "sneaky_dir/x.txt", true), ToolErrc::outside_workspace,
                  "path 'sneaky_dir/x.txt' leads outside the workspace through a symlink");
  }
  SECTION("a symlink leading out and back in is refused at the first step out") {
    fs::create_directory_symlink(fx.base() / "outside", fx.root() / "out");
    fs::create_directory_symlink(fx.root() / "docs", fx.base() / "outside" / "back");
    require_error(existing(ws, "out/back/a.md"), ToolErrc::outside_workspace,
                  "path 'out/back/a.md' leads outside the workspace through a symlink");
  }
  SECTION("symlink loop") {
    fs::create_symlink("loop", fx.root() / "loop");
    auto result = existing(ws, "loop");
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().code == ToolErrc::io_error);
    CHECK(result.error().message == "'loop': too many levels of symbolic links");
  }
  SECTION("empty path") {
    require_error(existing(ws, ""), ToolErrc::invalid_parameters, "path is empty");
    require_error(for_write(ws, "", true), ToolErrc::invalid_parameters, "path is empty");
  }
}

TEST_CASE("Workspace resolves paths inside it") {
  WorkspaceFixture fx;
  const Workspace& ws = fx.workspace();
  fx.write("docs/a.md", "a");
  fs::create_directory(fx.root() / "other");

  SECTION("plain, `.` and inner `..`") {
    CHECK(existing(ws, "docs/a.md").value() == fx.root() / "docs" / "a.md");
    CHECK(existing(ws, "./docs//a.md").value() == fx.root() / "docs" / "a.md");
    CHECK(existing(ws, "other/../docs/a.md").value() == fx.root() / "docs" / "a.md");
    CHECK(existing(ws, ".").value() == fx.root());
    CHECK(existing(ws, "docs/").value() == fx.root() / "docs");
  }
  SECTION("symlinks that stay inside resolve to their targets") {
    fs::create_symlink("docs/a.md", fx.root() / "alias.md");
    fs::create_directory_symlink("docs", fx.root() / "d");
    fs::create_directory_symlink("../docs", fx.root() / "other" / "up");
    CHECK(existing(ws, "alias.md").value() == fx.root() / "docs" / "a.md");
    CHECK(existing(ws, "d/a.md").value() == fx.root() / "docs" / "a.md");
    CHECK(existing(ws, "other/up/a.md").value() == fx.root() / "docs" / "a.md");
    CHECK(for_write(ws, "d/new.md", false).value() == fx.root() / "docs" / "new.md");
  }
  SECTION("a symlink whose target passes outside is refused, though it ends inside (the kernel's RESOLVE_BENEATH)") {
    fs::create_symlink("../ws/docs/a.md", fx.root() / "round.md");
    require_error(existing(ws, "round.md"), ToolErrc::outside_workspace,
                  "path 'round.md' leads outside the workspace through a symlink");
  }
  SECTION("an absolute symlink is refused, though it names a file inside") {
    fs::create_symlink(fx.root() / "docs" / "a.md", fx.root() / "abs.md");
    require_error(existing(ws, "abs.md"), ToolErrc::outside_workspace,
                  "path 'abs.md' leads outside the workspace through a symlink");
    require_error(for_write(ws, "abs.md", false), ToolErrc::outside_workspace,
                  "path 'abs.md' leads outside the workspace through a symlink");
  }
  SECTION("a missing file is not_found and names the path as given") {
    require_error(existing(ws, "docs/missing.md"), ToolErrc::not_found, "'docs/missing.md' does not exist");
    require_error(existing(ws, "docs/a.md/x"), ToolErrc::not_found, "'docs/a.md/x' does not exist");
  }
  SECTION("resolve_for_write creates missing parents inside") {
    auto path = for_write(ws, "new/deep/file.txt", true);
    REQUIRE(path.has_value());
    CHECK(*path == fx.root() / "new" / "deep" / "file.txt");
    CHECK(fs::is_directory(fx.root() / "new" / "deep"));
    CHECK_FALSE(fs::exists(*path));
  }
  SECTION("resolve_for_write without create_parents leaves folders alone") {
    require_error(for_write(ws, "new/file.txt", false), ToolErrc::not_found,
                  "the folder of 'new/file.txt' does not exist");
    CHECK_FALSE(fs::exists(fx.root() / "new"));
    CHECK(for_write(ws, "docs/b.md", false).value() == fx.root() / "docs" / "b.md");
  }
  SECTION("resolve_for_write follows a dangling symlink that stays inside") {
    fs::create_symlink("docs/later.md", fx.root() / "later.md");
    CHECK(for_write(ws, "later.md", false).value() == fx.root() / "docs" / "later.md");
  }
  SECTION("resolve_for_write refuses the root and paths below a file") {
    require_error(for_write(ws, ".", true), ToolErrc::invalid_parameters,
                  "path '.' names the workspace folder itself");
    require_error(for_write(ws, "docs/a.md/x", true), ToolErrc::invalid_parameters,
                  "'docs/a.md' is not a folder");
  }
}

TEST_CASE("Workspace regression: `..` after a missing folder or a file names nothing, and a trailing `/` names a "
          "folder, as for realpath (fuzz_workspace)") {
  WorkspaceFixture fx;
  const Workspace& ws = fx.workspace();
  fx.write("docs/a.md", "a");
  fs::create_directory_symlink("docs", fx.root() / "d");
  // The fuzzer's input was `d//ub/../a.md`: `docs/ub` does not exist, yet docs/a.md was returned.
  require_error(existing(ws, "d//ub/../a.md"), ToolErrc::not_found, "'d//ub/../a.md' does not exist");
  require_error(existing(ws, "docs/a.md/../a.md"), ToolErrc::not_found, "'docs/a.md/../a.md' does not exist");
  require_error(for_write(ws, "missing/../b.md", false), ToolErrc::not_found,
                "the folder of 'missing/../b.md' does not exist");
  require_error(for_write(ws, "missing/../b.md", true), ToolErrc::not_found,
                "the folder of 'missing/../b.md' does not exist");
  CHECK_FALSE(fs::exists(fx.root() / "missing"));
  // `..` out of folders that exist still resolves.
  CHECK(existing(ws, "d/../docs/a.md").value() == fx.root() / "docs" / "a.md");

  SECTION("a trailing `/` or `/.` names a folder: `./a.txt/` is not the file") {
    require_error(existing(ws, "docs/a.md/"), ToolErrc::invalid_parameters, "'docs/a.md' is not a folder");
    require_error(existing(ws, "d/a.md/."), ToolErrc::invalid_parameters, "'docs/a.md' is not a folder");
    CHECK(existing(ws, "d/").value() == fx.root() / "docs");
    CHECK(existing(ws, "docs/.").value() == fx.root() / "docs");
  }
}

TEST_CASE("Workspace::display gives root-relative generic paths") {
  WorkspaceFixture fx;
  CHECK(fx.workspace().display(fx.root()) == ".");
  CHECK(fx.workspace().display(fx.root() / "docs" / "a.md") == "docs/a.md");
  CHECK(fx.workspace().display(fx.root() / "docs" / "") == "docs");
}
