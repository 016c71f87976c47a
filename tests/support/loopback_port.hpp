#pragma once
// Loopback ports for the servers the tests start themselves (nginx, redis-server).

namespace dagent::test {

/// A port the kernel just handed out on 127.0.0.1; the caller's server binds it right after
/// (a small, accepted race).
unsigned short free_loopback_port();

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
bool loopback_accepts(unsigned short port);

}  // namespace dagent::test
