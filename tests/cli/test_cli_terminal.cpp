// `dagent run` on a real pseudo-terminal against the scripted test server: the model's intent,
// its answer (streamed in pieces or whole), an llm step's output, a failed step's error and a
// `dagent: …` error line all carry terminal escape sequences, and the bytes that reach the
// terminal hold none of them (only the live view's own cursor and colour codes), while the
// visible text is still there.

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

#include "cli/terminal_out.hpp"
#include "support/process.hpp"
#include "support/pty_process.hpp"
#include "support/test_server_process.hpp"

namespace {

namespace json = boost::json;
using dagent::test::PtyResult;
using dagent::test::run_on_pty;
using dagent::test::TempDir;
using dagent::test::TestServer;
using dagent::test::TestServerOptions;

// A title (OSC 0), a clipboard write (OSC 52), clear screen, red, a carriage return that would
// overwrite the line, and a C1 CSI (U+009B, "\xc2\x9b" in UTF-8) that some terminals obey.
constexpr std::string_view k_hostile =
    "\x1b]0;pwned-title\x07\x1b]52;c;c2VjcmV0\x07\x1b[2J\x1b[31mRED\r"
    "OVER\xc2\x9b"
    "2Jdone";

// What may be left of k_hostile on the terminal: its printable text, nothing of its sequences.
constexpr std::string_view k_hostile_shown = "REDOVER2Jdone";

std::string with(std::string_view before, std::string_view after) {
  return std::string(before) + std::string(k_hostile) + std::string(after);
}

// The live view's own codes: ESC[nF (cursor up n lines), ESC[J (clear below), ESC[36m, ESC[0m.
std::size_t own_code_at(std::string_view s, std::size_t at) {
  for (std::string_view code : {"\x1b[J", "\x1b[36m", "\x1b[0m"})
    if (s.substr(at).starts_with(code)) return code.size();
  std::size_t i = at + 2;
  if (!s.substr(at).starts_with("\x1b[")) return 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  return i > at + 2 && i < s.size() && s[i] == 'F' ? i + 1 - at : 0;
}

// Every control byte or sequence in `bytes` that is not one of the live view's own codes, each
// described with its offset; empty when the terminal saw only text, newlines, tabs and those codes.
std::vector<std::string> foreign_controls(std::string_view bytes) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == 0x1b) {
      if (const auto n = own_code_at(bytes, i)) {
        i += n - 1;
        continue;
      }
      out.push_back("ESC at " + std::to_string(i) + ": " + json::serialize(json::string(bytes.substr(i, 12))));
    } else if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      out.push_back("control " + std::to_string(c) + " at " + std::to_string(i));
    } else if (c == 0xc2 && i + 1 < bytes.size() && static_cast<unsigned char>(bytes[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(bytes[i + 1]) <= 0x9f) {
      out.push_back("C1 control at " + std::to_string(i));
    } else if (c >= 0x80 && c <= 0x9f && (i == 0 || static_cast<unsigned char>(bytes[i - 1]) < 0xc0)) {
      // A continuation byte is fine inside UTF-8; one that follows no lead byte is a raw C1.
      bool in_char = false;
      for (std::size_t k = i; k > 0 && k + 4 > i; --k) {
        const auto p = static_cast<unsigned char>(bytes[k - 1]);
        if (p >= 0xc0) {
          in_char = true;
          break;
        }
        if (p < 0x80) break;
      }
      if (!in_char) out.push_back("raw C1 byte at " + std::to_string(i));
    }
  }
  return out;
}

std::string printable(std::string_view bytes) { return json::serialize(json::string(bytes)); }

json::object chat_rule(std::string contains, json::object action) {
  action["path"] = "/v1/chat/completions";
  action["contains"] = std::move(contains);
  return action;
}

// The goal's plan: an llm step whose reply is hostile, and a read of a file whose hostile name
// makes the step's error hostile.
std::string hostile_plan() {
  json::array steps{
      json::object{{"id", 1}, {"action", "llm"}, {"parameters", json::object{{"prompt", "Say hi"}, {"max_tokens", 50}}}},
      json::object{{"id", 2}, {"action", "read_file"}, {"parameters", json::object{{"path", with("missing-", ".txt")}}}}};
  return json::serialize(json::object{{"steps", steps}});
}

json::array hostile_rules(json::object answer) {
  return json::array{
      chat_rule("intent analyser",
                {{"reply", json::serialize(json::object{{"intent", with("intent-visible ", "")}, {"tools", json::array{}}})}}),
      chat_rule("Write a plan for the goal", {{"reply", hostile_plan()}}),
      chat_rule("Say hi", {{"reply", with("llm-visible ", " llm-end")}}),
      chat_rule("final answer of dagent", std::move(answer))};
}

PtyResult run_goal(const TestServer& server, const TempDir& dir, std::vector<std::string> extra = {}) {
  dir.write("task.yaml", "goal: Greet the reader and read the missing file\nworkspace: .\n");
  std::vector<std::string> args{DAGENT_BINARY, "run", "task.yaml", "--set", "memory.enabled=false"};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_on_pty(args, dir.path(), {"OPENAI_BASE_URL=" + server.base_url(), "OPENAI_API_KEY=sk-test", "TERM=xterm"});
}

// `json_out`: the result JSON is on the terminal too, where the sequences are quoted as inert
// JSON escapes ("\u001b]0;pwned-title…"), so their text may show there.
void check_clean(const PtyResult& r, bool json_out = false) {
  INFO(printable(r.bytes));
  const auto foreign = foreign_controls(r.bytes);
  std::string all;
  for (const auto& f : foreign) all += f + "\n";
  INFO(all);
  CHECK(foreign.empty());
  if (json_out) return;
  CHECK(r.bytes.find("pwned-title") == std::string::npos);  // an OSC goes whole, its text included
  CHECK(r.bytes.find("c2VjcmV0") == std::string::npos);
}

}  // namespace

TEST_CASE("pty harness: a program's raw escape sequences reach the captured bytes and are found",
          "[cli][terminal]") {
  // The check below must be able to fail: printf on the same terminal leaves every sequence in.
  TempDir dir;
  auto r = run_on_pty({"/usr/bin/printf", "%s\\n", std::string(k_hostile).c_str()}, dir.path());
  CHECK(r.exit_code == 0);
  CHECK(r.bytes == std::string(k_hostile) + "\n");  // OPOST off: no "\r\n", nothing added
  CHECK(foreign_controls(r.bytes).size() == 8);  // 4 ESC, 2 BEL, CR, C1 CSI
  CHECK(foreign_controls("\x1b[3F\x1b[J  \x1b[36mrunning\x1b[0m step 1\n\tok").empty());
}

TEST_CASE("dagent run on a terminal: escape sequences in the intent, the streamed answer, an llm step's output and a "
          "failed step's error never reach it",
          "[cli][terminal]") {
  // The answer streams in pieces that split the sequences between them.
  json::array chunks{"answer-visible \x1b]0;pwned-", "title\x07 one \x1b[3", "1m two \x1b]52;c;c2VjcmV0",
                     "\x07 three\r\xc2\x9b", "2J answer-end"};
  TestServer server(TestServerOptions{.script = json::object{
                                          {"rules", hostile_rules({{"stream_chunks", chunks}, {"stream_interval_ms", 20}})}}});
  TempDir dir;
  auto r = run_goal(server, dir);
  INFO(printable(r.bytes));
  CHECK(r.exit_code == 1);  // step 2 failed
  check_clean(r);
  CHECK(r.bytes.find("answer-visible  one  two  three2J answer-end") != std::string::npos);
  CHECK(r.bytes.find(std::string("intent-visible ") + std::string(k_hostile_shown)) != std::string::npos);
  CHECK(r.bytes.find("missing-" + std::string(k_hostile_shown) + ".txt") != std::string::npos);  // the step's error
  CHECK(r.bytes.find("step 2 read_file failed") != std::string::npos);

  SECTION("the answer whole, in one piece, and with --json (the result on stdout, the answer on stderr)") {
    server.reset();
    server.set_script(json::object{{"rules", hostile_rules({{"reply", with("whole-answer ", " whole-end")}})}});
    for (const bool as_json : {false, true}) {
      auto whole = run_goal(server, dir, as_json ? std::vector<std::string>{"--json"} : std::vector<std::string>{});
      INFO(as_json);
      CHECK(whole.exit_code == 1);
      check_clean(whole, as_json);
      CHECK(whole.bytes.find("whole-answer " + std::string(k_hostile_shown) + " whole-end") != std::string::npos);
      if (as_json) CHECK(whole.bytes.find("\\u001b]0;pwned-title") != std::string::npos);  // JSON-escaped, inert
    }
  }
}

TEST_CASE("dagent run on a terminal: a `dagent: …` error line carrying escape sequences is stripped", "[cli][terminal]") {
  // The answer call is refused with a message that is hostile: the run's error line quotes it.
  json::object refused{{"status", 400},
                       {"body", json::object{{"error", json::object{{"message", with("refused-visible ", " refused-end")},
                                                                    {"type", "invalid_request_error"}}}}}};
  TestServer server(TestServerOptions{.script = json::object{{"rules", hostile_rules(refused)}}});
  TempDir dir;
  auto r = run_goal(server, dir);
  INFO(printable(r.bytes));
  CHECK(r.exit_code != 0);
  // The HTTP layer already turns a server message's controls into spaces, so an OSC's text may
  // show: inert, as its ESC and BEL are gone.
  check_clean(r, true);
  CHECK(r.bytes.find("dagent: answer synthesis failed") != std::string::npos);
  CHECK(r.bytes.find("refused-visible ") != std::string::npos);
  CHECK(r.bytes.find(" refused-end\n") != std::string::npos);

  SECTION("planning refused: the problem lines and the closing `dagent:` line") {
    server.reset();
    json::array rules{chat_rule("intent analyser", {{"reply", R"({"intent": "x", "tools": []})"}}),
                      chat_rule("Write a plan for the goal", refused)};
    server.set_script(json::object{{"rules", rules}});
    auto planning = run_goal(server, dir);
    INFO(printable(planning.bytes));
    CHECK(planning.exit_code == 3);
    check_clean(planning, true);
    CHECK(planning.bytes.find("refused-visible ") != std::string::npos);
    CHECK(planning.bytes.find(" refused-end\ndagent: the model could not be reached") != std::string::npos);
  }
}

TEST_CASE("json_for_terminal: C1 controls, DEL and bidi overrides in printed JSON become JSON escapes, same value",
          "[cli][terminal]") {
  const json::value v = json::object{{"answer", "a\xc2\x9b" "2J b\x7f c\xe2\x80\xae" "d\xe2\x81\xa6" "e \xc3\xa9 \x1b[31m"}};
  const std::string raw = json::serialize(v);
  CHECK_FALSE(foreign_controls(raw).empty());  // Boost.JSON leaves C1 and DEL raw
  const std::string inert = dagent::cli::json_for_terminal(raw);
  INFO(inert);
  CHECK(foreign_controls(inert).empty());
  CHECK(inert.find("\\u009b") != std::string::npos);
  CHECK(inert.find("\\u202e") != std::string::npos);
  CHECK(inert.find("\\u2066") != std::string::npos);
  CHECK(inert.find("\xc3\xa9") != std::string::npos);  // other text is left as it is
  CHECK(json::parse(inert) == v);
}
