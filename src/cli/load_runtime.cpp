#include <cstdio>

#include "cli/commands.hpp"
#include "dagent/runtime.hpp"

namespace dagent::cli {

std::unique_ptr<Runtime> load_runtime(const Options& options) {
  auto path = config_path(options);
  if (auto* error = std::get_if<std::string>(&path)) {
    std::fprintf(stderr, "dagent: %s\n", error->c_str());
    return nullptr;
  }
  auto loaded = Runtime::load(std::get<std::filesystem::path>(path), options.overrides);
  if (auto* problems = std::get_if<std::vector<std::string>>(&loaded)) {
    for (const auto& p : *problems) std::fprintf(stderr, "%s\n", p.c_str());
    std::fprintf(stderr, "dagent: %zu configuration problem%s\n", problems->size(), problems->size() == 1 ? "" : "s");
    return nullptr;
  }
  return std::make_unique<Runtime>(std::move(std::get<Runtime>(loaded)));
}

}  // namespace dagent::cli
