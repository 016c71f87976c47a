#include "support/nginx_process.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "support/loopback_port.hpp"
#include "support/test_server_process.hpp"

extern char** environ;

namespace dagent::test {

namespace {

constexpr const char* k_nginx = "/usr/sbin/nginx";

}  // namespace

NginxFront::NginxFront(unsigned short upstream_port) {
  if (::access(k_nginx, X_OK) != 0)
    throw std::runtime_error("nginx is not installed (Debian package nginx-light; scripts/setup.sh installs it)");
  const auto& certs = TestCerts::get();
  port_ = free_loopback_port();
  std::filesystem::create_directories(dir_.path() / "logs");
  std::ofstream(dir_.path() / "nginx.conf") << "daemon off;\n"
      "master_process off;\n"
      "worker_processes 1;\n"
      "pid " << (dir_.path() / "nginx.pid").string() << ";\n"
      "error_log " << (dir_.path() / "logs/error.log").string() << " warn;\n"
      "events { worker_connections 256; }\n"
      "http {\n"
      "  access_log off;\n"
      "  client_body_temp_path " << dir_.path().string() << "/body;\n"
      "  proxy_temp_path " << dir_.path().string() << "/proxy;\n"
      "  upstream api { server 127.0.0.1:" << upstream_port << "; keepalive 16; }\n"
      "  server {\n"
      "    listen 127.0.0.1:" << port_ << " ssl;\n"
      "    ssl_certificate " << certs.server_cert().string() << ";\n"
      "    ssl_certificate_key " << certs.server_key().string() << ";\n"
      "    keepalive_requests 100000;\n"
      "    location / {\n"
      "      proxy_pass http://api;\n"
      "      proxy_http_version 1.1;\n"
      "      proxy_set_header Connection \"\";\n"
      "      proxy_buffering off;\n"
      "      proxy_read_timeout 30s;\n"
      "    }\n"
      "  }\n"
      "}\n";
  std::string conf = (dir_.path() / "nginx.conf").string();
  std::string prefix = dir_.path().string() + "/";
  std::vector<char*> argv{const_cast<char*>(k_nginx), const_cast<char*>("-p"), prefix.data(), const_cast<char*>("-c"),
                          conf.data(), nullptr};
  if (posix_spawn(&pid_, k_nginx, nullptr, nullptr, argv.data(), environ) != 0)
    throw std::runtime_error("cannot start nginx");
  // Readiness: nginx has no "ready" signal in foreground mode; try to connect, bounded.
  for (int i = 0; i < 200; ++i) {
    if (loopback_accepts(port_)) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("nginx exited: " + read_text(dir_.path() / "logs/error.log"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("nginx did not start listening: " + read_text(dir_.path() / "logs/error.log"));
}

NginxFront::~NginxFront() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

}  // namespace dagent::test
