#include "runtime/resume.hpp"

#include <map>
#include <string>
#include <system_error>

namespace dagent::runtime {

namespace json = boost::json;

namespace {

struct Seen {
  std::string action;
  std::string status;
  std::string verification;
  int attempt = 0;
  std::optional<json::value> output;
  int items = -1;                       ///< for_each: the number of items, once the list was known
  std::map<int, json::value> item_outputs;  ///< for_each: items whose last recorded call succeeded
};

// A for_each step's result from the items recorded: succeeded with the whole list when every item
// is there, else pending with the finished items (executor::ItemResult succeeded, output at its index).
executor::StepResult fan_out_result(int id, const Seen& seen) {
  executor::StepResult r;
  r.id = id;
  r.action = seen.action;
  r.fan_out = true;
  const int last = seen.item_outputs.empty() ? -1 : seen.item_outputs.rbegin()->first;
  const bool complete = seen.items >= 0 && static_cast<int>(seen.item_outputs.size()) == seen.items &&
                        last == seen.items - 1;
  json::array outputs(static_cast<std::size_t>(complete ? seen.items : last + 1));
  for (const auto& [index, output] : seen.item_outputs) {
    outputs[static_cast<std::size_t>(index)] = output;
    executor::ItemResult item;
    item.index = index;
    item.status = StepStatus::succeeded;
    r.items.push_back(std::move(item));
  }
  r.output = std::move(outputs);
  r.status = complete ? StepStatus::succeeded : StepStatus::pending;
  return r;
}

}  // namespace

ResumePoint resume_point(const record::Recording& recording) {
  ResumePoint point;
  if (const auto* id = recording.header.if_contains("run_id"); id && id->is_string()) point.run_id = id->get_string();
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
    const auto* item = event.if_contains("item");
    if (item && (!item->is_int64() || item->get_int64() < 0 || item->get_int64() > INT32_MAX)) continue;
    if (kind == "tool" && item) {
      const int index = static_cast<int>(item->get_int64());
      if (const auto* out = event.if_contains("output")) {
        seen.item_outputs[index] = *out;
      } else {
        seen.item_outputs.erase(index);  // a failed attempt after a success: a re-run of the step
      }
    } else if (kind == "tool") {
      if (const auto* out = event.if_contains("output")) seen.output = *out;
    } else if (kind == "step" && !item) {
      if (const auto* v = event.if_contains("items"); v && v->is_int64()) seen.items = static_cast<int>(v->get_int64());
      if (const auto* v = event.if_contains("action"); v && v->is_string()) seen.action = v->get_string();
      if (const auto* v = event.if_contains("status"); v && v->is_string()) seen.status = v->get_string();
      if (const auto* v = event.if_contains("verification"); v && v->is_string()) seen.verification = v->get_string();
      if (const auto* v = event.if_contains("attempt"); v && v->is_int64()) seen.attempt = static_cast<int>(v->get_int64());
    }
  }
  for (const auto& [id, seen] : steps) {
    if (seen.items >= 0 || !seen.item_outputs.empty()) {
      // A list that failed its verification is made again from scratch.
      if (seen.verification == "failed" || seen.verification == "error" || seen.verification == "pending") continue;
      auto r = fan_out_result(id, seen);
      if (r.status == StepStatus::succeeded && seen.status != "succeeded") r.status = StepStatus::pending;
      if (r.status == StepStatus::pending && r.items.empty()) continue;
      r.attempts = r.status == StepStatus::succeeded ? seen.attempt : 0;
      r.verification = seen.verification == "passed" ? VerificationStatus::passed : VerificationStatus::not_requested;
      point.kept.push_back(std::move(r));
      continue;
    }
    if (seen.status != "succeeded" || seen.verification == "failed" || seen.verification == "error" ||
        seen.verification == "pending" || !seen.output)
      continue;
    executor::StepResult r;
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

namespace {

// Whether `inner` is `folder` or beneath it; both canonical.
bool beneath(const std::filesystem::path& folder, const std::filesystem::path& inner) {
  auto f = folder.begin(), i = inner.begin();
  for (; f != folder.end(); ++f, ++i)
    if (i == inner.end() || *f != *i) return false;
  return true;
}

}  // namespace

std::optional<std::filesystem::path> recorded_file(const std::filesystem::path& recording, std::string_view field,
                                                   std::string_view ref, std::string* refused) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path given{std::string(ref)};
  const fs::path file = (recording.parent_path() / given).lexically_normal();
  const bool beside = fs::is_regular_file(file, ec);
  // A name that is no file beside the recording is a configured task's name, unless it is a file
  // from where dagent runs (what find_task would load): that file is outside the folder too.
  const bool elsewhere = !beside && field == "task_ref" && !ref.empty() && fs::is_regular_file(given, ec);
  if (!beside && !elsewhere) return std::nullopt;
  const fs::path folder = fs::weakly_canonical(fs::absolute(recording, ec).parent_path(), ec);
  const fs::path real = fs::weakly_canonical(fs::absolute(beside ? file : given, ec), ec);
  if (beside && !ec && beneath(folder, real)) return file;
  *refused = recording.string() + ": the recording's " + std::string(field) + " '" + std::string(ref) +
             "' is outside the recording's folder (" + real.string() +
             "); a recording is code: give that " + (field == "config" ? "config with --config" : "task on the command line") +
             " to use it";
  return std::nullopt;
}

}  // namespace dagent::runtime
