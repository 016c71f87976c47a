// `dagent serve`: the HTTP service (README "Service (dagent serve)").

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <boost/asio/signal_set.hpp>

#include "cli/commands.hpp"
#include "cli/terminal_out.hpp"
#include "config/config.hpp"
#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"
#include "serve/bearer_auth.hpp"
#include "serve/http_server.hpp"
#include "serve/listen_address.hpp"
#include "serve/service.hpp"
#include "text/redact.hpp"

namespace dagent::cli {

namespace {

// How long event streams and replies get to finish once the runs have ended.
constexpr std::int64_t k_close_grace_ms = 2000;

struct StopLoop {
  Runtime* runtime;
  void operator()() const { runtime->stop_loop(); }
};

struct StopServer {
  serve::HttpServer* server;
  Runtime* runtime;
  void operator()() const {
    print_safe(stderr, "dagent serve: every run has ended; closing connections\n");
    server->stop(k_close_grace_ms, StopLoop{runtime});
  }
};

/// SIGTERM or SIGINT: drain (no new runs; running ones finish or are cancelled after
/// serve.drain_ms), then close the server and stop the loop. A second signal cancels the runs now.
struct OnSignal {
  boost::asio::signal_set* signals;
  serve::Service* service;
  serve::HttpServer* server;
  Runtime* runtime;
  void operator()(const boost::system::error_code& ec, int signal) const {
    if (ec) return;
    if (service->draining()) {
      print_safe(stderr, "dagent serve: signal %d again: cancelling the runs underway\n", signal);
      service->cancel_running();
    } else {
      print_safe(stderr, "dagent serve: signal %d: draining (no new runs; runs underway get %lld ms)\n", signal,
                 static_cast<long long>(runtime::config_of(*runtime).serve.drain_ms));
      service->drain(StopServer{server, runtime});
    }
    signals->async_wait(*this);
  }
};

}  // namespace

int serve_command(const Options& options) {
  if (!options.args.empty()) {
    print_safe(stderr, "dagent: serve takes no arguments (its runs come over HTTP)\n");
    return 2;
  }
  auto runtime = load_runtime(options);
  if (!runtime) return 2;
  const auto& cfg = runtime::config_of(*runtime).serve;

  const std::string listen_text = options.listen ? *options.listen : cfg.listen;
  auto parsed = serve::parse_listen_address(listen_text);
  if (auto* error = std::get_if<std::string>(&parsed)) {
    print_safe(stderr, "dagent: serve: %s\n", error->c_str());
    return 2;
  }
  const auto address = std::get<serve::ListenAddress>(parsed);

  std::string token;
  if (!cfg.token_env.empty()) {
    const char* value = std::getenv(cfg.token_env.c_str());
    if (!value || !*value) {
      print_safe(stderr, "dagent: serve: serve.token_env names %s, which is not set (or empty)\n", cfg.token_env.c_str());
      return 2;
    }
    token = value;
    text::register_secret(token);  // never in a log, an error or a result
  }
  if (!address.loopback && token.empty()) {
    print_safe(stderr,
               "dagent: serve: refusing to listen on %s without a token: anyone who can reach it could run tasks. "
               "Set serve.token_env (a variable holding a bearer token), or listen on 127.0.0.1\n",
               listen_text.c_str());
    return 2;
  }

  serve::Service service(*runtime);
  serve::ServerLimits limits{cfg.max_body_bytes, cfg.max_connections, cfg.idle_timeout_ms, cfg.max_event_clients};
  auto listening = serve::HttpServer::listen(runtime->executor(), address, limits, service, serve::BearerAuth(token));
  if (auto* error = std::get_if<std::string>(&listening)) {
    print_safe(stderr, "dagent: serve: %s\n", error->c_str());
    return 2;
  }
  auto& server = *std::get<std::unique_ptr<serve::HttpServer>>(listening);

  boost::asio::signal_set signals(runtime->executor(), SIGINT, SIGTERM);
  signals.async_wait(OnSignal{&signals, &service, &server, runtime.get()});
  server.start();
  const bool v6 = address.host.find(':') != std::string::npos;
  std::printf("dagent serve: listening on http://%s%s%s:%u\n", v6 ? "[" : "", address.host.c_str(), v6 ? "]" : "",
              static_cast<unsigned>(server.port()));
  std::fflush(stdout);

  const auto problems = runtime->run_loop();
  if (!problems.empty()) {
    for (const auto& p : problems) print_safe(stderr, "%s\n", p.c_str());
    print_safe(stderr, "dagent: serve: could not start (%zu problem%s)\n", problems.size(), problems.size() == 1 ? "" : "s");
    return 2;
  }
  for (const auto& p : runtime->finish_background()) print_safe(stderr, "dagent: %s\n", p.c_str());
  print_safe(stderr, "dagent serve: stopped\n");
  return 0;
}

}  // namespace dagent::cli
