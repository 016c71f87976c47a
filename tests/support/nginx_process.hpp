#pragma once
// nginx (Debian's package) as a TLS front on loopback, started by the test that needs it.

#include <string>
#include <sys/types.h>

#include "support/process.hpp"

namespace dagent::test {

/// nginx terminating TLS with the test CA's server certificate on 127.0.0.1 and proxying to a
/// plain-HTTP upstream with keep-alive and no buffering (so SSE passes through as it arrives).
class NginxFront {
 public:
  /// Starts nginx and returns once it accepts connections; throws with nginx's error log if not.
  explicit NginxFront(unsigned short upstream_port);
  ~NginxFront();
  NginxFront(const NginxFront&) = delete;
  NginxFront& operator=(const NginxFront&) = delete;

  unsigned short port() const { return port_; }
  /// `https://localhost:PORT/v1`.
  std::string base_url() const { return "https://localhost:" + std::to_string(port_) + "/v1"; }

 private:
  TempDir dir_;
  unsigned short port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace dagent::test
