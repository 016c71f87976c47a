#include "server_state.hpp"

#include "openai_replies.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace dagent::test_server {
namespace json = boost::json;

namespace {

enum class Route { chat_completions, embeddings, unknown };

// Any prefix works ("/v1/chat/completions", "/chat/completions", "/proxy/v1/..."), so the base
// URL may carry a path of its own.
Route route_of(std::string_view path) {
  if (path.ends_with("/chat/completions")) return Route::chat_completions;
  if (path.ends_with("/embeddings")) return Route::embeddings;
  return Route::unknown;
}

std::string path_of(std::string_view target) { return std::string(target.substr(0, target.find('?'))); }

Reply json_reply(unsigned status, std::string body) {
  Reply reply;
  reply.status = status;
  reply.body = std::move(body);
  return reply;
}

Reply error_reply(unsigned status, std::string_view message, std::string_view type, std::string_view code) {
  return json_reply(status, error_body(message, type, code));
}

/// The body of a scripted error status that has no `body` of its own.
std::string default_error_body(unsigned status) {
  std::string message = "scripted status " + std::to_string(status);
  if (status == 429) return error_body(message, "requests", "rate_limit_exceeded");
  if (status == 401) return error_body(message, "invalid_request_error", "invalid_api_key");
  if (status >= 500) return error_body(message, "server_error", "");
  return error_body(message, "invalid_request_error", "");
}

/// OpenAI's estimate of what a request may use: its prompt plus the completion it allows.
std::int64_t declared_tokens(const std::string& body, const json::value& document) {
  std::int64_t tokens = estimate_tokens(body.size());
  if (const json::object* o = document.if_object()) {
    for (std::string_view key : {"max_completion_tokens", "max_tokens"}) {
      const json::value* v = o->if_contains(key);
      if (v && v->is_int64()) return tokens + v->get_int64();
      if (v && v->is_uint64()) return tokens + static_cast<std::int64_t>(v->get_uint64());
    }
  }
  return tokens;
}

std::string seconds_text(std::chrono::milliseconds ms) {
  return std::to_string(ms.count() / 1000) + "." + std::to_string(ms.count() % 1000 / 100) + "s";
}

/// What the shared state decided about an API request; the reply is built from it unlocked.
struct ApiDecision {
  std::uint64_t record = 0;
  HeaderList limit_headers;
  std::optional<RateDecision> rejection;  // the limiter said no
  std::optional<std::size_t> rule;
  std::optional<RuleAction> action;
  std::uint64_t completion = 0;
};

Reply rate_limited_reply(const RateDecision& decision) {
  const bool requests = decision.verdict == RateVerdict::requests_exceeded;
  Reply reply = error_reply(429,
                            std::string("Rate limit reached for ") +
                                (requests ? "requests per min (RPM)" : "tokens per min (TPM)") +
                                ". Please try again in " + seconds_text(decision.retry_after) + ".",
                            requests ? "requests" : "tokens", "rate_limit_exceeded");
  reply.headers.emplace_back("retry-after-ms", std::to_string(decision.retry_after.count()));
  reply.headers.emplace_back("retry-after", std::to_string((decision.retry_after.count() + 999) / 1000));
  return reply;
}

Reply chat_reply(const ChatRequest& chat, const RuleAction* action, std::uint64_t completion) {
  std::string content;
  if (action && action->reply) {
    content = *action->reply;
  } else if (action && action->stream_chunks) {
    for (const std::string& piece : *action->stream_chunks) content += piece;
  } else {
    content = default_chat_content(chat);
  }
  const CompletionId id{
      "chatcmpl-test-" + std::to_string(completion),
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count()};
  Reply reply;
  if (chat.stream) {
    const std::vector<std::string> pieces =
        action && action->stream_chunks ? *action->stream_chunks : split_into_pieces(content);
    reply.content_type = "text/event-stream; charset=utf-8";
    reply.events = action && action->stream_events ? *action->stream_events : chat_stream_events(chat, pieces, id);
    reply.headers.emplace_back("cache-control", "no-cache");
  } else {
    reply.body = chat_completion_body(chat, content, id);
  }
  return reply;
}

/// The reply without its decorations (limit headers, rule headers, latency, fault).
Reply api_body_reply(const IncomingRequest& request, const std::string& path, Route route,
                     const json::value& document, bool body_is_json, const ApiDecision& decision) {
  if (decision.rejection) return rate_limited_reply(*decision.rejection);
  const RuleAction* action = decision.action ? &*decision.action : nullptr;
  if (action && (action->body || (action->status && *action->status != 200))) {
    const unsigned status = action->status.value_or(200);
    return json_reply(status, action->body ? *action->body : default_error_body(status));
  }
  if (route == Route::unknown)
    return error_reply(404, "Invalid URL (" + request.method + " " + path + ")", "invalid_request_error", "");
  if (request.method != "POST")
    return error_reply(405, "Method " + request.method + " not allowed on " + path, "invalid_request_error", "");
  if (!body_is_json)
    return error_reply(400, "We could not parse the JSON body of your request.", "invalid_request_error", "");
  if (route == Route::embeddings) {
    auto body = embeddings_body(document);
    return body ? json_reply(200, std::move(*body)) : error_reply(400, body.error().message, "invalid_request_error", "");
  }
  auto chat = parse_chat_request(document);
  if (!chat) return error_reply(400, chat.error().message, "invalid_request_error", "");
  return chat_reply(*chat, action, decision.completion);
}

}  // namespace

ServerState::ServerState(ServerConfig config)
    : latency_(config.latency),
      handshake_fault_(config.handshake_fault),
      handshake_faults_left_(config.handshake_faults),
      script_(std::move(config.script)),
      limiter_(config.limits) {}

Fault ServerState::take_handshake_fault() {
  std::lock_guard lock(mutex_);
  if (handshake_faults_left_ == 0) return Fault::none;
  --handshake_faults_left_;
  return handshake_fault_;
}

std::uint64_t ServerState::connection_opened() {
  std::lock_guard lock(mutex_);
  return stats_.connection_opened();
}

void ServerState::tls_handshake(ConnectionInfo& connection, bool succeeded) {
  std::lock_guard lock(mutex_);
  connection.tls_handshaken = succeeded;
  stats_.tls_handshake(succeeded);
}

void ServerState::connection_closed(const ConnectionInfo& connection) {
  std::lock_guard lock(mutex_);
  stats_.connection_closed(connection.control);
}

void ServerState::request_finished(const Reply& reply, unsigned status_sent) {
  if (!reply.record) return;
  std::lock_guard lock(mutex_);
  stats_.request_completed(*reply.record, status_sent, reply.fault, reply.rule, Clock::now());
}

Reply ServerState::respond(ConnectionInfo& connection, const IncomingRequest& request) {
  const std::string path = path_of(request.target);
  ++connection.requests;
  if (path.starts_with("/_")) {
    Reply reply;
    std::vector<std::function<void()>> woken;
    {
      std::lock_guard lock(mutex_);
      if (connection.requests == 1) {
        connection.control = true;
        stats_.connection_became_control(connection.tls_handshaken);
      }
      reply = control_reply(request, path);
      // The held replies belonged to the script just replaced: they go now.
      if (path == "/_script" || path == "/_reset") woken = take_met_waiters(true);
    }
    for (auto& wake : woken) wake();
    return reply;
  }

  // Parse and build outside the lock; only the shared counters, window and script need it.
  const Route route = route_of(path);
  boost::system::error_code parse_error;
  const json::value document = request.body.empty() ? json::value() : json::parse(request.body, parse_error);
  const bool body_is_json = !parse_error && document.is_object();

  ApiDecision decision;
  std::vector<std::function<void()>> woken;
  {
    std::lock_guard lock(mutex_);
    RequestArrival arrival{connection.id, connection.accepted, request.method, request.target, path, request.headers,
                           request.body};
    decision.record = stats_.request_arrived(arrival, Clock::now());
    if (route != Route::unknown && limiter_.enabled()) {
      RateDecision verdict = limiter_.admit(declared_tokens(request.body, document), Clock::now());
      decision.limit_headers = std::move(verdict.headers);
      if (verdict.verdict != RateVerdict::admitted) decision.rejection = std::move(verdict);
    }
    if (!decision.rejection) {
      decision.rule = script_.match(path, request.body);
      if (decision.rule) decision.action = script_.rule(*decision.rule).action;
      decision.completion = next_completion_++;
      woken = take_met_waiters(false);
    }
  }
  for (auto& wake : woken) wake();

  Reply reply = api_body_reply(request, path, route, document, body_is_json, decision);
  reply.record = decision.record;
  reply.latency = latency_;
  HeaderList headers{{"x-request-id", "req_" + std::to_string(decision.record)}};
  headers.insert(headers.end(), decision.limit_headers.begin(), decision.limit_headers.end());
  headers.insert(headers.end(), reply.headers.begin(), reply.headers.end());
  if (decision.action) {
    const RuleAction& action = *decision.action;
    reply.rule = decision.rule;
    reply.fault = action.fault;
    reply.held = action.hold_until.has_value();
    if (action.latency) reply.latency = *action.latency;
    if (action.stream_interval) reply.stream_interval = *action.stream_interval;
    headers.insert(headers.end(), action.headers.begin(), action.headers.end());
  }
  reply.headers = std::move(headers);
  return reply;
}

bool ServerState::hold(const Reply& reply, std::function<void()> wake) {
  if (!reply.held || !reply.rule) return true;
  std::lock_guard lock(mutex_);
  if (*reply.rule >= script_.size() || script_.hold_met(*reply.rule)) return true;
  waiters_.push_back(Waiter{*reply.rule, std::move(wake)});
  return false;
}

std::vector<std::function<void()>> ServerState::take_met_waiters(bool all) {
  std::vector<std::function<void()>> met;
  std::erase_if(waiters_, [&](Waiter& w) {
    if (!all && !script_.hold_met(w.rule)) return false;
    met.push_back(std::move(w.wake));
    return true;
  });
  return met;
}

Reply ServerState::control_reply(const IncomingRequest& request, const std::string& path) {
  const bool get = request.method == "GET", post = request.method == "POST";
  if (path == "/_health" && get) {
    Reply reply = json_reply(200, "ok");
    reply.content_type = "text/plain";
    return reply;
  }
  if (path == "/_stats" && get) {
    json::object stats = stats_.to_json(Clock::now());
    stats["script_rules"] = script_.counters();
    return json_reply(200, json::serialize(stats));
  }
  if (path == "/_script" && post) {
    auto script = Script::parse(request.body);
    if (!script) return error_reply(400, script.error(), "invalid_request_error", "invalid_script");
    script_ = std::move(*script);
    return json_reply(200, json::serialize(json::object{{"ok", true}, {"rules", script_.size()}}));
  }
  if (path == "/_reset" && post) {
    stats_.clear();
    script_ = Script();
    limiter_.clear();
    return json_reply(200, R"({"ok":true})");
  }
  return error_reply(404, "unknown control endpoint " + request.method + " " + path, "invalid_request_error",
                     "unknown_url");
}

}  // namespace dagent::test_server
