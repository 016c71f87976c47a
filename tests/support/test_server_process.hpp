#pragma once
// Runs the scripted OpenAI-compatible test server (tests/server/) as a child process, and makes
// the test CA and certificates it serves with.

#include "support/process.hpp"

#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dagent::test {

/// The TLS material of tests/server/make_certs.sh, made once per test process in a temp folder.
class TestCerts {
 public:
  /// Runs the script on first use; throws std::runtime_error if it fails.
  static const TestCerts& get();

  const std::filesystem::path& dir() const { return dir_.path(); }
  std::filesystem::path ca() const { return dir() / "ca.pem"; }  // signed every cert below
  std::filesystem::path server_cert() const { return dir() / "server.pem"; }  // localhost, 127.0.0.1
  std::filesystem::path server_key() const { return dir() / "server.key"; }
  std::filesystem::path wrong_host_cert() const { return dir() / "wronghost.pem"; }  // wrong.example
  std::filesystem::path wrong_host_key() const { return dir() / "wronghost.key"; }
  std::filesystem::path expired_cert() const { return dir() / "expired.pem"; }  // notAfter 2020-01-02
  std::filesystem::path expired_key() const { return dir() / "expired.key"; }
  std::filesystem::path other_ca() const { return dir() / "other-ca.pem"; }  // signed nothing we serve

 private:
  TestCerts();
  TempDir dir_;
};

/// Which certificate the server presents; `none` serves plain HTTP.
enum class ServerCert { none, valid, wrong_host, expired };

/// What the first TLS handshakes meet: a reset after the ClientHello, or no answer at all.
enum class HandshakeFault { none, reset, stall };

struct TestServerOptions {
  ServerCert cert = ServerCert::none;
  std::optional<boost::json::value> script;  // passed with --script (through a temp file)
  std::int64_t rpm = 0;                      // server-side limits; 0 = unlimited
  std::int64_t tpm = 0;
  bool bucket = false;                       // count the limits as a refilled bucket (else a rolling window)
  std::int64_t period_ms = 0;                // the limits' period; 0 = a minute
  std::int64_t latency_ms = 0;
  int threads = 1;
  HandshakeFault handshake_fault = HandshakeFault::none;
  int handshake_faults = 1;  // how many TLS connections meet it, control ones included
  /// --connect-delay-ms: each new connection (control ones included) waits this long after accept
  /// before the server reads it or starts TLS; requests on a kept-alive connection pay nothing.
  std::int64_t connect_delay_ms = 0;
};

enum class BodyFraming { content_length, chunked };

/// A request of the control client.
struct HttpRequest {
  std::string method = "GET";
  std::string target = "/_health";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // Host is added
  BodyFraming framing = BodyFraming::content_length;
};

struct HttpReply {
  unsigned status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in order
  std::string body;                                          // de-chunked
  /// The first value of header `name` (case-insensitive), or "" when absent.
  std::string header(std::string_view name) const;
  /// The body parsed as JSON; throws if it is not JSON.
  boost::json::value json() const;
};

/// The server as a child process: started in the constructor (which returns once it listens),
/// stopped with SIGTERM in the destructor.
class TestServer {
 public:
  explicit TestServer(TestServerOptions options = {});
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  unsigned short port() const { return port_; }
  bool tls() const { return tls_; }
  /// `http://127.0.0.1:PORT/v1`, or `https://localhost:PORT/v1` so hostname checks match the cert.
  std::string base_url() const;

  /// GET /_stats, parsed. See tests/server/server_stats.hpp for the fields.
  boost::json::value stats() const;
  /// How many requests to `path` (e.g. "/v1/embeddings") the server has answered since its start or reset.
  std::int64_t requests_to(std::string_view path) const;
  /// POST /_script; throws if the server refuses the script.
  void set_script(const boost::json::value& script) const;
  /// POST /_reset: clears the counters, the log, the script and the rate-limit window.
  void reset() const;

  // The control client. TEST-ONLY: it talks to the server without certificate verification.
  // It is for driving and inspecting the server, never a model for the real client.

  /// One request on a fresh connection; throws std::runtime_error if no complete reply arrives.
  HttpReply request(const HttpRequest& request) const;
  /// The requests in order on one keep-alive connection; returns the replies that arrived before
  /// the connection failed or closed (so fewer than requested means it broke).
  std::vector<HttpReply> request_on_one_connection(const std::vector<HttpRequest>& requests) const;

 private:
  void stop();

  int pid_ = -1;
  unsigned short port_ = 0;
  bool tls_ = false;
  std::optional<TempDir> script_dir_;
};

/// Plain-HTTP requests to 127.0.0.1:`port`, each on a connection of its own, all at once; the
/// replies in request order, each read whole (an event stream: until the server ends it).
/// Throws std::runtime_error naming the first request without a complete reply within `timeout`.
std::vector<HttpReply> http_requests(unsigned short port, const std::vector<HttpRequest>& requests,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(10));
/// One of http_requests.
HttpReply http_request(unsigned short port, const HttpRequest& request,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// A POST of a JSON body to `target`.
HttpRequest post_json(std::string target, const boost::json::value& body);

}  // namespace dagent::test
