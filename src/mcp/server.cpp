// Server: the lifecycle of one configured MCP server.

#include "mcp/server.hpp"

#include <algorithm>
#include <cstdlib>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include "mcp/stdio_transport.hpp"
#include "text/utf8.hpp"

namespace dagent::mcp {

namespace asio = boost::asio;
namespace json = boost::json;
using Result = boost::system::result<void, std::string>;

namespace {

constexpr int k_max_pages = 100;                       // tools/list pages; a server that never ends its list stops here
constexpr std::size_t k_max_description_bytes = 2000;  // of a tool's description in the planner's catalog
constexpr auto k_first_backoff = std::chrono::milliseconds(250);
constexpr auto k_max_backoff = std::chrono::seconds(10);

// MCP tool names are 1..128 of [A-Za-z0-9_.-] (2025-11-25 "Tool names"); others cannot be a plan's action.
bool is_tool_name(std::string_view name) {
  return !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

std::string text_of_content(const json::array& content) {
  std::string out;
  for (const auto& item : content) {
    const auto* o = item.if_object();
    if (!o) continue;
    const auto* type = o->if_contains("type");
    std::string piece;
    if (type && *type == "text") {
      if (const auto* t = o->if_contains("text"); t && t->is_string()) piece = t->get_string();
    } else if (type && *type == "resource") {
      const auto* r = o->if_contains("resource");
      const auto* t = r && r->is_object() ? r->get_object().if_contains("text") : nullptr;
      if (t && t->is_string()) piece = t->get_string();
    } else if (type && *type == "resource_link") {
      if (const auto* u = o->if_contains("uri"); u && u->is_string()) piece = "[resource " + std::string(u->get_string()) + "]";
    } else if (type && type->is_string()) {
      const auto* mime = o->if_contains("mimeType");
      piece = "[" + std::string(type->get_string()) +
              (mime && mime->is_string() ? " " + std::string(mime->get_string()) : std::string()) + "]";
    }
    if (piece.empty()) continue;
    if (!out.empty()) out += '\n';
    out += piece;
  }
  return out;
}

}  // namespace

boost::system::result<std::string, std::string> expand_env(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$') {
      out += text[i];
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    const auto close = text.find('}', i);
    if (i + 1 >= text.size() || text[i + 1] != '{' || close == std::string_view::npos)
      return {boost::system::in_place_error, "a '$' must start ${NAME} or be written $$"};
    const std::string name(text.substr(i + 2, close - i - 2));
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return {boost::system::in_place_error, "the environment variable " + name + " is not set"};
    out += value;
    i = close;
  }
  return {boost::system::in_place_value, std::move(out)};
}

ToolResult tool_result_of(std::string_view server, std::string_view tool, const json::value& result) {
  const auto* o = result.if_object();
  if (!o) return tool_error(ToolErrc::failed, "MCP server '" + std::string(server) + "': tools/call answered " +
                                                  "a result that is not an object");
  json::array content;
  if (const auto* c = o->if_contains("content"); c && c->is_array()) content = c->get_array();
  std::string text = text_of_content(content);
  const auto* is_error = o->if_contains("isError");
  if (is_error && is_error->is_bool() && is_error->get_bool()) {
    return tool_error(ToolErrc::failed, "MCP server '" + std::string(server) + "': " + std::string(tool) +
                                            " failed: " + (text.empty() ? "(no message)" : text));
  }
  json::value structured = nullptr;
  if (const auto* s = o->if_contains("structuredContent")) structured = *s;
  return json::value(json::object{{"text", std::move(text)}, {"content", std::move(content)}, {"structured", std::move(structured)}});
}

Server::Server(asio::any_io_executor executor, std::string name, config::McpServerConfig cfg,
               std::filesystem::path base_dir, std::filesystem::path log_dir, std::vector<std::string> hidden_env)
    : executor_(executor),
      name_(std::move(name)),
      cfg_(std::move(cfg)),
      base_dir_(std::move(base_dir)),
      log_dir_(std::move(log_dir)),
      hidden_env_(std::move(hidden_env)),
      started_(executor) {}

Server::~Server() = default;

std::shared_ptr<Transport> Server::make_transport(std::string& problem) const {
  if (!cfg_.url.empty()) {
    HttpEndpoint endpoint;
    endpoint.server = name_;
    endpoint.url = cfg_.url;
    endpoint.timeout = std::chrono::milliseconds(cfg_.timeout_ms);
    for (const auto& [k, v] : cfg_.headers) {
      auto value = expand_env(v);
      if (!value) {
        problem = "MCP server '" + name_ + "': header " + k + ": " + value.error();
        return nullptr;
      }
      endpoint.headers.emplace_back(k, std::move(*value));
    }
    return make_http_transport(executor_, std::move(endpoint));
  }
  StdioCommand command;
  command.server = name_;
  command.argv = cfg_.command;
  command.hidden_env = hidden_env_;
  for (const auto& [k, v] : cfg_.env) {
    auto value = expand_env(v);
    if (!value) {
      problem = "MCP server '" + name_ + "': env " + k + ": " + value.error();
      return nullptr;
    }
    command.env.emplace_back(k, std::move(*value));
  }
  command.cwd = cfg_.cwd.empty() ? base_dir_ : (base_dir_ / cfg_.cwd).lexically_normal();
  command.log_file = log_file();
  return make_stdio_transport(executor_, std::move(command));
}

void Server::failed(std::string reason) {
  ++failures_;
  auto backoff = k_first_backoff * (1 << std::min(failures_ - 1, 6));
  retry_at_ = std::chrono::steady_clock::now() + std::min<std::chrono::steady_clock::duration>(backoff, k_max_backoff);
  last_failure_ = std::move(reason);
}

asio::awaitable<Result> Server::start() {
  using Timer = asio::as_tuple_t<asio::use_awaitable_t<>>::as_default_on_t<asio::steady_timer>;
  for (;;) {
    if (session_ && session_->alive()) co_return Result{};
    if (!starting_) break;
    started_.expires_at(asio::steady_timer::time_point::max());  // another caller is starting it
    co_await started_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (!starting_ && !(session_ && session_->alive())) co_return last_failure_;
  }
  starting_ = true;
  struct Done {
    Server* s;
    ~Done() {
      s->starting_ = false;
      s->started_.cancel();
    }
  } done{this};
  if (failures_ > 0 && std::chrono::steady_clock::now() < retry_at_) {  // backoff after a crash or a failed start
    Timer wait(executor_, retry_at_);
    co_await wait.async_wait();
  }
  auto started = co_await start_once();
  if (!started) failed(started.error());
  co_return started;
}

namespace {

// A session not yet initialized: it becomes the server's only when start_once() gets through;
// otherwise (a failure, or the caller cancelled) it is left to be closed at the next start or stop.
struct Starting {
  std::vector<std::shared_ptr<Session>>& dead;
  std::shared_ptr<Session> session;
  bool committed = false;
  ~Starting() {
    if (!committed && session) dead.push_back(std::move(session));
  }
};

}  // namespace

asio::awaitable<Result> Server::start_once() {
  if (session_) dead_.push_back(std::move(session_));
  for (auto& dead : dead_) co_await dead->close();  // the crashed process is reaped before a new one starts
  dead_.clear();
  std::string problem;
  auto transport = make_transport(problem);
  if (!transport) co_return problem;
  ++starts_;
  Starting starting{dead_, std::make_shared<Session>(executor_, std::move(transport), name_,
                                                     std::chrono::milliseconds(cfg_.timeout_ms))};
  auto session = starting.session;
  if (auto opened = co_await session->open(); !opened) co_return opened.error();

  json::object init{{"protocolVersion", k_protocol_versions[0]},
                    {"capabilities", json::object{}},
                    {"clientInfo", json::object{{"name", "dagent"}, {"version", DAGENT_VERSION}}}};
  auto answer = co_await session->request("initialize", std::move(init));
  if (!answer) co_return "MCP server '" + name_ + "': initialize: " + answer.error().message;
  const auto* version = answer->is_object() ? answer->get_object().if_contains("protocolVersion") : nullptr;
  if (!version || !version->is_string() ||
      std::find(std::begin(k_protocol_versions), std::end(k_protocol_versions), version->get_string()) ==
          std::end(k_protocol_versions)) {
    co_await session->close();
    co_return "MCP server '" + name_ + "' speaks protocol version " +
              (version ? json::serialize(*version) : std::string("(none)")) + ", which dagent does not (it speaks " +
              std::string(k_protocol_versions[0]) + " to " + std::string(std::end(k_protocol_versions)[-1]) + ")";
  }
  if (auto sent = co_await session->notify("notifications/initialized", {}); !sent) co_return sent.error();

  if (!listed_) {
    std::vector<RemoteTool> tools;
    std::string cursor;
    for (int page = 0;; ++page) {
      if (page == k_max_pages) co_return "MCP server '" + name_ + "': tools/list did not end after " +
                                         std::to_string(k_max_pages) + " pages";
      json::object params;
      if (!cursor.empty()) params["cursor"] = cursor;
      auto listed = co_await session->request("tools/list", std::move(params));
      if (!listed) co_return "MCP server '" + name_ + "': tools/list: " + listed.error().message;
      const auto* o = listed->if_object();
      const auto* list = o ? o->if_contains("tools") : nullptr;
      if (!list || !list->is_array()) co_return "MCP server '" + name_ + "': tools/list answered without a tools list";
      for (const auto& t : list->get_array()) {
        const auto* to = t.if_object();
        const auto* n = to ? to->if_contains("name") : nullptr;
        if (!n || !n->is_string() || !is_tool_name(n->get_string())) continue;  // cannot be named in a plan
        RemoteTool tool;
        tool.name = n->get_string();
        if (const auto* d = to->if_contains("description"); d && d->is_string()) {
          tool.description = text::valid_utf8(d->get_string());
          if (tool.description.size() > k_max_description_bytes)
            tool.description = tool.description.substr(0, text::utf8_cut(tool.description, k_max_description_bytes)) + "…";
        }
        if (const auto* s = to->if_contains("inputSchema"); s && s->is_object()) tool.input_schema = s->get_object();
        else tool.input_schema = json::object{{"type", "object"}};
        tools.push_back(std::move(tool));
      }
      const auto* next = o->if_contains("nextCursor");
      if (!next || !next->is_string() || next->get_string().empty()) break;
      cursor = next->get_string();
    }
    tools_ = std::move(tools);
    listed_ = true;
  }
  failures_ = 0;
  session->on_closed([this](const std::string& reason) { failed(reason); });  // a crash: the next call restarts it
  session_ = std::move(session);
  starting.committed = true;
  co_return Result{};
}

asio::awaitable<ToolResult> Server::call(std::string tool, json::object arguments,
                                         std::function<void(const Progress&)> on_progress) {
  auto started = co_await start();
  if (!started) co_return tool_error(ToolErrc::unavailable, started.error());
  auto session = session_;  // a restart replaces session_; this call stays with its own
  json::object params{{"name", tool}, {"arguments", std::move(arguments)}};
  auto answer = co_await session->request("tools/call", std::move(params), std::move(on_progress));
  if (!answer) co_return tool_error(answer.error().code, std::move(answer.error().message));
  co_return tool_result_of(name_, tool, *answer);
}

asio::awaitable<void> Server::stop() {
  if (session_) dead_.push_back(std::move(session_));
  for (auto& dead : dead_) co_await dead->close();
  dead_.clear();
}

}  // namespace dagent::mcp
