#pragma once
// What coordinators and workers exchange through Redis (README "Running on many machines"): the
// keys, a job (one tool call of one step), its result, and a worker's announcement. Everything
// read from Redis is untrusted: the parsers check every field and say what is wrong.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include "dagent/tool.hpp"
#include "redis/resp_codec.hpp"

namespace dagent::distributed {

/// The Redis keys of one deployment (prefix "dagent:v1").
struct StreamKeys {
  std::string prefix = "dagent:v1";

  std::string steps() const { return prefix + ":steps"; }                        ///< stream of jobs
  static constexpr std::string_view group() { return "workers"; }                 ///< its consumer group
  std::string workers() const { return prefix + ":workers"; }                    ///< set of worker names
  std::string worker(std::string_view name) const { return prefix + ":worker:" + std::string(name); }
  std::string results(std::string_view run) const { return prefix + ":results:" + std::string(run); }
  std::string result(std::string_view key) const { return prefix + ":result:" + std::string(key); }
  std::string queued(std::string_view key) const { return prefix + ":queued:" + std::string(key); }
  std::string cancel(std::string_view key) const { return prefix + ":cancel:" + std::string(key); }
};

/// Results, queue markers and result streams live this long in Redis (a resumed coordinator finds
/// a result stored while it was down within this time).
constexpr std::chrono::milliseconds k_result_ttl{24LL * 3600 * 1000};

/// One tool call sent to a worker.
struct Job {
  std::string key;        ///< idempotency key: the same call always has the same key
  std::string run;        ///< the run's key (results go to StreamKeys::results(run))
  int step = 0;
  int item = -1;
  int attempt = 1;
  std::string action;     ///< the tool's name
  boost::json::object params;
  std::int64_t timeout_ms = 0;  ///< the step's timeout; the worker gives up after it too
  std::string workspace;  ///< absolute path of the coordinator's workspace

  /// The stream entry's fields and values, in order.
  std::vector<std::string> fields() const;
  /// A job from a stream entry's field-value list; what is missing or malformed otherwise.
  static boost::system::result<Job, std::string> parse(const std::vector<redis::Reply>& fields);
};

/// The idempotency key of a call: the run's key, the step, the item, the attempt and a digest of
/// the action and parameters (a resumed run whose inputs changed gets new keys).
std::string job_key(std::string_view run, int step, int item, int attempt, std::string_view action,
                    const boost::json::object& params);

/// A tool result as stored in Redis: {"ok":true,"output":...} or {"ok":false,"code":"...","message":"..."}.
std::string encode_result(const ToolResult& result);
/// The ToolResult of encode_result's text; a failed result (ToolErrc::failed) saying why when
/// the text is not one.
ToolResult decode_result(std::string_view text);

/// A tool as a worker announces it: what a coordinator needs to plan, check and send calls.
struct ToolSpec {
  std::string name;
  std::string description;
  boost::json::object parameters;
  bool uses_llm = false;
};

/// A worker's announcement (kept under StreamKeys::worker(name) with a TTL, refreshed).
struct WorkerInfo {
  std::string name;
  int concurrency = 1;
  std::vector<ToolSpec> tools;

  std::string to_json() const;
  static boost::system::result<WorkerInfo, std::string> parse(std::string_view text);
};

/// A stream entry: its id and field-value list.
struct StreamEntry {
  std::string id;
  std::vector<redis::Reply> fields;
};

/// The entries of an XREAD/XREADGROUP reply (nil: none), or of XAUTOCLAIM's second element;
/// entries whose content was deleted (nil fields) have empty fields. Malformed: the message.
boost::system::result<std::vector<StreamEntry>, std::string> stream_entries(const redis::Reply& reply);
/// The entries of a list of entries ([[id, [f, v, ...]], ...]).
boost::system::result<std::vector<StreamEntry>, std::string> entry_list(const redis::Reply& list);

}  // namespace dagent::distributed
