#include "support/test_server_process.hpp"

#include "support/process.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace dagent::test {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
namespace json = boost::json;
using tcp = net::ip::tcp;

using Token = net::as_tuple_t<net::use_awaitable_t<>>;
using Executor = Token::executor_with_default<net::any_io_executor>;
using TcpStream = beast::tcp_stream::rebind_executor<Executor>::other;
using TlsStream = beast::ssl_stream<TcpStream>;

constexpr auto k_startup_timeout = std::chrono::seconds(10);
constexpr auto k_control_timeout = std::chrono::seconds(10);
constexpr auto k_stop_timeout = std::chrono::seconds(5);

/// Replies received, and why the connection ended early (empty when every request got one).
struct Exchanges {
  std::vector<HttpReply> replies;
  std::string error;
};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
  return out;
}

template <class Stream>
TcpStream& tcp_of(Stream& stream) {
  return beast::get_lowest_layer(stream);
}

template <class Stream>
net::awaitable<Exchanges> exchange_all(Stream& stream, const std::vector<HttpRequest>& requests,
                                       const std::string& host, std::chrono::milliseconds timeout = k_control_timeout) {
  Exchanges out;
  beast::flat_buffer buffer;
  for (const HttpRequest& r : requests) {
    http::request<http::string_body> request;
    request.method_string(r.method);
    request.target(r.target);
    request.version(11);
    request.set(http::field::host, host);
    if (!r.body.empty()) request.set(http::field::content_type, "application/json");
    for (const auto& [name, value] : r.headers) request.set(name, value);
    request.body() = r.body;
    if (r.framing == BodyFraming::chunked) request.chunked(true);
    else request.prepare_payload();

    tcp_of(stream).expires_after(timeout);
    auto [write_ec, written] = co_await http::async_write(stream, request);
    if (write_ec) {
      out.error = "write: " + write_ec.message();
      co_return out;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 * 1024 * 1024);
    auto [read_ec, read] = co_await http::async_read(stream, buffer, parser);
    if (read_ec) {
      out.error = "read: " + read_ec.message();
      co_return out;
    }
    HttpReply reply;
    reply.status = parser.get().result_int();
    for (const auto& field : parser.get()) reply.headers.emplace_back(lower(field.name_string()), field.value());
    reply.body = parser.get().body();
    out.replies.push_back(std::move(reply));
  }
  co_return out;
}

net::awaitable<Exchanges> connect(TcpStream& stream, unsigned short port) {
  const tcp::endpoint endpoint(net::ip::make_address_v4("127.0.0.1"), port);
  stream.expires_after(k_control_timeout);
  auto [ec] = co_await stream.async_connect(endpoint);
  Exchanges out;
  if (ec) out.error = "connect: " + ec.message();
  co_return out;
}

net::awaitable<Exchanges> run_plain(unsigned short port, std::vector<HttpRequest> requests,
                                    std::chrono::milliseconds timeout = k_control_timeout) {
  auto executor = co_await net::this_coro::executor;
  TcpStream stream(executor);
  Exchanges connected = co_await connect(stream, port);
  if (!connected.error.empty()) co_return connected;
  const std::string host = "127.0.0.1:" + std::to_string(port);
  co_return co_await exchange_all(stream, requests, host, timeout);
}

/// One request per connection, all at once; each reply lands in its own slot.
net::awaitable<void> run_one(unsigned short port, HttpRequest request, std::chrono::milliseconds timeout,
                             Exchanges* out) {
  std::vector<HttpRequest> one;  // not a braced list in the co_await: g++ 12 miscompiles it
  one.push_back(std::move(request));
  Exchanges got = co_await run_plain(port, std::move(one), timeout);
  *out = std::move(got);
}

net::awaitable<Exchanges> run_tls(unsigned short port, std::vector<HttpRequest> requests, ssl::context& tls) {
  auto executor = co_await net::this_coro::executor;
  TlsStream stream(executor, tls);
  Exchanges connected = co_await connect(tcp_of(stream), port);
  if (!connected.error.empty()) co_return connected;
  SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
  auto [ec] = co_await stream.async_handshake(ssl::stream_base::client);
  if (ec) co_return Exchanges{{}, "TLS handshake: " + ec.message()};
  const std::string host = "localhost:" + std::to_string(port);
  co_return co_await exchange_all(stream, requests, host);
}

/// Runs the requests on one connection with a private io_context, within the control timeout.
Exchanges exchange(unsigned short port, bool use_tls, const std::vector<HttpRequest>& requests) {
  // Declared before the io_context, so a coroutine frame left behind by a timeout dies first.
  ssl::context tls(ssl::context::tls_client);
  tls.set_verify_mode(ssl::verify_none);  // TEST-ONLY control channel, see the header
  net::io_context io;
  std::future<Exchanges> done = use_tls ? net::co_spawn(io, run_tls(port, requests, tls), net::use_future)
                                        : net::co_spawn(io, run_plain(port, requests), net::use_future);
  io.run_for(k_control_timeout);
  if (done.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
    return Exchanges{{}, "no reply within the control timeout"};
  return done.get();
}

}  // namespace

std::vector<HttpReply> http_requests(unsigned short port, const std::vector<HttpRequest>& requests,
                                     std::chrono::milliseconds timeout) {
  std::vector<Exchanges> results(requests.size());
  net::io_context io;
  for (std::size_t i = 0; i < requests.size(); ++i)
    net::co_spawn(io, run_one(port, requests[i], timeout, &results[i]), net::detached);  // the io_context owns them
  io.run_for(timeout + std::chrono::seconds(1));
  std::vector<HttpReply> out;
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (results[i].replies.empty())
      throw std::runtime_error(requests[i].method + " " + requests[i].target + ": " +
                               (results[i].error.empty() ? "no reply in time" : results[i].error));
    out.push_back(std::move(results[i].replies.front()));
  }
  return out;
}

HttpReply http_request(unsigned short port, const HttpRequest& request, std::chrono::milliseconds timeout) {
  return http_requests(port, {request}, timeout).front();
}

HttpRequest post_json(std::string target, const boost::json::value& body) {
  HttpRequest request;
  request.method = "POST";
  request.target = std::move(target);
  request.body = json::serialize(body);
  return request;
}

std::string HttpReply::header(std::string_view name) const {
  const std::string key = lower(name);
  for (const auto& [n, v] : headers)
    if (n == key) return v;
  return {};
}

boost::json::value HttpReply::json() const { return json::parse(body); }

// ---- TestCerts -------------------------------------------------------------------------------

TestCerts::TestCerts() {
  const std::string script = DAGENT_SOURCE_DIR "/tests/server/make_certs.sh";
  ProcessResult result = run_process({"/bin/bash", script, dir_.path().string()}, dir_.path());
  if (result.exit_code != 0)
    throw std::runtime_error("make_certs.sh failed (" + std::to_string(result.exit_code) + "): " + result.err);
}

const TestCerts& TestCerts::get() {
  static const TestCerts certs;
  return certs;
}

// ---- TestServer ------------------------------------------------------------------------------

TestServer::TestServer(TestServerOptions options) : tls_(options.cert != ServerCert::none) {
  std::vector<std::string> argv = {DAGENT_TEST_SERVER, "--port", "0"};
  if (tls_) {
    const TestCerts& certs = TestCerts::get();
    const bool valid = options.cert == ServerCert::valid, wrong = options.cert == ServerCert::wrong_host;
    argv.push_back("--tls");
    argv.push_back((valid ? certs.server_cert() : wrong ? certs.wrong_host_cert() : certs.expired_cert()).string());
    argv.push_back((valid ? certs.server_key() : wrong ? certs.wrong_host_key() : certs.expired_key()).string());
  }
  if (options.script) {
    script_dir_.emplace();
    argv.push_back("--script");
    argv.push_back(script_dir_->write("script.json", json::serialize(*options.script)).string());
  }
  auto add_number = [&argv](const char* flag, std::int64_t value) {
    if (value == 0) return;
    argv.push_back(flag);
    argv.push_back(std::to_string(value));
  };
  add_number("--rpm", options.rpm);
  add_number("--tpm", options.tpm);
  add_number("--period-ms", options.period_ms);
  if (options.bucket) {
    argv.push_back("--rate-model");
    argv.push_back("bucket");
  }
  add_number("--latency-ms", options.latency_ms);
  add_number("--threads", options.threads);
  add_number("--connect-delay-ms", options.connect_delay_ms);
  add_number("--parent", ::getpid());  // the server dies with this process, however it ends
  if (options.handshake_fault != HandshakeFault::none) {
    argv.push_back("--handshake-fault");
    argv.push_back(options.handshake_fault == HandshakeFault::reset ? "reset" : "stall");
    argv.push_back(std::to_string(options.handshake_faults));
  }

  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);  // stderr stays the test's stderr
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    pid_ = -1;
    throw std::runtime_error(std::string("cannot start ") + DAGENT_TEST_SERVER);
  }
  const std::string line = read_line(out[0], k_startup_timeout);
  ::close(out[0]);  // the server prints nothing else

  constexpr std::string_view k_prefix = "listening on 127.0.0.1:";
  int port = 0;
  if (line.starts_with(k_prefix)) port = std::atoi(line.c_str() + k_prefix.size());
  if (port <= 0 || port > 65535) {
    stop();
    throw std::runtime_error("the test server did not start (first line: \"" + line + "\")");
  }
  port_ = static_cast<unsigned short>(port);
}

TestServer::~TestServer() { stop(); }

void TestServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + k_stop_timeout;
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  pid_ = -1;
}

std::string TestServer::base_url() const {
  return (tls_ ? "https://localhost:" : "http://127.0.0.1:") + std::to_string(port_) + "/v1";
}

std::vector<HttpReply> TestServer::request_on_one_connection(const std::vector<HttpRequest>& requests) const {
  return exchange(port_, tls_, requests).replies;
}

HttpReply TestServer::request(const HttpRequest& request) const {
  Exchanges result = exchange(port_, tls_, {request});
  if (result.replies.empty()) throw std::runtime_error(request.method + " " + request.target + ": " + result.error);
  return std::move(result.replies.front());
}

std::int64_t TestServer::requests_to(std::string_view path) const {
  const auto all = stats();  // named: the counters below point into it
  const auto* n = all.at("requests").at("by_path").as_object().if_contains(path);
  return n ? n->to_number<std::int64_t>() : 0;
}

boost::json::value TestServer::stats() const {
  HttpReply reply = request(HttpRequest{"GET", "/_stats"});
  if (reply.status != 200) throw std::runtime_error("GET /_stats: " + std::to_string(reply.status));
  return reply.json();
}

void TestServer::set_script(const boost::json::value& script) const {
  HttpReply reply = request(post_json("/_script", script));
  if (reply.status != 200) throw std::runtime_error("POST /_script refused: " + reply.body);
}

void TestServer::reset() const {
  HttpRequest r;
  r.method = "POST";
  r.target = "/_reset";
  HttpReply reply = request(r);
  if (reply.status != 200) throw std::runtime_error("POST /_reset: " + std::to_string(reply.status));
}

}  // namespace dagent::test
