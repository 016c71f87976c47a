#include "executor/plan.hpp"

#include <algorithm>
#include <unordered_set>

#include <boost/json/serialize.hpp>
#include <boost/json/stream_parser.hpp>

#include "executor/reference.hpp"

namespace dagent::executor {
namespace {

namespace json = boost::json;

std::optional<int> as_step_id(const json::value& v) {
  if (v.is_int64() && v.get_int64() > 0 && v.get_int64() <= INT32_MAX) return static_cast<int>(v.get_int64());
  if (v.is_uint64() && v.get_uint64() > 0 && v.get_uint64() <= INT32_MAX) return static_cast<int>(v.get_uint64());
  return std::nullopt;
}

constexpr std::string_view k_known_keys[] = {"id", "action", "parameters", "args", "dependencies", "verify",
                                             "critical", "description", "reason", "tool", "for_each"};

void parse_step(const json::value& item, std::size_t index, ParsedPlan& out, std::unordered_set<int>& seen) {
  const auto* obj = item.if_object();
  if (!obj) {
    out.problems.push_back({0, "step #" + std::to_string(index + 1) + " is not a JSON object"});
    return;
  }
  auto problem = [&](int id, std::string msg) { out.problems.push_back({id, std::move(msg)}); };

  const auto* id_value = obj->if_contains("id");
  if (!id_value) {
    problem(0, "step #" + std::to_string(index + 1) + " has no id");
    return;
  }
  auto id = as_step_id(*id_value);
  if (!id) {
    problem(0, "step #" + std::to_string(index + 1) + " has an invalid id " + json::serialize(*id_value) +
                   " (ids are positive integers)");
    return;
  }
  if (!seen.insert(*id).second) {
    problem(*id, "duplicate step id " + std::to_string(*id));
    return;
  }

  Step step;
  step.id = *id;
  const auto* action = obj->if_contains("action");
  if (!action) action = obj->if_contains("tool");
  if (!action || !action->is_string() || action->get_string().empty()) {
    problem(step.id, "missing \"action\" (the name of a tool)");
  } else {
    step.action = action->get_string();
  }

  const auto* params = obj->if_contains("parameters");
  if (!params) params = obj->if_contains("args");
  if (params) {
    if (params->is_object()) {
      step.parameters = params->get_object();
    } else {
      problem(step.id, "\"parameters\" must be a JSON object, got " + json::serialize(*params));
    }
  }

  if (const auto* deps = obj->if_contains("dependencies")) {
    if (const auto* arr = deps->if_array()) {
      for (const auto& d : *arr) {
        if (auto dep = as_step_id(d)) {
          if (std::find(step.dependencies.begin(), step.dependencies.end(), *dep) == step.dependencies.end())
            step.dependencies.push_back(*dep);
        } else {
          problem(step.id, "dependency " + json::serialize(d) + " is not a step id");
        }
      }
    } else if (!deps->is_null()) {
      problem(step.id, "\"dependencies\" must be a list of step ids");
    }
  }

  if (const auto* verify = obj->if_contains("verify"); verify && !verify->is_null()) step.verify = *verify;
  if (const auto* critical = obj->if_contains("critical")) {
    if (critical->is_bool()) {
      step.critical = critical->get_bool();
    } else {
      problem(step.id, "\"critical\" must be true or false");
    }
  }
  if (const auto* each = obj->if_contains("for_each")) {
    constexpr std::string_view k_form = "for_each must be a reference like $step2.entries or a list";
    if (each->is_array()) {
      step.for_each = *each;
    } else if (const auto* text = each->if_string()) {
      auto tmpl = parse_template(*text);
      if (!tmpl) {
        problem(step.id, std::string(k_form) + ": " + tmpl.error());
      } else if (!tmpl->is_whole_reference()) {
        problem(step.id, std::string(k_form) + ", got " + json::serialize(*each));
      } else {
        step.for_each = *each;
      }
    } else {
      problem(step.id, std::string(k_form) + ", got " + json::serialize(*each));
    }
  }
  for (const auto& kv : *obj) {
    if (std::find(std::begin(k_known_keys), std::end(k_known_keys), kv.key()) == std::end(k_known_keys))
      problem(step.id, "unknown key \"" + std::string(kv.key()) + "\"");
  }
  out.plan.steps.push_back(std::move(step));
}

}  // namespace

std::string PlanProblem::to_string() const {
  return step_id == 0 ? "plan: " + message : "step " + std::to_string(step_id) + ": " + message;
}

ParsedPlan parse_plan(const boost::json::value& json) {
  ParsedPlan out;
  const json::array* steps = json.if_array();
  if (!steps) {
    if (const auto* obj = json.if_object()) {
      if (const auto* s = obj->if_contains("steps")) steps = s->if_array();
    }
  }
  if (!steps) {
    out.problems.push_back({0, "a plan is a JSON array of steps or an object {\"steps\": [...]}"});
    return out;
  }
  if (steps->empty()) out.problems.push_back({0, "the plan has no steps"});
  std::unordered_set<int> seen;
  out.plan.steps.reserve(steps->size());
  for (std::size_t i = 0; i < steps->size(); ++i) parse_step((*steps)[i], i, out, seen);
  return out;
}

boost::system::result<boost::json::value, std::string> parse_json_text(std::string_view text) {
  json::parse_options opts;
  opts.allow_comments = true;
  opts.allow_trailing_commas = true;
  json::stream_parser parser({}, opts);
  boost::system::error_code ec;
  auto consumed = parser.write_some(text.data(), text.size(), ec);
  if (!ec) {
    parser.finish(ec);
    consumed = text.size();
  }
  if (ec) {
    auto upto = text.substr(0, std::min(consumed, text.size()));
    auto line = 1 + std::count(upto.begin(), upto.end(), '\n');
    auto last_nl = upto.rfind('\n');
    auto column = upto.size() - (last_nl == std::string_view::npos ? 0 : last_nl + 1) + 1;
    return {boost::system::in_place_error, "invalid JSON at line " + std::to_string(line) + ", column " + std::to_string(column) + ": " + ec.message()};
  }
  return parser.release();
}

}  // namespace dagent::executor
