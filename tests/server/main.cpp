// openai_test_server: a scripted OpenAI-compatible server for the network tests and benchmarks.
// Usage: openai_test_server [--port N] [--tls CERT KEY] [--script FILE] [--rpm N] [--tpm N]
//                           [--rate-model rolling|bucket] [--period-ms N] [--latency-ms N] [--threads N] [--handshake-fault reset|stall N]
//                           [--connect-delay-ms N]
// --handshake-fault: the first N TLS connections are reset after their ClientHello, or stalled.
// --connect-delay-ms: every new connection waits N ms after accept before it is read from (or its
// TLS handshake starts), like TCP + TLS setup to a remote provider; kept-alive requests pay nothing.

#include "server.hpp"

#include <charconv>
#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string_view>

#include <sys/prctl.h>
#include <unistd.h>

namespace {

using dagent::test_server::ServerOptions;

constexpr std::string_view k_usage =
    "usage: openai_test_server [--port N] [--tls CERT KEY] [--script FILE] [--rpm N] [--tpm N]\n"
    "                          [--rate-model rolling|bucket] [--period-ms N]   (limits per N ms, 60000)\n"
    "                          [--latency-ms N] [--threads N] [--handshake-fault reset|stall N]\n"
    "                          [--connect-delay-ms N]   (each new connection waits N ms after accept)\n"
    "                          [--parent PID]   (exit when PID exits)\n";

bool read_number(std::string_view text, std::int64_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && out >= 0;
}

/// Fills `options` from argv; returns an error message, empty on success.
std::string parse_arguments(int argc, char** argv, ServerOptions& options) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](int offset) -> const char* { return i + offset < argc ? argv[i + offset] : nullptr; };
    if (arg == "--tls") {
      if (!value(1) || !value(2)) return "--tls needs CERT and KEY";
      options.tls = dagent::test_server::TlsFiles{value(1), value(2)};
      i += 2;
      continue;
    }
    if (arg == "--handshake-fault") {
      const std::string_view kind = value(1) ? value(1) : "";
      std::int64_t count = 0;
      if ((kind != "reset" && kind != "stall") || !value(2) || !read_number(value(2), count))
        return "--handshake-fault needs reset or stall, then a count";
      options.config.handshake_fault = kind == "reset" ? dagent::test_server::Fault::reset : dagent::test_server::Fault::stall;
      options.config.handshake_faults = static_cast<std::uint64_t>(count);
      i += 2;
      continue;
    }
    if (arg == "--rate-model") {
      const std::string_view model = value(1) ? value(1) : "";
      if (model != "rolling" && model != "bucket") return "--rate-model needs rolling or bucket";
      options.config.limits.model =
          model == "bucket" ? dagent::test_server::RateModel::bucket : dagent::test_server::RateModel::rolling;
      ++i;
      continue;
    }
    if (arg == "--script") {
      if (!value(1)) return "--script needs a FILE";
      std::ifstream in(value(1), std::ios::binary);
      if (!in) return std::string("cannot read ") + value(1);
      std::stringstream text;
      text << in.rdbuf();
      auto script = dagent::test_server::Script::parse(text.str());
      if (!script) return std::string(value(1)) + ": " + script.error();
      options.config.script = std::move(*script);
      ++i;
      continue;
    }
    std::int64_t number = 0;
    if (!value(1) || !read_number(value(1), number)) return std::string(arg) + " needs a non-negative integer";
    if (arg == "--port" && number <= 65535) options.port = static_cast<unsigned short>(number);
    else if (arg == "--rpm") options.config.limits.requests_per_minute = number;
    else if (arg == "--tpm") options.config.limits.tokens_per_minute = number;
    else if (arg == "--period-ms" && number >= 1) options.config.limits.period = std::chrono::milliseconds(number);
    else if (arg == "--latency-ms") options.config.latency = std::chrono::milliseconds(number);
    else if (arg == "--connect-delay-ms") options.connect_delay = std::chrono::milliseconds(number);
    else if (arg == "--threads" && number >= 1 && number <= 256) options.threads = static_cast<int>(number);
    else if (arg == "--parent") {
      // Die with the test that started us, even when it is killed or aborts (a sanitizer's
      // abort_on_error skips the destructor that would stop us, and an orphaned server keeps
      // ctest's output pipe open, so ctest would wait for it).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != static_cast<pid_t>(number)) return "the parent process is gone";
    }
    else return "unknown or out-of-range option " + std::string(arg);
    ++i;
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  ServerOptions options;
  if (argc == 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
    std::cout << k_usage;
    return 0;
  }
  if (std::string error = parse_arguments(argc, argv, options); !error.empty()) {
    std::cerr << "openai_test_server: " << error << '\n' << k_usage;
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);  // a peer that went away is an error value, not a process kill
  try {
    return dagent::test_server::run_server(std::move(options));
  } catch (const std::exception& e) {
    std::cerr << "openai_test_server: " << e.what() << std::endl;
    return 1;
  }
}
