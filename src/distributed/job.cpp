#include "distributed/job.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "net/sha256.hpp"

namespace dagent::distributed {

namespace json = boost::json;
using redis::Reply;

namespace {

constexpr std::size_t k_max_field_bytes = 16u << 20;

constexpr std::array<std::pair<ToolErrc, std::string_view>, 8> k_codes = {{
    {ToolErrc::invalid_parameters, "invalid_parameters"},
    {ToolErrc::outside_workspace, "outside_workspace"},
    {ToolErrc::not_found, "not_found"},
    {ToolErrc::io_error, "io_error"},
    {ToolErrc::timed_out, "timed_out"},
    {ToolErrc::cancelled, "cancelled"},
    {ToolErrc::failed, "failed"},
    {ToolErrc::unavailable, "unavailable"},
}};

std::string_view code_name(const boost::system::error_code& code) {
  if (code.category() == tool_category())
    for (const auto& [value, name] : k_codes)
      if (code.value() == static_cast<int>(value)) return name;
  return "failed";
}

ToolErrc code_of(std::string_view name) {
  for (const auto& [value, n] : k_codes)
    if (n == name) return value;
  return ToolErrc::failed;
}

bool key_safe(std::string_view text) {
  return !text.empty() && text.size() <= 200 && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' || c == '_' || c == '-';
  });
}

bool parse_int(std::string_view text, std::int64_t& out) {
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end && !text.empty();
}

// A failed parse. Why not an implicit conversion: Job and WorkerInfo are aggregates whose first
// member is a string, so in C++20 a string converts to them too.
template <class T>
boost::system::result<T, std::string> failure(std::string message) {
  return {boost::system::in_place_error, std::move(message)};
}

}  // namespace

std::vector<std::string> Job::fields() const {
  return {"key",     key,    "run",    run,    "step",    std::to_string(step),     "item",      std::to_string(item),
          "attempt", std::to_string(attempt), "action", action, "params", json::serialize(params),
          "timeout_ms", std::to_string(timeout_ms), "workspace", workspace};
}

boost::system::result<Job, std::string> Job::parse(const std::vector<Reply>& fields) {
  if (fields.size() % 2 != 0) return failure<Job>(std::string("a job's fields come in pairs"));
  Job job;
  bool have_key = false, have_run = false, have_step = false, have_action = false, have_params = false,
       have_timeout = false, have_workspace = false;
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    if (fields[i].type != Reply::Type::string || fields[i + 1].type != Reply::Type::string)
      return failure<Job>(std::string("a job's fields must be strings"));
    const std::string& name = fields[i].str;
    const std::string& value = fields[i + 1].str;
    if (value.size() > k_max_field_bytes) return failure<Job>("field " + name + " is too large");
    std::int64_t n = 0;
    auto number = [&](std::int64_t low, std::int64_t high) -> bool { return parse_int(value, n) && n >= low && n <= high; };
    if (name == "key" || name == "run") {
      // They name Redis keys: a job may not point its result anywhere else.
      if (!key_safe(value)) return failure<Job>(name + " must be 1 to 200 of A-Z a-z 0-9 : _ -");
      (name == "key" ? job.key : job.run) = value;
      (name == "key" ? have_key : have_run) = true;
    } else if (name == "step") {
      if (!number(1, std::numeric_limits<int>::max())) return failure<Job>("step is not a positive integer: " + value.substr(0, 40));
      job.step = static_cast<int>(n), have_step = true;
    } else if (name == "item") {
      if (!number(-1, std::numeric_limits<int>::max())) return failure<Job>(std::string("item is not an integer >= -1"));
      job.item = static_cast<int>(n);
    } else if (name == "attempt") {
      if (!number(1, std::numeric_limits<int>::max())) return failure<Job>(std::string("attempt is not a positive integer"));
      job.attempt = static_cast<int>(n);
    } else if (name == "action") {
      job.action = value, have_action = !value.empty();
    } else if (name == "params") {
      boost::system::error_code ec;
      json::value v = json::parse(value, ec);
      if (ec || !v.is_object()) return failure<Job>(std::string("params is not a JSON object"));
      job.params = std::move(v.get_object()), have_params = true;
    } else if (name == "timeout_ms") {
      if (!number(1, 7LL * 24 * 3600 * 1000)) return failure<Job>(std::string("timeout_ms is not a positive integer (at most a week)"));
      job.timeout_ms = n, have_timeout = true;
    } else if (name == "workspace") {
      job.workspace = value, have_workspace = !value.empty();
    }
  }
  const std::pair<bool, const char*> required[] = {{have_key, "key"},         {have_run, "run"},
                                                   {have_step, "step"},       {have_action, "action"},
                                                   {have_params, "params"},   {have_timeout, "timeout_ms"},
                                                   {have_workspace, "workspace"}};
  for (const auto& [have, name] : required)
    if (!have) return failure<Job>(std::string("the job has no ") + name);
  return job;
}

std::string job_key(std::string_view run, int step, int item, int attempt, std::string_view action,
                    const json::object& params) {
  std::string call(action);
  call += '\n';
  call += json::serialize(params);
  return std::string(run) + ":" + std::to_string(step) + ":" + std::to_string(item) + ":" + std::to_string(attempt) +
         ":" + net::sha256_hex(call).substr(0, 16);
}

std::string encode_result(const ToolResult& result) {
  if (result) return json::serialize(json::object{{"ok", true}, {"output", *result}});
  return json::serialize(json::object{
      {"ok", false}, {"code", code_name(result.error().code)}, {"message", result.error().message}});
}

ToolResult decode_result(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  const auto* o = ec ? nullptr : v.if_object();
  const auto* ok = o ? o->if_contains("ok") : nullptr;
  if (!ok || !ok->is_bool()) return tool_error(ToolErrc::failed, "a worker's result is not a result object");
  if (ok->get_bool()) {
    const auto* output = o->if_contains("output");
    if (!output) return tool_error(ToolErrc::failed, "a worker's result has no output");
    return *output;
  }
  const auto* code = o->if_contains("code");
  const auto* message = o->if_contains("message");
  if (!code || !code->is_string() || !message || !message->is_string())
    return tool_error(ToolErrc::failed, "a worker's failed result has no code or message");
  return tool_error(code_of(code->get_string()), std::string(message->get_string()));
}

std::string WorkerInfo::to_json() const {
  json::array list;
  for (const auto& t : tools)
    list.push_back(json::object{
        {"name", t.name}, {"description", t.description}, {"parameters", t.parameters}, {"uses_llm", t.uses_llm}});
  return json::serialize(json::object{{"name", name}, {"concurrency", concurrency}, {"tools", std::move(list)}});
}

boost::system::result<WorkerInfo, std::string> WorkerInfo::parse(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  const auto* o = ec ? nullptr : v.if_object();
  if (!o) return failure<WorkerInfo>(std::string("a worker's announcement is not a JSON object"));
  WorkerInfo info;
  const auto* name = o->if_contains("name");
  const auto* concurrency = o->if_contains("concurrency");
  const auto* tools = o->if_contains("tools");
  if (!name || !name->is_string() || !concurrency || !concurrency->is_int64() || !tools || !tools->is_array())
    return failure<WorkerInfo>(std::string("a worker's announcement needs name, concurrency and tools"));
  info.name = name->get_string();
  info.concurrency = static_cast<int>(std::clamp<std::int64_t>(concurrency->get_int64(), 1, 100000));
  for (const auto& t : tools->get_array()) {
    const auto* to = t.if_object();
    const auto* tn = to ? to->if_contains("name") : nullptr;
    const auto* td = to ? to->if_contains("description") : nullptr;
    const auto* tp = to ? to->if_contains("parameters") : nullptr;
    const auto* tl = to ? to->if_contains("uses_llm") : nullptr;
    if (!tn || !tn->is_string() || tn->get_string().empty() || !td || !td->is_string() || !tp || !tp->is_object())
      return failure<WorkerInfo>("worker " + info.name + " announces a tool without name, description or parameters");
    info.tools.push_back(ToolSpec{std::string(tn->get_string()), std::string(td->get_string()), tp->get_object(),
                                  tl && tl->is_bool() && tl->get_bool()});
  }
  return info;
}

boost::system::result<std::vector<StreamEntry>, std::string> entry_list(const Reply& list) {
  std::vector<StreamEntry> out;
  if (list.type == Reply::Type::nil) return out;
  if (list.type != Reply::Type::array) return std::string("stream entries are not a list");
  for (const auto& e : list.elements) {
    if (e.type == Reply::Type::nil) continue;  // Redis 6.2's XAUTOCLAIM: an entry deleted meanwhile
    if (e.type != Reply::Type::array || e.elements.size() != 2 || e.elements[0].type != Reply::Type::string)
      return std::string("a stream entry is not [id, fields]");
    StreamEntry entry{e.elements[0].str, {}};
    if (e.elements[1].type == Reply::Type::array) entry.fields = e.elements[1].elements;
    else if (e.elements[1].type != Reply::Type::nil) return std::string("a stream entry's fields are not a list");
    out.push_back(std::move(entry));
  }
  return out;
}

boost::system::result<std::vector<StreamEntry>, std::string> stream_entries(const Reply& reply) {
  std::vector<StreamEntry> out;
  if (reply.type == Reply::Type::nil) return out;
  if (reply.type != Reply::Type::array) return std::string("a stream read's reply is not a list");
  for (const auto& stream : reply.elements) {
    if (stream.type != Reply::Type::array || stream.elements.size() != 2)
      return std::string("a stream read's reply is not [[stream, entries]]");
    auto entries = entry_list(stream.elements[1]);
    if (!entries) return entries.error();
    for (auto& e : *entries) out.push_back(std::move(e));
  }
  return out;
}

}  // namespace dagent::distributed
