#include "support/redis_process.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "support/loopback_port.hpp"
#include "support/test_server_process.hpp"

extern char** environ;

namespace dagent::test {

namespace {

constexpr const char* k_redis = "/usr/bin/redis-server";

}  // namespace

RedisServer::RedisServer(RedisServerOptions options) : options_(std::move(options)) {
  if (::access(k_redis, X_OK) != 0)
    throw std::runtime_error("redis-server is not installed (Debian package redis-server; scripts/setup.sh installs it)");
  port_ = free_loopback_port();
  start();
}

std::string RedisServer::url() const {
  return options_.tls ? "rediss://localhost:" + std::to_string(port_) : "redis://127.0.0.1:" + std::to_string(port_);
}

void RedisServer::start() {
  const std::string port = std::to_string(port_);
  const std::string log = (dir_.path() / "redis.log").string();
  std::vector<std::string> args{k_redis, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--daemonize", "no", "--dir", dir_.path().string(), "--logfile", log,
                                "--enable-debug-command", "yes"};
  if (options_.tls) {
    const auto& certs = TestCerts::get();
    for (std::string a : {std::string("--port"), std::string("0"), std::string("--tls-port"), port,
                          std::string("--tls-cert-file"), certs.server_cert().string(), std::string("--tls-key-file"),
                          certs.server_key().string(), std::string("--tls-ca-cert-file"), certs.ca().string(),
                          std::string("--tls-auth-clients"), std::string("no")})
      args.push_back(a);
  } else {
    args.push_back("--port");
    args.push_back(port);
  }
  if (!options_.password.empty()) {
    args.push_back("--requirepass");
    args.push_back(options_.password);
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&pid_, k_redis, nullptr, nullptr, argv.data(), environ) != 0)
    throw std::runtime_error("cannot start redis-server");
  for (int i = 0; i < 500; ++i) {
    if (loopback_accepts(port_)) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("redis-server exited: " + read_text(log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("redis-server did not start listening: " + read_text(log));
}

void RedisServer::kill() {
  if (pid_ <= 0) return;
  if (paused_) resume();
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void RedisServer::pause() {
  if (pid_ > 0 && !paused_) ::kill(pid_, SIGSTOP);
  paused_ = true;
}

void RedisServer::resume() {
  if (pid_ > 0 && paused_) ::kill(pid_, SIGCONT);
  paused_ = false;
}

RedisServer::~RedisServer() {
  if (pid_ <= 0) return;
  if (paused_) ::kill(pid_, SIGCONT);
  ::kill(pid_, SIGTERM);
  int status = 0;
  ::waitpid(pid_, &status, 0);
}

}  // namespace dagent::test
