// The plan-reply reader (src/planner/step_stream), whole and streamed. Fuzzer-chosen split points
// (fuzz/chunks.hpp), then the reply. Checks the one-reader invariant of
// tests/planner/test_step_stream.cpp's property test: however the reply is split, the streamed
// read yields the same steps and ends the same way as the whole read, and the steps it yields are
// exactly the object steps of the plan. The plan found is also checked against the candidate rule
// of step_stream.hpp, written here separately.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/parse.hpp>

#include "check.hpp"
#include "chunks.hpp"
#include "planner/step_stream.hpp"
#include "text/utf8.hpp"

namespace {

namespace json = boost::json;
using dagent::planner::StepStream;
using Steps = std::vector<json::object>;

using dagent::fuzz::check;

struct Read {
  Steps streamed;
  boost::system::result<json::array, std::string> plan;
  bool finished = false;
};

Read read(const std::vector<std::string_view>& chunks) {
  StepStream stream;
  Steps streamed;
  for (const auto chunk : chunks) {
    for (auto& step : stream.feed(chunk)) streamed.push_back(std::move(step));
    check(stream.steps_emitted() == streamed.size(), "steps_emitted miscounts");
  }
  const bool finished = stream.finished();
  auto plan = stream.finish();
  return {std::move(streamed), std::move(plan), finished};
}

Steps objects_of(const json::array& steps) {
  Steps out;
  for (const auto& s : steps)
    if (s.is_object()) out.push_back(s.as_object());
  return out;
}

// The candidate rule of step_stream.hpp: the first span that parses strictly and is a plan.
std::optional<json::array> rule_plan(std::string_view text) {
  std::size_t from = 0;
  for (;;) {
    const std::size_t start = text.find_first_of("{[", from);
    if (start == std::string_view::npos) return std::nullopt;
    std::string closers;
    bool in_string = false, escape = false;
    std::size_t end = text.size();
    for (std::size_t i = start; i < text.size(); ++i) {
      const char c = text[i];
      if (in_string) {
        if (escape) escape = false;
        else if (c == '\\') escape = true;
        else if (c == '"') in_string = false;
        continue;
      }
      if (c == '"') in_string = true;
      else if (c == '{') closers += '}';
      else if (c == '[') closers += ']';
      else if (c == '}' || c == ']') {
        if (c != closers.back()) {
          end = i + 1;
          break;
        }
        closers.pop_back();
        if (closers.empty()) {
          end = i + 1;
          break;
        }
      }
    }
    boost::system::error_code ec;
    const json::value v = json::parse(text.substr(start, end - start), ec);
    if (!ec) {
      if (const auto* arr = v.if_array(); arr && (arr->empty() || (*arr)[0].is_object())) return *arr;
      if (const auto* obj = v.if_object())
        if (const auto* steps = obj->if_contains("steps"); steps && steps->is_array()) return steps->get_array();
    }
    from = end;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto split = dagent::fuzz::split_input(std::string_view(reinterpret_cast<const char*>(data), size));
  const Read whole = read({split.text});
  const Read chunked = read(split.chunks);

  check(chunked.streamed == whole.streamed, "the split changed the streamed steps");
  check(chunked.finished == whole.finished, "the split changed finished()");
  check(chunked.plan.has_value() == whole.plan.has_value(), "the split changed whether a plan was read");
  if (!whole.plan) {
    check(chunked.plan.error() == whole.plan.error(), "the split changed the failure");
    check(dagent::text::is_valid_utf8(whole.plan.error()), "the failure is not UTF-8");
  } else {
    check(*chunked.plan == *whole.plan, "the split changed the plan");
    check(whole.streamed == objects_of(*whole.plan), "the streamed steps are not the plan's object steps");
  }
  const auto read_whole = dagent::planner::read_plan(split.text);
  check(read_whole.has_value() == whole.plan.has_value(), "read_plan differs from one feed");
  if (read_whole) check(*read_whole == *whole.plan, "read_plan read another plan");

  const auto expected = rule_plan(split.text);
  if (whole.plan) {
    check(expected.has_value() && *expected == *whole.plan, "the plan is not the first candidate that is a plan");
  } else if (expected) {
    // A candidate that yielded steps is the plan even when it then breaks: an earlier candidate may
    // have taken the place of the one the rule finds, or repeated "steps" keys may disagree.
    check(!whole.streamed.empty() || whole.plan.error().find("does not match the steps") != std::string::npos,
          "a plan the rule finds was not read, and no step was streamed");
  }
  return 0;
}
