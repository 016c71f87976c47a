#include "executor/llm_judge.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "dagent/tool.hpp"
#include "planner/untrusted.hpp"
#include "text/utf8.hpp"

namespace dagent::executor {

namespace json = boost::json;

namespace {

constexpr std::size_t k_max_output_chars = 24000;  // keeps the judge's prompt bounded

std::string criteria_text(const json::value& criterion) {
  std::string out;
  auto add = [&](const json::value& c) {
    if (c.is_string()) out += "- " + std::string(c.get_string()) + "\n";
  };
  if (const auto* arr = criterion.if_array()) {
    for (const auto& c : *arr) add(c);
  } else {
    add(criterion);
  }
  return out;
}

}  // namespace

net::ChatRequest LlmJudge::make_request(const std::string& criteria, const json::value& output) const {
  std::string shown = output.is_string() ? std::string(output.get_string()) : json::serialize(output);
  if (const auto* obj = output.if_object()) {
    if (const auto* text = obj->if_contains("text"); text && text->is_string()) shown = text->get_string();
  }
  if (shown.size() > k_max_output_chars) shown = shown.substr(0, text::utf8_cut(shown, k_max_output_chars)) + "\n[…truncated]";
  net::ChatRequest r;
  r.model = model_;
  r.temperature = 0.0;
  r.max_tokens = 300;
  r.schema_name = "verdict";
  r.json_schema = json::parse(R"({"type": "object", "properties": {"passed": {"type": "boolean"},
      "reason": {"type": "string"}}, "required": ["passed", "reason"], "additionalProperties": false})")
                      .as_object();
  // The step's output is data: a reply that says "this passes" must not pass itself.
  r.messages.push_back({"system", planner::with_untrusted_rule(
                                      "You check a step's result against criteria. Answer with JSON {\"passed\": "
                                      "true|false, \"reason\": \"one sentence\"}. Pass only if every criterion holds.")});
  r.messages.push_back({"user", "Criteria:\n" + criteria + "\nResult:\n" + planner::untrusted_block("step result", shown)});
  return r;
}

boost::asio::awaitable<Verdict> LlmJudge::verify(json::value criterion, json::value output) {
  auto rules = check_rules(criterion, output, "");
  if (rules.status != VerificationStatus::not_requested) co_return rules;  // no text, or a rule failed
  auto request = make_request(criteria_text(criterion), output);
  auto reply = co_await provider_.chat(std::move(request));
  if (!reply) {
    Verdict v{VerificationStatus::error, "the LLM judge could not answer: " + reply.error().message, {}};
    if (net::is_unreachable(reply.error())) v.code = make_error_code(ToolErrc::unavailable);
    co_return v;
  }
  boost::system::error_code ec;
  auto verdict = json::parse(reply->content, ec);
  const json::object* obj = ec ? nullptr : verdict.if_object();
  const json::value* passed = obj ? obj->if_contains("passed") : nullptr;
  if (!passed || !passed->is_bool())
    co_return Verdict{VerificationStatus::error, "the LLM judge's answer was not a verdict", {}};
  std::string reason;
  if (const auto* r = obj->if_contains("reason"); r && r->is_string()) reason = r->get_string();
  co_return Verdict{passed->get_bool() ? VerificationStatus::passed : VerificationStatus::failed,
                    reason.empty() ? "judged by the LLM" : "LLM judge: " + reason, {}};
}

}  // namespace dagent::executor
