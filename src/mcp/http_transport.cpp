// The Streamable HTTP transport (MCP "Transports", 2025-06-18 and 2025-11-25): each message is
// POSTed to the endpoint over dagent's pooled HTTP client; the answer is 202 Accepted (a
// notification or response), one JSON message, or an SSE stream of messages that ends after the
// response to the request. The session ID the server gives with the initialize result and the
// negotiated protocol version go with every later request; a 404 to a request that carried the
// session ID means the session expired. close() DELETEs the session. The GET stream for messages
// the server sends on its own is not opened; a stream the server ends before the response is
// resumed with a GET carrying Last-Event-ID when its events had IDs. Used from one loop, that of `executor` (the HTTP
// client is single-threaded); the handler is called from the send() that read the message.

#include "mcp/transport.hpp"

#include <algorithm>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <simdjson.h>

#include "mcp/http_transport_reader.hpp"
#include "net/http_client.hpp"
#include "net/net_error.hpp"
#include "net/secret.hpp"
#include "net/tls_context.hpp"
#include "net/url.hpp"
#include "text/json_utf8.hpp"
#include "text/redact.hpp"
#include "text/utf8.hpp"

namespace dagent::mcp {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using Result = boost::system::result<void, std::string>;
constexpr auto k_token = asio::as_tuple(asio::use_awaitable);

constexpr std::size_t k_max_message_bytes = 16u << 20;   // one message (a tool result with images)
constexpr std::size_t k_max_stream_bytes = 64u << 20;    // one answer, progress notifications included
constexpr std::size_t k_max_error_bytes = 8u << 10;      // of an error body, read for its message
constexpr auto k_max_stream_time = std::chrono::hours(1);  // a long tool call; the session bounds calls
// Why: a server SHOULD end the stream after the response, and the connection can then be pooled;
// the end normally arrives with the last event. A server that keeps the stream open costs this
// much per call, then the stream (and its connection) is dropped.
constexpr auto k_drain_grace = std::chrono::milliseconds(200);
// Why below 5 s: Node's HTTP server (most MCP servers) closes idle keep-alive connections after
// 5 s, and a request racing that close is the one case the client must retry.
constexpr auto k_pool_idle = std::chrono::milliseconds(4000);
// Resuming a stream the server ended before the response: at most this many times per request,
// and giving up after this many streams in a row without a message; the server's `retry` wait is
// capped.
constexpr int k_max_resumes = 100;
constexpr int k_max_fruitless_resumes = 3;
constexpr auto k_max_retry = std::chrono::milliseconds(10000);

// Headers the transport sets itself; a configured header of the same name is not sent.
constexpr std::string_view k_own_headers[] = {"accept",         "content-type",      "content-length",
                                              "mcp-session-id", "mcp-protocol-version", "host",
                                              "connection",     "transfer-encoding", "last-event-id"};

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? x + 32 : x) == (y >= 'A' && y <= 'Z' ? y + 32 : y);
         });
}

bool own_header(std::string_view name) noexcept {
  return std::any_of(std::begin(k_own_headers), std::end(k_own_headers),
                     [name](std::string_view own) { return iequals(own, name); });
}

// Session IDs and protocol versions are visible ASCII (0x21..0x7E) by the specification; anything
// else would be refused, or worse, split a header.
bool visible_ascii(std::string_view s, std::size_t max) noexcept {
  return !s.empty() && s.size() <= max &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7E; });
}

// text::excerpt, with "…" when the text was cut.
std::string excerpt(std::string_view text, std::size_t limit = 300) {
  return text::excerpt(text, limit) + (text.size() > limit ? "…" : "");
}

// What an error body says: the message of a JSON-RPC error object ({"error": {"message"}}) when
// it is one, else the body's text.
std::string said_by(std::string body) {
  text::make_valid_utf8(body);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  std::string_view message;
  if (!parser.parse(body.data(), body.size()).get(root) && !root["error"]["message"].get(message))
    return std::string(message);
  return body;
}

bool unreachable(const net::HttpError& e) noexcept {
  return e.code == net::NetErrc::resolve_failed || e.code == net::NetErrc::connect_failed ||
         e.code == net::NetErrc::connect_timeout || e.code == net::NetErrc::tls_handshake_failed;
}

// What the POSTed message is: a request (whose response ends the exchange), or not.
struct Outgoing {
  std::optional<json::value> request_id;
  bool initialize = false;
};

Outgoing classify(const json::object& message) {
  Outgoing out;
  const auto* method = message.if_contains("method");
  const auto* id = message.if_contains("id");
  if (method && id) {
    out.request_id = *id;
    out.initialize = method->is_string() && method->get_string() == "initialize";
  }
  return out;
}

class HttpTransport final : public Transport {
 public:
  HttpTransport(asio::any_io_executor executor, HttpEndpoint endpoint)
      : executor_(std::move(executor)), endpoint_(std::move(endpoint)) {}

  void set_handler(TransportHandler handler) override { handler_ = std::move(handler); }
  asio::awaitable<Result> open() override;
  asio::awaitable<Result> send(json::object message) override;
  asio::awaitable<void> close() override;
  std::string describe() const override { return "http: " + endpoint_.url; }

 private:
  asio::awaitable<Result> read_answer(net::HttpStream stream, Outgoing outgoing, std::string sent_session);
  // How one stream of an answer ended: answered; failed (`error`: bad content, a timeout, never
  // resumed); or ended or broke before the response (`cut`).
  struct StreamEnd {
    bool answered = false;
    std::string error;
    std::string cut;
  };
  asio::awaitable<Result> read_messages(net::HttpStream stream, HttpBodyKind kind, Outgoing outgoing);
  asio::awaitable<StreamEnd> read_stream(net::HttpStream stream, HttpTransportReader* reader, Outgoing outgoing);
  asio::awaitable<boost::system::result<net::HttpStream, std::string>> resume(std::string last_event_id,
                                                                              std::optional<std::int64_t> retry_ms);
  asio::awaitable<void> drain(net::HttpStream stream, HttpTransportReader* reader);
  net::StreamLimits stream_limits() const;
  asio::awaitable<std::string> error_text(net::HttpStream stream);

  net::HttpRequest request(std::string method, std::string body) const;
  void deliver(std::vector<json::object>& messages, const Outgoing& outgoing);
  std::string failure(std::string_view what) const;
  void report_closed(std::string reason);

  asio::any_io_executor executor_;
  HttpEndpoint endpoint_;
  TransportHandler handler_;
  std::optional<net::BaseUrl> url_;
  std::string target_;
  std::unique_ptr<net::HttpClient> http_;  // from open() on
  std::string session_id_;                 // from the initialize answer on; empty when none
  std::string protocol_version_;           // from the initialize result on
  bool closed_ = false;                    // close() was called
  bool closed_reported_ = false;           // handler.closed was called since the last answer
};

std::string HttpTransport::failure(std::string_view what) const {
  // Header values (tokens) are masked with the process's secrets, should a server echo one.
  std::vector<std::string> secrets = text::secrets()->secrets();
  for (const auto& [name, value] : endpoint_.headers) secrets.push_back(value);
  return text::Redactor(std::move(secrets))
      .masked("MCP server '" + endpoint_.server + "' (" + describe() + "): " + std::string(what));
}

void HttpTransport::report_closed(std::string reason) {
  if (closed_reported_) return;
  closed_reported_ = true;
  if (handler_.closed) handler_.closed(std::move(reason));
}

net::HttpRequest HttpTransport::request(std::string method, std::string body) const {
  net::HttpRequest r;
  r.method = std::move(method);
  r.target = target_;
  for (const auto& [name, value] : endpoint_.headers)
    if (!own_header(name)) r.headers.push_back({name, value});
  if (!body.empty()) r.headers.push_back({"Content-Type", "application/json"});
  r.headers.push_back({"Accept", "application/json, text/event-stream"});
  if (!session_id_.empty()) r.headers.push_back({"Mcp-Session-Id", session_id_});
  if (!protocol_version_.empty()) r.headers.push_back({"MCP-Protocol-Version", protocol_version_});
  r.body = std::move(body);
  return r;
}

net::StreamLimits HttpTransport::stream_limits() const {
  net::StreamLimits limits;
  limits.idle_timeout = endpoint_.timeout;
  limits.total_timeout = std::max<std::chrono::milliseconds>(endpoint_.timeout, k_max_stream_time);
  limits.max_bytes = k_max_stream_bytes;
  return limits;
}

asio::awaitable<Result> HttpTransport::open() {
  if (closed_) co_return failure("the transport is closed");
  if (http_) co_return Result{};
  auto url = net::parse_base_url(endpoint_.url);
  if (!url) co_return failure("invalid url: " + url.error());
  if (!url->origin.tls && !net::is_loopback_host(url->origin.host))
    co_return failure("http:// sends the messages and headers in clear text to " + url->origin.host +
                      "; use https:// (plain http is allowed only for loopback hosts: localhost, 127.0.0.0/8, ::1)");
  std::shared_ptr<net::TlsContext> tls;
  if (url->origin.tls) {
    auto made = net::TlsContext::create(endpoint_.ca_file);
    if (!made) co_return failure(made.error());
    tls = std::move(*made);
  }
  // The endpoint is used as written: parse_base_url drops a trailing slash, some servers route it.
  target_ = url->path;
  if (!target_.empty() && endpoint_.url.back() == '/') target_ += '/';
  if (target_.empty()) target_ = "/";
  net::HttpOptions options;
  options.request_timeout = endpoint_.timeout;
  options.connect_timeout = std::min(options.connect_timeout, endpoint_.timeout);
  options.max_connections = 64;
  options.max_keepalive = 16;
  options.idle_timeout = k_pool_idle;
  options.max_body_bytes = k_max_stream_bytes;
  options.peer = "mcp";
  http_ = std::make_unique<net::HttpClient>(executor_, std::move(tls), options);
  url_ = std::move(*url);
  co_return Result{};
}

asio::awaitable<Result> HttpTransport::send(json::object message) {
  if (closed_) co_return failure("the transport is closed");
  if (!http_) co_return failure("the transport is not open");
  Outgoing outgoing = classify(message);
  if (outgoing.initialize) {
    // A new session: the old one's ID (expired, or left) must not go with its initialize.
    session_id_.clear();
    protocol_version_.clear();
  }
  std::string sent_session = session_id_;
  auto opened = co_await http_->open_stream(url_->origin, request("POST", text::serialize_valid(message)), stream_limits());
  if (!opened) {
    std::string why = failure(opened.error().message);
    if (unreachable(opened.error())) report_closed(why);
    co_return why;
  }
  co_return co_await read_answer(std::move(*opened), std::move(outgoing), std::move(sent_session));
}

asio::awaitable<Result> HttpTransport::read_answer(net::HttpStream stream, Outgoing outgoing, std::string sent_session) {
  const int status = stream.status();
  if (status == 404 && !sent_session.empty()) {
    // The specification: the session ended on the server; the client must initialize again.
    if (session_id_ == sent_session) {
      session_id_.clear();
      protocol_version_.clear();
    }
    std::string why = failure("the session expired (HTTP 404); a new one needs an initialize");
    report_closed(why);
    co_return why;
  }
  if (status < 200 || status > 299) {
    const std::string said = co_await error_text(std::move(stream));
    co_return failure("HTTP " + std::to_string(status) + (said.empty() ? std::string() : ": " + said));
  }
  if (outgoing.initialize) {
    if (const std::string* id = stream.header("mcp-session-id")) {
      if (!visible_ascii(*id, 1024)) co_return failure("the Mcp-Session-Id the server sent is not visible ASCII");
      session_id_ = *id;
    }
  }
  closed_reported_ = false;  // the server answers: a later failure is news again
  const std::string* content_type = stream.header("content-type");
  if (status == 202 || !content_type) {
    if (outgoing.request_id)
      co_return failure(status == 202 ? "the server answered a request with 202 Accepted: its response would come on "
                                        "the GET stream, which dagent does not open"
                                      : "the answer to a request has no Content-Type");
    HttpTransportReader nothing(HttpBodyKind::json, std::nullopt, 0);  // any byte fails it: the stream is dropped
    co_await drain(std::move(stream), &nothing);
    co_return Result{};
  }
  auto kind = http_body_kind(*content_type);
  if (!kind) {
    if (!outgoing.request_id) co_return Result{};  // nothing was expected; the stream is dropped
    co_return failure(kind.error());
  }
  co_return co_await read_messages(std::move(stream), *kind, std::move(outgoing));
}

asio::awaitable<Result> HttpTransport::read_messages(net::HttpStream stream, HttpBodyKind kind, Outgoing outgoing) {
  HttpTransportReader reader(kind, outgoing.request_id, k_max_message_bytes);
  int resumes = 0, fruitless = 0;
  for (;;) {
    const std::size_t before = reader.messages_read();
    StreamEnd end = co_await read_stream(std::move(stream), &reader, outgoing);
    if (end.answered) co_return Result{};
    if (!end.error.empty()) co_return failure(end.error);
    if (!outgoing.request_id) co_return Result{};  // nothing more was expected
    // Protocol 2025-11-25: a server may end the stream before the response (after events with
    // IDs) and the client resumes it with a GET carrying Last-Event-ID. A stream without IDs
    // cannot be resumed.
    if (kind != HttpBodyKind::event_stream || reader.last_event_id().empty()) co_return failure(end.cut);
    fruitless = reader.messages_read() == before ? fruitless + 1 : 0;
    if (fruitless > k_max_fruitless_resumes || resumes == k_max_resumes)
      co_return failure(end.cut + " (after " + std::to_string(resumes) + " resumed streams)");
    ++resumes;
    auto resumed = co_await resume(reader.last_event_id(), reader.retry_ms());
    if (!resumed) co_return failure(end.cut + ", and resuming it failed: " + resumed.error());
    stream = std::move(*resumed);
    reader.resume();
  }
}

asio::awaitable<HttpTransport::StreamEnd> HttpTransport::read_stream(net::HttpStream stream, HttpTransportReader* reader,
                                                                     Outgoing outgoing) {
  std::vector<json::object> messages;
  std::string bytes;
  const std::string unanswered =
      outgoing.request_id ? "the answer ended before the response to request " + json::serialize(*outgoing.request_id)
                          : std::string("the answer ended");
  for (;;) {
    bytes.clear();
    messages.clear();
    auto got = co_await stream.read_some(bytes);
    if (!got) {
      const bool cut = got.error().code == net::NetErrc::truncated || got.error().code == net::NetErrc::connection_closed;
      if (cut) co_return StreamEnd{false, {}, unanswered + ": " + got.error().message};
      co_return StreamEnd{false, got.error().message, {}};
    }
    const bool ended = *got == 0;
    auto parsed = ended ? reader->finish(messages) : reader->feed(bytes, messages);
    deliver(messages, outgoing);  // what came before a bad message is still the server's word
    if (ended && reader->answered()) co_return StreamEnd{true, {}, {}};
    if (!parsed) {
      // An event stream that ended mid-event was cut (resumable); a JSON body that does not parse is bad.
      if (ended && reader->kind() == HttpBodyKind::event_stream)
        co_return StreamEnd{false, {}, unanswered + ": " + parsed.error()};
      co_return StreamEnd{false, parsed.error(), {}};
    }
    if (ended) co_return StreamEnd{false, {}, unanswered};
    if (reader->answered()) {
      co_await drain(std::move(stream), reader);
      co_return StreamEnd{true, {}, {}};
    }
  }
}

asio::awaitable<boost::system::result<net::HttpStream, std::string>> HttpTransport::resume(
    std::string last_event_id, std::optional<std::int64_t> retry_ms) {
  if (std::any_of(last_event_id.begin(), last_event_id.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
    co_return std::string("the last event ID holds control characters");
  if (retry_ms && *retry_ms > 0) {
    asio::steady_timer wait(co_await asio::this_coro::executor,
                            std::chrono::milliseconds(std::min<std::int64_t>(*retry_ms, k_max_retry.count())));
    co_await wait.async_wait(k_token);
  }
  net::HttpRequest get = request("GET", "");
  get.headers.push_back({"Last-Event-ID", std::move(last_event_id)});
  auto opened = co_await http_->open_stream(url_->origin, std::move(get), stream_limits());
  if (!opened) co_return opened.error().message;
  if (opened->status() != 200) co_return "HTTP " + std::to_string(opened->status());
  const std::string* content_type = opened->header("content-type");
  const auto kind = content_type ? http_body_kind(*content_type) : http_body_kind("");
  if (!kind || *kind != HttpBodyKind::event_stream) co_return std::string("the answer is not an event stream");
  co_return std::move(*opened);
}

// Reads on after the response for the end of the body, so the connection goes back to the pool;
// what still arrives is delivered. Gives up after k_drain_grace (dropping the stream closes its
// connection).
asio::awaitable<void> HttpTransport::drain(net::HttpStream stream, HttpTransportReader* reader) {
  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer grace(co_await asio::this_coro::executor, k_drain_grace);
  const Outgoing after_response;  // the initialize result, if it was one, was seen already
  std::vector<json::object> messages;
  std::string bytes;
  for (;;) {
    bytes.clear();
    auto first = co_await (stream.read_some(bytes) || grace.async_wait(k_token));
    if (first.index() == 1) co_return;
    const auto& got = std::get<0>(first);
    if (!got || *got == 0) co_return;
    messages.clear();
    const auto parsed = reader->feed(bytes, messages);
    deliver(messages, after_response);
    if (!parsed) co_return;
  }
}

asio::awaitable<std::string> HttpTransport::error_text(net::HttpStream stream) {
  std::string body;
  while (body.size() < k_max_error_bytes) {
    auto got = co_await stream.read_some(body);
    if (!got || *got == 0) break;
  }
  co_return excerpt(said_by(std::move(body)));
}

void HttpTransport::deliver(std::vector<json::object>& messages, const Outgoing& outgoing) {
  for (auto& message : messages) {
    if (outgoing.initialize && outgoing.request_id && !message.contains("method")) {
      const auto* id = message.if_contains("id");
      const auto* result = message.if_contains("result");
      const auto* version = result && result->is_object() ? result->get_object().if_contains("protocolVersion") : nullptr;
      if (id && *id == *outgoing.request_id && version && version->is_string() &&
          visible_ascii(version->get_string(), 64))
        protocol_version_ = version->get_string();
    }
    if (handler_.message) handler_.message(std::move(message));
  }
}

asio::awaitable<void> HttpTransport::close() {
  if (closed_) co_return;
  closed_ = true;
  if (!http_ || session_id_.empty()) co_return;
  net::HttpRequest request = this->request("DELETE", "");
  session_id_.clear();
  try {
    // The answer does not matter: 405 says the server does not let clients end sessions.
    co_await http_->send(url_->origin, std::move(request));
  } catch (const std::exception&) {
    // Cancelled while deleting: the server's session times out on its own.
  }
}

}  // namespace

std::unique_ptr<Transport> make_http_transport(asio::any_io_executor executor, HttpEndpoint endpoint) {
  return std::make_unique<HttpTransport>(std::move(executor), std::move(endpoint));
}

}  // namespace dagent::mcp
