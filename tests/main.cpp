// The test runner. Runs write their history (history.enabled is on by default) under
// $XDG_STATE_HOME: a folder of this process's own, never the user's real state folder.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <unistd.h>

int main(int argc, char** argv) {
  const auto state = std::filesystem::temp_directory_path() / ("dagent-tests-state-" + std::to_string(::getpid()));
  std::filesystem::create_directories(state);
  ::setenv("XDG_STATE_HOME", state.c_str(), 1);
  const int failed = Catch::Session().run(argc, argv);
  std::error_code ec;
  std::filesystem::remove_all(state, ec);
  return failed;
}
