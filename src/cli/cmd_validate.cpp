#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/terminal_out.hpp"
#include "cli/commands.hpp"
#include "dagent/runtime.hpp"
#include "executor/plan.hpp"
#include "text/utf8.hpp"

namespace dagent::cli {

namespace {

int report(const std::vector<std::string>& problems, const std::string& what) {
  for (const auto& p : problems) print_safe(stderr, "%s\n", p.c_str());
  if (problems.empty()) {
    print_safe(stdout, "%s: ok\n", what.c_str());
    return 0;
  }
  print_safe(stderr, "dagent: %s: %zu problem%s\n", what.c_str(), problems.size(), problems.size() == 1 ? "" : "s");
  return 2;
}

}  // namespace

int validate_command(const Options& options) {
  if (options.args.size() > 1) {
    print_safe(stderr, "dagent: validate takes at most one TASK or PLAN.json\n");
    return 2;
  }
  auto runtime = load_runtime(options);
  if (!runtime) return 2;
  std::printf("config: ok\n");
  if (options.args.empty()) return 0;

  const auto& arg = options.args[0];
  if (arg.ends_with(".json")) {
    std::ifstream in(arg, std::ios::binary);
    if (!in) return report({arg + ": cannot read the file"}, arg);
    std::stringstream text;
    text << in.rdbuf();
    // As a task's plan file: bytes that are not UTF-8 become U+FFFD, not an "invalid JSON" error.
    auto plan = executor::parse_json_text(text::valid_utf8(text.str()));
    if (!plan) return report({arg + ": " + plan.error()}, arg);
    std::vector<std::string> problems;
    for (auto& p : runtime->plan_json(*plan).problems) problems.push_back(arg + ": " + p);
    return report(problems, arg);
  }
  return report(runtime->plan_task(arg).problems, arg);
}

}  // namespace dagent::cli
