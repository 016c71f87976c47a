// Session: JSON-RPC 2.0 over a Transport, for MCP.

#include "mcp/session.hpp"

#include <deque>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

namespace dagent::mcp {

namespace asio = boost::asio;
namespace json = boost::json;
using Timer = asio::as_tuple_t<asio::use_awaitable_t<>>::as_default_on_t<asio::steady_timer>;

struct Outgoing {
  explicit Outgoing(asio::any_io_executor ex, std::shared_ptr<Transport> t)
      : transport(std::move(t)), wake(ex), done(ex) {}
  std::shared_ptr<Transport> transport;
  std::deque<json::object> queue;
  Timer wake;
  Timer done;
  bool stop = false;
  bool running = false;
};

struct Session::Pending {
  explicit Pending(asio::any_io_executor ex) : wake(ex) {}
  Timer wake;  // cancelled when the response arrives, the channel closes, or progress restarts the clock
  std::optional<boost::system::result<json::value, RequestError>> outcome;
  std::function<void(const Progress&)> on_progress;
  asio::steady_timer::time_point deadline;
};

namespace {

constexpr std::size_t k_max_queued = 1024;  // answers and cancellations not yet sent

asio::awaitable<void> send_queued(std::shared_ptr<Outgoing> out) {
  while (!out->stop) {
    if (out->queue.empty()) {
      out->wake.expires_at(asio::steady_timer::time_point::max());
      co_await out->wake.async_wait();
      continue;
    }
    auto message = std::move(out->queue.front());
    out->queue.pop_front();
    (void)co_await out->transport->send(std::move(message));  // a failure also closes the transport
  }
}

struct SenderDone {
  std::shared_ptr<Outgoing> out;
  void operator()(std::exception_ptr) const {
    out->running = false;
    out->done.cancel();
  }
};

// Leaves the pending map when the request ends in any way, cancellation included.
struct PendingEntry {
  std::map<std::int64_t, Session::Pending*>& map;
  std::int64_t id;
  ~PendingEntry() { map.erase(id); }
};

RequestError closed_error(std::string reason) { return {ToolErrc::unavailable, std::move(reason)}; }

std::optional<std::int64_t> id_of(const json::value* id) {
  if (id == nullptr) return std::nullopt;
  if (id->is_int64()) return id->get_int64();
  if (id->is_uint64() && id->get_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    return static_cast<std::int64_t>(id->get_uint64());
  return std::nullopt;
}

std::optional<double> number_of(const json::value* v) {
  if (v == nullptr) return std::nullopt;
  if (v->is_double()) return v->get_double();
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  if (v->is_uint64()) return static_cast<double>(v->get_uint64());
  return std::nullopt;
}

}  // namespace

Session::Session(asio::any_io_executor executor, std::shared_ptr<Transport> transport, std::string server,
                 std::chrono::milliseconds timeout)
    : executor_(executor),
      transport_(std::move(transport)),
      server_(std::move(server)),
      timeout_(timeout),
      outgoing_(std::make_shared<Outgoing>(executor, transport_)) {}

Session::~Session() {
  outgoing_->stop = true;
  outgoing_->wake.cancel();
  transport_->set_handler({});
}

asio::awaitable<boost::system::result<void, std::string>> Session::open() {
  TransportHandler handler;
  handler.message = [this](json::object m) { on_message(std::move(m)); };
  handler.closed = [this](std::string reason) { on_transport_closed(std::move(reason)); };
  transport_->set_handler(std::move(handler));
  auto opened = co_await transport_->open();
  if (!opened) {
    alive_ = false;
    closed_reason_ = opened.error();
    co_return opened;
  }
  alive_ = true;
  outgoing_->running = true;
  asio::co_spawn(executor_, send_queued(outgoing_), SenderDone{outgoing_});
  co_return opened;
}

void Session::queue(json::object message) {
  if (!alive_ || outgoing_->queue.size() >= k_max_queued) return;  // best effort: these need no answer
  outgoing_->queue.push_back(std::move(message));
  outgoing_->wake.cancel();
}

void Session::queue_cancelled(std::int64_t id, const std::string& reason) {
  queue(json::object{{"jsonrpc", "2.0"},
                     {"method", "notifications/cancelled"},
                     {"params", json::object{{"requestId", id}, {"reason", reason}}}});
}

Session::CancelOnUnwind::~CancelOnUnwind() {
  if (armed && !pending->outcome) session->queue_cancelled(id, "the step was cancelled (timeout or interrupt)");
}

asio::awaitable<boost::system::result<json::value, RequestError>> Session::request(
    std::string method, json::object params, std::function<void(const Progress&)> on_progress) {
  if (!alive_) co_return RequestError{ToolErrc::unavailable, closed_reason_.empty() ? "MCP server '" + server_ + "' is not running" : closed_reason_};
  const auto cancellation = co_await asio::this_coro::cancellation_state;
  const std::int64_t id = next_id_++;
  Pending pending(executor_);
  pending.on_progress = std::move(on_progress);
  if (pending.on_progress) params["_meta"].emplace_object()["progressToken"] = id;
  pending.deadline = asio::steady_timer::clock_type::now() + timeout_;
  pending_[id] = &pending;
  PendingEntry entry{pending_, id};
  json::object message{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.empty()) message["params"] = std::move(params);
  {
    // Over HTTP the send lasts until the answer has come (the response streams back), so a step
    // timeout or Ctrl-C lands inside it: the guard tells the server then, even when the send
    // throws. Over stdio the send only queues the line and this never fires.
    CancelOnUnwind guard{this, id, &pending};
    auto sent = co_await transport_->send(std::move(message));
    guard.armed = false;
    if (!sent && !pending.outcome) {
      if (cancellation.cancelled() != asio::cancellation_type::none) {
        queue_cancelled(id, "the step was cancelled (timeout or interrupt)");
        co_return RequestError{ToolErrc::cancelled, "MCP server '" + server_ + "': " + method + " cancelled"};
      }
      co_return closed_error(sent.error());
    }
  }
  while (!pending.outcome) {
    pending.wake.expires_at(pending.deadline);
    auto [ec] = co_await pending.wake.async_wait();
    if (pending.outcome) break;
    const bool caller_gave_up = cancellation.cancelled() != asio::cancellation_type::none;
    const bool expired = !ec && asio::steady_timer::clock_type::now() >= pending.deadline;
    if (caller_gave_up || expired) {
      // The server may still be working on it: tell it to stop (MCP "Cancellation"). No co_await
      // here: this coroutine is being cancelled, so its next co_await would throw.
      const std::string reason = caller_gave_up ? "the step was cancelled (timeout or interrupt)"
                                                : "no answer within " + std::to_string(timeout_.count()) + " ms";
      queue_cancelled(id, reason);
      if (caller_gave_up) co_return RequestError{ToolErrc::cancelled, "MCP server '" + server_ + "': " + method + " cancelled"};
      co_return RequestError{ToolErrc::timed_out, "MCP server '" + server_ + "': " + method + ": " + reason +
                                                      " (mcp.servers." + server_ + ".timeout_ms)"};
    }
  }
  co_return std::move(*pending.outcome);
}

asio::awaitable<boost::system::result<void, std::string>> Session::notify(std::string method, json::object params) {
  if (!alive_) co_return closed_reason_;
  json::object message{{"jsonrpc", "2.0"}, {"method", std::move(method)}};
  if (!params.empty()) message["params"] = std::move(params);
  co_return co_await transport_->send(std::move(message));
}

void Session::on_message(json::object message) {
  const auto* method = message.if_contains("method");
  if (method != nullptr && method->is_string()) {
    if (message.contains("id")) {
      answer_server_request(message);
      return;
    }
    if (*method == "notifications/progress") {
      const auto* params = message.if_contains("params");
      const auto* p = params && params->is_object() ? &params->get_object() : nullptr;
      const auto token = p ? id_of(p->if_contains("progressToken")) : std::nullopt;
      const auto it = token ? pending_.find(*token) : pending_.end();
      if (it == pending_.end() || !it->second->on_progress) return;  // late or unknown: dropped
      Progress progress;
      progress.progress = number_of(p->if_contains("progress")).value_or(0);
      progress.total = number_of(p->if_contains("total"));
      if (const auto* m = p->if_contains("message"); m && m->is_string()) progress.message = m->get_string();
      it->second->deadline = asio::steady_timer::clock_type::now() + timeout_;  // MCP "Timeouts": progress resets it
      it->second->on_progress(progress);
      return;
    }
    return;  // other notifications (logging, list_changed) are not used
  }
  const auto id = id_of(message.if_contains("id"));
  const auto it = id ? pending_.find(*id) : pending_.end();
  if (it == pending_.end()) return;  // an answer to a request given up
  auto& pending = *it->second;
  if (const auto* error = message.if_contains("error"); error && error->is_object()) {
    const auto* text = error->get_object().if_contains("message");
    std::string what = text && text->is_string() ? std::string(text->get_string()) : json::serialize(*error);
    pending.outcome = RequestError{ToolErrc::failed, "MCP server '" + server_ + "': " + what};
  } else if (const auto* result = message.if_contains("result")) {
    pending.outcome = *result;
  } else {
    pending.outcome = RequestError{ToolErrc::failed, "MCP server '" + server_ + "' answered without result or error"};
  }
  pending.wake.cancel();
}

void Session::answer_server_request(const json::object& message) {
  const auto& method = message.at("method").get_string();
  json::object answer{{"jsonrpc", "2.0"}, {"id", message.at("id")}};
  if (method == "ping") {
    answer["result"] = json::object{};
  } else {
    // We declare no client capabilities (roots, sampling, elicitation): each such request is
    // refused as the specification asks, so the server can go on without it.
    answer["error"] = json::object{{"code", -32601},
                                   {"message", "dagent does not support " + std::string(method)}};
  }
  queue(std::move(answer));
}

void Session::on_transport_closed(std::string reason) {
  if (!alive_) return;
  alive_ = false;
  closed_reason_ = std::move(reason);
  for (auto& [id, pending] : pending_) {
    if (pending->outcome) continue;
    pending->outcome = closed_error(closed_reason_);
    pending->wake.cancel();
  }
  outgoing_->stop = true;
  outgoing_->wake.cancel();
  if (on_closed_ && !closing_) on_closed_(closed_reason_);
}

asio::awaitable<void> Session::close() {
  if (closing_) co_return;
  closing_ = true;
  // What is queued (a cancellation, above all) goes out before the shutdown.
  while (alive_ && !outgoing_->queue.empty()) {
    auto message = std::move(outgoing_->queue.front());
    outgoing_->queue.pop_front();
    (void)co_await transport_->send(std::move(message));
  }
  on_transport_closed("MCP server '" + server_ + "' was shut down");
  co_await transport_->close();
  while (outgoing_->running) {
    outgoing_->done.expires_at(asio::steady_timer::time_point::max());
    co_await outgoing_->done.async_wait();
  }
}

}  // namespace dagent::mcp
