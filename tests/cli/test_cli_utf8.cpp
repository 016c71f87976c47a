// UTF-8 end to end: a task, a file, a plan and model replies holding bytes that are not UTF-8 (a
// Latin-1 byte, a truncated sequence, overlong forms, an encoded surrogate). The run's --json,
// recording and trace parse as strict JSON, the provider receives valid UTF-8, and the recording
// replays and resumes. Before the repair, each of these was written raw.

#include <catch2/catch.hpp>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "support/process.hpp"
#include "support/test_server_process.hpp"
#include "text/bad_utf8_samples.hpp"
#include "text/utf8.hpp"

namespace {

namespace json = boost::json;
using dagent::test::k_bad_text;
using dagent::test::k_bad_text_repaired;
using dagent::test::k_fffd;
using dagent::test::ProcessResult;
using dagent::test::read_text;
using dagent::test::run_process;
using dagent::test::script_bytes;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

ProcessResult run_dagent(const TempDir& dir, const TestServer& server, std::vector<std::string> args) {
  args.insert(args.begin(), DAGENT_BINARY);
  return run_process(args, dir.path(), {"OPENAI_BASE_URL=" + server.base_url(), "OPENAI_API_KEY=sk-utf8-test"});
}

// A chat rule whose reply holds `bytes` as they are.
json::object raw_rule(std::string contains, std::string_view bytes) {
  return json::object{{"path", "/v1/chat/completions"}, {"contains", std::move(contains)},
                      {"reply", script_bytes(bytes)}, {"bytes", true}};
}

// `text` parsed by a strict parser (Boost.JSON refuses invalid UTF-8), after checking its bytes.
json::value strict_json(const std::string& text) {
  INFO(text.substr(0, 300));
  REQUIRE(dagent::text::is_valid_utf8(text));
  return json::parse(text);
}

// Every line of a JSON Lines file, parsed strictly.
std::vector<json::value> strict_lines(const std::filesystem::path& path) {
  const std::string text = read_text(path);
  REQUIRE(dagent::text::is_valid_utf8(text));
  std::vector<json::value> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) out.push_back(json::parse(line));
  return out;
}

json::array step_digest(const json::value& result) {
  json::array out;
  for (const auto& s : result.at("steps").as_array())
    out.push_back(json::object{{"id", s.at("id")}, {"status", s.at("status")}, {"output", s.at("output")}});
  return out;
}

const json::value& step_output(const json::value& result, int id) {
  for (const auto& s : result.at("steps").as_array())
    if (s.at("id") == id) return s.at("output");
  FAIL("no step " << id);
  return result;
}

}  // namespace

TEST_CASE("invalid_utf8_run_output: a goal run with Latin-1 input, file and replies wrote invalid --json, "
          "recording and trace, now all are strict JSON and the recording replays",
          "[cli][utf8]") {
  TempDir dir;
  // The file's € is cut by max_bytes in its middle; the cut must drop it whole.
  dir.write("ws/latin1.txt", k_bad_text + " \xE2\x82\xAC tail\n");
  const std::size_t cut = k_bad_text.size() + 2;
  dir.write("task.yaml", "goal: Summarize the notes of caf\xE9\nworkspace: ws\ninputs:\n  who: J\xE9r\xF4me \xED\xA0\x80\n");
  // The plan's parameters hold bytes that are not UTF-8 too (from the model).
  const std::string plan = R"({"steps": [
    {"id": 1, "action": "read_file", "parameters": {"path": "latin1.txt", "max_bytes": )" + std::to_string(cut) + R"(}},
    {"id": 2, "action": "llm", "parameters": {"prompt": "llm-step-marker for $input.who (caf)" "\xE9" R"(): $step1.content"}}]})";
  json::array rules{
      raw_rule("intent analyser", R"({"intent": "summarize a file", "tools": []})"),
      json::object{{"contains", "final answer of dagent"},
                   {"stream_chunks", json::array{script_bytes("Done: caf\xE9 "), script_bytes("\xC0\xAF \xE2\x82")}},
                   {"bytes", true}},
      raw_rule("Write a plan for the goal", plan),
      raw_rule("llm-step-marker", "r\xE9sum\xE9 \xE0\x80\xAF")};
  TestServer server(TestServerOptions{.script = json::object{{"rules", std::move(rules)}}});

  auto live = run_dagent(dir, server, {"run", "task.yaml", "--json", "--record", "run.jsonl", "--trace", "trace.json"});
  INFO(live.err);
  REQUIRE(live.exit_code == 0);
  const json::value result = strict_json(live.out);
  CHECK(step_output(result, 1).at("content") == (k_bad_text_repaired + " ").c_str());
  CHECK(step_output(result, 1).at("truncated") == true);
  CHECK(step_output(result, 2).at("text") == ("r" + k_fffd + "sum" + k_fffd + " " + k_fffd + k_fffd + k_fffd).c_str());
  const std::string answer = "Done: caf" + k_fffd + " " + k_fffd + k_fffd + " " + k_fffd;
  CHECK(result.at("answer") == answer.c_str());

  // The provider received valid UTF-8, the file's text repaired in the step's prompt.
  bool prompt_seen = false;
  const json::value stats = server.stats();
  for (const auto& request : stats.at("recent").as_array()) {
    const std::string_view body = request.at("body").as_string();
    CHECK(dagent::text::is_valid_utf8(body));
    if (body.find("llm-step-marker") != std::string_view::npos) {
      prompt_seen = true;
      CHECK(body.find(k_bad_text_repaired) != std::string_view::npos);
      CHECK(body.find("J" + k_fffd + "r" + k_fffd + "me " + k_fffd + k_fffd + k_fffd) != std::string_view::npos);
    }
  }
  CHECK(prompt_seen);

  const auto lines = strict_lines(dir.path() / "run.jsonl");
  REQUIRE_FALSE(lines.empty());
  CHECK(lines.front().at("goal") == ("Summarize the notes of caf" + k_fffd).c_str());
  const json::value trace = strict_json(read_text(dir.path() / "trace.json"));
  CHECK(trace.at("traceEvents").as_array().size() >= 3);

  auto replay = run_dagent(dir, server, {"replay", "run.jsonl", "--json"});
  INFO(replay.err);
  REQUIRE(replay.exit_code == 0);
  const json::value replayed = strict_json(replay.out);
  CHECK(step_digest(replayed) == step_digest(result));
  CHECK(replayed.at("answer") == result.at("answer"));
}

TEST_CASE("invalid_utf8_resume: a recording with inputs and replies that are not UTF-8 could not be resumed",
          "[cli][utf8]") {
  TestServer server(TestServerOptions{.script = json::object{{"rules", json::array{raw_rule("first-marker", "\xE9t\xE9")}}}});
  TempDir dir;
  dir.write("task.yaml", "workspace: .\ninputs: {who: \"J\xE9r\xF4me\"}\nplan:\n"
                         "  - {id: 1, action: llm, parameters: {prompt: \"first-marker $input.who caf\xE9\"}}\n"
                         "  - {id: 2, action: read_file, parameters: {path: later.txt}, dependencies: [1]}\n");
  auto first = run_dagent(dir, server, {"run", "task.yaml", "--json", "--record", "run.jsonl"});
  INFO(first.err);
  REQUIRE(first.exit_code == 1);  // later.txt is missing
  strict_json(first.out);
  strict_lines(dir.path() / "run.jsonl");

  dir.write("later.txt", "d\xE9j\xE0 vu\n");
  auto resumed = run_dagent(dir, server, {"run", "--resume", "run.jsonl", "--json"});
  INFO(resumed.err);
  REQUIRE(resumed.exit_code == 0);
  CHECK(server.requests_to("/v1/chat/completions") == 1);  // step 1 came from the recording
  const json::value result = strict_json(resumed.out);
  CHECK(step_output(result, 1).at("text") == (k_fffd + "t" + k_fffd).c_str());
  CHECK(step_output(result, 2).at("content") == ("d" + k_fffd + "j" + k_fffd + " vu\n").c_str());
  strict_lines(dir.path() / "run.jsonl");
}
