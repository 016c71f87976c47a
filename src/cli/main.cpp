// dagent: plan-and-execute LLM agent runtime (SPEC.md §1).

#include <cstdio>
#include <exception>

#include "cli/terminal_out.hpp"
#include "cli/commands.hpp"

int main(int argc, char** argv) {
  using namespace dagent::cli;
  try {
    auto parsed = parse_options(argc, argv);
    if (const auto* error = std::get_if<UsageError>(&parsed)) {
      print_safe(stderr, "%s\n", error->message.c_str());
      return 2;
    }
    if (const auto* printout = std::get_if<Printout>(&parsed)) {
      std::fputs(printout->text.c_str(), stdout);
      return std::fflush(stdout) == 0 ? 0 : 1;
    }
    const auto& options = std::get<Options>(parsed);
    if (options.command == "run") return run_command(options);
    if (options.command == "plan") return plan_command(options);
    if (options.command == "replay") return replay_command(options);
    if (options.command == "ingest") return ingest_command(options);
    if (options.command == "memory") return memory_command(options);
    if (options.command == "mcp") return mcp_command(options);
    if (options.command == "worker") return worker_command(options);
    if (options.command == "runs") return runs_command(options);
    if (options.command == "serve") return serve_command(options);
    if (options.command == "report") return report_command(options);
    return validate_command(options);
  } catch (const std::exception& e) {
    print_safe(stderr, "dagent: internal error: %s\n", e.what());
    return 1;
  }
}
