#include "runtime/resume.hpp"

#include <map>
#include <string>

namespace dagent::runtime {

namespace json = boost::json;

namespace {

struct Seen {
  std::string action;
  std::string status;
  std::string verification;
  int attempt = 0;
  std::optional<json::value> output;
};

}  // namespace

ResumePoint resume_point(const record::Recording& recording) {
  ResumePoint point;
  std::map<int, Seen> steps;
  for (const auto& event : recording.events) {
    const auto* type = event.if_contains("type");
    if (!type || !type->is_string()) continue;
    const std::string_view kind = type->get_string();
    if (kind == "plan") {
      if (const auto* s = event.if_contains("steps"); s && s->is_array()) point.plan = s->get_array();
      continue;
    }
    // Only a success is final: an interrupted (Ctrl-C) or failed run resumes with its failed steps.
    if (kind == "end") {
      const auto* status = event.if_contains("status");
      point.finished = status && *status == "succeeded";
    }
    if (kind == "resume") point.finished = false;
    const auto* id = event.if_contains("step");
    if (!id || !id->is_int64()) continue;
    auto& seen = steps[static_cast<int>(id->get_int64())];
    if (kind == "tool") {
      if (const auto* out = event.if_contains("output")) seen.output = *out;
    } else if (kind == "step") {
      if (const auto* v = event.if_contains("action"); v && v->is_string()) seen.action = v->get_string();
      if (const auto* v = event.if_contains("status"); v && v->is_string()) seen.status = v->get_string();
      if (const auto* v = event.if_contains("verification"); v && v->is_string()) seen.verification = v->get_string();
      if (const auto* v = event.if_contains("attempt"); v && v->is_int64()) seen.attempt = static_cast<int>(v->get_int64());
    }
  }
  for (const auto& [id, seen] : steps) {
    if (seen.status != "succeeded" || seen.verification == "failed" || seen.verification == "error" ||
        seen.verification == "pending" || !seen.output)
      continue;
    StepResult r;
    r.id = id;
    r.action = seen.action;
    r.status = StepStatus::succeeded;
    r.attempts = seen.attempt;
    r.output = *seen.output;
    r.verification = seen.verification == "passed" ? VerificationStatus::passed : VerificationStatus::not_requested;
    point.kept.push_back(std::move(r));
  }
  return point;
}

}  // namespace dagent::runtime
