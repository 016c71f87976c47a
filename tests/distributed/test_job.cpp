#include "distributed/job.hpp"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include <boost/json/parse.hpp>

using dagent::ToolErrc;
using dagent::distributed::decode_result;
using dagent::distributed::encode_result;
using dagent::distributed::entry_list;
using dagent::distributed::Job;
using dagent::distributed::job_key;
using dagent::distributed::stream_entries;
using dagent::distributed::WorkerInfo;
using dagent::redis::Reply;

namespace {

Reply text(std::string s) { return Reply{Reply::Type::string, std::move(s), 0, {}}; }

std::vector<Reply> fields_of(const std::vector<std::string>& strings) {
  std::vector<Reply> out;
  for (const auto& s : strings) out.push_back(text(s));
  return out;
}

Job sample() {
  Job job;
  job.run = "0123abcd";
  job.step = 3;
  job.item = 7;
  job.attempt = 2;
  job.action = "sleep";
  job.params = boost::json::parse(R"({"ms": 5, "value": "x"})").as_object();
  job.key = job_key(job.run, job.step, job.item, job.attempt, job.action, job.params);
  job.timeout_ms = 1000;
  job.workspace = "/srv/ws";
  return job;
}

}  // namespace

TEST_CASE("A job goes through its stream fields unchanged", "[distributed]") {
  const Job job = sample();
  auto parsed = Job::parse(fields_of(job.fields()));
  REQUIRE(parsed.has_value());
  CHECK(parsed->key == job.key);
  CHECK(parsed->run == job.run);
  CHECK(parsed->step == 3);
  CHECK(parsed->item == 7);
  CHECK(parsed->attempt == 2);
  CHECK(parsed->action == "sleep");
  CHECK(parsed->params == job.params);
  CHECK(parsed->timeout_ms == 1000);
  CHECK(parsed->workspace == "/srv/ws");
}

TEST_CASE("The idempotency key names the call: run, step, item, attempt and its parameters", "[distributed]") {
  const Job job = sample();
  CHECK_THAT(job.key, Catch::StartsWith("0123abcd:3:7:2:"));
  CHECK(job.key == job_key("0123abcd", 3, 7, 2, "sleep", job.params));
  CHECK(job.key != job_key("0123abcd", 3, 7, 3, "sleep", job.params));  // a retry is a new call
  CHECK(job.key != job_key("0123abcd", 3, 8, 2, "sleep", job.params));
  auto other = job.params;
  other["ms"] = 6;
  CHECK(job.key != job_key("0123abcd", 3, 7, 2, "sleep", other));  // changed inputs: a new call
}

TEST_CASE("Malformed jobs are refused with the reason", "[distributed]") {
  auto refused = [](std::vector<std::string> strings) {
    auto parsed = Job::parse(fields_of(strings));
    REQUIRE_FALSE(parsed.has_value());
    return parsed.error();
  };
  auto with = [](const std::string& name, const std::string& value) {
    auto fields = sample().fields();
    for (std::size_t i = 0; i < fields.size(); i += 2)
      if (fields[i] == name) fields[i + 1] = value;
    return fields;
  };
  CHECK_THAT(refused({"key"}), Catch::Contains("pairs"));
  CHECK_THAT(refused({"key", "k"}), Catch::Contains("the job has no run"));
  CHECK_THAT(refused(with("key", "a key")), Catch::Contains("key must be"));
  CHECK_THAT(refused(with("run", "../../x")), Catch::Contains("run must be"));
  CHECK_THAT(refused(with("run", std::string(201, 'a'))), Catch::Contains("run must be"));
  CHECK_THAT(refused(with("step", "0")), Catch::Contains("step is not a positive integer"));
  CHECK_THAT(refused(with("step", "3x")), Catch::Contains("step is not a positive integer"));
  CHECK_THAT(refused(with("attempt", "-1")), Catch::Contains("attempt"));
  CHECK_THAT(refused(with("params", "[1, 2]")), Catch::Contains("params is not a JSON object"));
  CHECK_THAT(refused(with("params", "{")), Catch::Contains("params is not a JSON object"));
  CHECK_THAT(refused(with("timeout_ms", "99999999999999")), Catch::Contains("timeout_ms"));
  std::vector<Reply> not_text = fields_of(sample().fields());
  not_text[1] = Reply{Reply::Type::integer, "", 5, {}};
  auto parsed = Job::parse(not_text);
  REQUIRE_FALSE(parsed.has_value());
  CHECK_THAT(parsed.error(), Catch::Contains("must be strings"));
}

TEST_CASE("Results keep their output, or their error code and message", "[distributed]") {
  auto ok = decode_result(encode_result(boost::json::value(boost::json::object{{"a", 1}})));
  REQUIRE(ok.has_value());
  CHECK(ok->at("a") == 1);
  auto failed = decode_result(encode_result(dagent::tool_error(ToolErrc::timed_out, "timed out after 5 ms")));
  REQUIRE_FALSE(failed.has_value());
  CHECK(failed.error().code == ToolErrc::timed_out);
  CHECK(failed.error().message == "timed out after 5 ms");
  for (const char* bad : {"", "nope", "[]", R"({"ok": 1})", R"({"ok": true})", R"({"ok": false, "code": 3})"}) {
    auto r = decode_result(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == ToolErrc::failed);
  }
  auto unknown = decode_result(R"({"ok": false, "code": "meltdown", "message": "m"})");
  REQUIRE_FALSE(unknown.has_value());
  CHECK(unknown.error().code == ToolErrc::failed);  // an unknown code is a plain failure
}

TEST_CASE("A worker's announcement round-trips and a malformed one is refused", "[distributed]") {
  WorkerInfo info{"w1", 8, {{"sleep", "waits", boost::json::parse(R"({"type":"object"})").as_object(), false}}};
  auto parsed = WorkerInfo::parse(info.to_json());
  REQUIRE(parsed.has_value());
  CHECK(parsed->name == "w1");
  CHECK(parsed->concurrency == 8);
  REQUIRE(parsed->tools.size() == 1);
  CHECK(parsed->tools[0].name == "sleep");
  CHECK_FALSE(WorkerInfo::parse("not json").has_value());
  CHECK_FALSE(WorkerInfo::parse(R"({"name": "w", "concurrency": 1})").has_value());
  CHECK_FALSE(WorkerInfo::parse(R"({"name": "w", "concurrency": 1, "tools": [{"name": ""}]})").has_value());
}

TEST_CASE("Stream replies become entries, and malformed ones an error", "[distributed]") {
  Reply entry{Reply::Type::array, "", 0, {text("1-0"), Reply{Reply::Type::array, "", 0, fields_of({"key", "k"})}}};
  Reply stream{Reply::Type::array, "", 0, {text("s"), Reply{Reply::Type::array, "", 0, {entry}}}};
  Reply read{Reply::Type::array, "", 0, {stream}};
  auto entries = stream_entries(read);
  REQUIRE(entries.has_value());
  REQUIRE(entries->size() == 1);
  CHECK(entries->front().id == "1-0");
  CHECK(entries->front().fields.size() == 2);
  CHECK(stream_entries(Reply{})->empty());  // nil: the block ran out
  CHECK_FALSE(stream_entries(text("x")).has_value());
  CHECK_FALSE(entry_list(Reply{Reply::Type::array, "", 0, {text("1-0")}}).has_value());
  // XAUTOCLAIM on Redis 6.2: an entry deleted meanwhile is nil, skipped.
  auto claimed = entry_list(Reply{Reply::Type::array, "", 0, {Reply{}, entry}});
  REQUIRE(claimed.has_value());
  CHECK(claimed->size() == 1);
}
