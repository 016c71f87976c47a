#include "executor/analysis.hpp"

#include <algorithm>
#include <functional>
#include <string>
#include <unordered_set>

#include <boost/json/serialize.hpp>

#include "dagent/tool.hpp"
#include "executor/verifier.hpp"
#include "tools/json_schema.hpp"
#include "tools/registry.hpp"

namespace dagent::executor {
namespace {

namespace json = boost::json;

// A stand-in of the type the schema expects, for a parameter that is exactly one reference:
// its real type is known only at run time, when the parameters are checked again.
json::value placeholder_for(const json::object* schema) {
  if (!schema) return json::string("x");
  if (const auto* choices = schema->if_contains("enum"); choices && choices->is_array() && !choices->get_array().empty())
    return choices->get_array().front();
  const json::value* type = schema->if_contains("type");
  if (type && type->is_array() && !type->get_array().empty()) type = &type->get_array()[0];
  if (!type || !type->is_string()) return json::string("x");
  const auto& t = type->get_string();
  if (t == "integer" || t == "number") {
    if (const auto* min = schema->if_contains("minimum")) return *min;
    return 0;
  }
  if (t == "boolean") return false;
  if (t == "string") {
    std::size_t len = 1;
    if (const auto* min = schema->if_contains("minLength"); min && min->is_number())
      len = std::max<std::size_t>(len, min->to_number<std::size_t>());
    return json::string(std::string(len, 'x'));
  }
  if (t == "object") return json::object();
  if (t == "array") return json::array();
  if (t == "null") return nullptr;
  return json::string("x");
}

const json::object* sub_schema(const json::object* schema, const PathSegment& seg) {
  if (!schema) return nullptr;
  const json::value* next = nullptr;
  if (seg.is_index()) {
    next = schema->if_contains("items");
  } else if (const auto* props = schema->if_contains("properties"); props && props->is_object()) {
    next = props->get_object().if_contains(seg.key);
  }
  return next ? next->if_object() : nullptr;
}

// Whether a problem at `p.path` belongs to a parameter whose value is known only at run time
// (the scheduler checks it again then): a whole reference may hold anything; text with a
// reference inside is a string, so only its type is known now.
bool hidden_by_reference(const tools::SchemaProblem& p, const std::vector<std::pair<std::string, bool>>& slots) {
  for (const auto& [path, whole] : slots) {
    const bool at = p.path == path;
    const bool under = p.path.size() > path.size() && p.path.starts_with(path) &&
                       (p.path[path.size()] == '.' || p.path[path.size()] == '[');
    if (whole && (at || under)) return true;
    if (!whole && at && p.keyword != "type") return true;
  }
  return false;
}

void check_parameter_schema(const Step& step, const StepInfo& info, std::vector<PlanProblem>& problems) {
  const auto compiled = tools::compile_schema(info.tool->parameters_schema(), "schema");
  if (!compiled.schema) {
    for (const auto& p : compiled.problems)
      problems.push_back({step.id, "the parameter schema of '" + step.action + "' is invalid: " + p});
    return;
  }
  json::object probe = step.parameters;
  const auto& schema = info.tool->parameters_schema();
  std::vector<std::pair<std::string, bool>> slot_paths;  // (JSON path, whole reference)
  for (const auto& slot : info.params.slots) {
    json::value* target = find_param(probe, slot.where);
    if (!target) continue;
    std::string path = "parameters";
    for (const auto& seg : slot.where.path)
      path = seg.is_index() ? tools::element_path(path, seg.index) : tools::member_path(path, seg.key);
    slot_paths.emplace_back(std::move(path), slot.tmpl.is_whole_reference());
    if (slot.tmpl.is_whole_reference()) {
      const json::object* s = &schema;
      for (const auto& seg : slot.where.path) s = sub_schema(s, seg);
      *target = placeholder_for(s);
    } else {
      *target = json::string("text");
    }
  }
  for (auto& p : compiled.schema->validate(probe, "parameters"))
    if (!hidden_by_reference(p, slot_paths)) problems.push_back({step.id, p.to_string()});
}

// An `llm` step's json_schema is a schema the reply is checked against: it must be one.
void check_llm_schema(const Step& step, const StepInfo& info, std::vector<PlanProblem>& problems) {
  if (!info.tool || info.tool->name() != "llm") return;
  json::object params = step.parameters;
  // `$$` is a literal `$` (a pattern's end anchor): the schema is checked as the tool will see it.
  for (const auto& slot : info.params.slots) {
    const auto& path = slot.where.path;
    if (path.empty() || path[0].is_index() || path[0].key != "json_schema") continue;
    std::string text;
    for (const auto& piece : slot.tmpl.pieces) {
      if (piece.ref) return;  // built from references: the tool checks it before its request
      text += piece.literal;
    }
    if (json::value* v = find_param(params, slot.where)) *v = json::string(text);
  }
  const auto* schema = params.if_contains("json_schema");
  if (!schema || !schema->is_object()) return;
  for (auto& p : tools::check_schema(schema->get_object(), "parameters.json_schema")) problems.push_back({step.id, p});
}

// The cycles among the steps `left` (those Kahn's algorithm could not order), each once: one
// depth-first walk over them, iterative (a chain of 10 000 steps must not exhaust the stack) and
// linear in steps and dependencies. Each cycle is listed from a step to the one it waits for,
// ending where it started.
constexpr std::size_t k_max_cycles = 20;

std::vector<std::vector<std::size_t>> find_cycles(const std::vector<StepInfo>& steps, const std::vector<bool>& left) {
  enum : unsigned char { k_new, k_on_stack, k_done };
  std::vector<unsigned char> state(steps.size(), k_new);
  std::vector<std::size_t> position(steps.size(), 0);  // index in `path` while on the stack
  std::vector<std::size_t> path;
  std::vector<std::size_t> next_dep;                    // parallel to `path`
  std::vector<bool> reported(steps.size(), false);
  std::vector<std::vector<std::size_t>> cycles;
  for (std::size_t root = 0; root < steps.size(); ++root) {
    if (!left[root] || state[root] != k_new) continue;
    path.assign(1, root);
    next_dep.assign(1, 0);
    state[root] = k_on_stack;
    position[root] = 0;
    while (!path.empty()) {
      const std::size_t u = path.back();
      const auto& deps = steps[u].deps;
      if (next_dep.back() == deps.size()) {
        state[u] = k_done;
        path.pop_back();
        next_dep.pop_back();
        continue;
      }
      const std::size_t v = deps[next_dep.back()++];
      if (!left[v]) continue;
      if (state[v] == k_on_stack) {
        // A cycle through a step already shown is not shown again; a few are enough to act on.
        if (reported[v] || cycles.size() == k_max_cycles) continue;
        std::vector<std::size_t> cycle(path.begin() + static_cast<std::ptrdiff_t>(position[v]), path.end());
        for (auto idx : cycle) reported[idx] = true;
        cycle.push_back(v);
        cycles.push_back(std::move(cycle));
      } else if (state[v] == k_new) {
        state[v] = k_on_stack;
        position[v] = path.size();
        path.push_back(v);
        next_dep.push_back(0);
      }
    }
  }
  return cycles;
}

// "parameter P: $item.x", the first `$item` or `$index` in `params`, if any.
std::optional<std::string> item_reference(const CompiledParams& params) {
  for (const auto& slot : params.slots)
    for (const auto& piece : slot.tmpl.pieces)
      if (piece.ref && (piece.ref->root == Reference::Root::item || piece.ref->root == Reference::Root::index))
        return "parameter " + to_string(slot.where.path) + ": " + piece.ref->text;
  return std::nullopt;
}

// A dependency of a step by id: explicit ("" via) or through a reference (via its text).
struct DepId {
  int id;
  std::string via;
  bool orders;  ///< false: a reference that must exist but does not order (dependency_analysis off)
};

// Checks one step on its own (action, references, schema, criterion), fills `info.tool` and
// `info.params`, and returns its dependencies by id. Self-references are reported here.
std::vector<DepId> inspect_step(const Step& step, const tools::Registry& registry, const AnalysisOptions& options,
                                StepInfo& info, std::vector<PlanProblem>& problems) {
  if (!step.action.empty()) {
    info.tool = registry.get(step.action).get();
    if (!info.tool && tools::is_builtin_tool(step.action))
      problems.push_back({step.id, "\"" + step.action + "\" is disabled (tools.enabled)"});
    else if (!info.tool)
      problems.push_back({step.id, "unknown action '" + step.action + "'"});
  }
  info.params = compile_params(step.parameters);
  for (auto& msg : info.params.problems) problems.push_back({step.id, msg});

  std::vector<DepId> deps;
  auto add_dep = [&](int dep_id, const std::string& via, bool orders) {
    if (dep_id == step.id)
      problems.push_back({step.id, via.empty() ? "depends on itself" : "refers to itself (" + via + ")"});
    deps.push_back({dep_id, via, orders});
  };
  for (int dep : step.dependencies) add_dep(dep, "", true);
  for (const auto& ref : info.params.references()) {
    if (ref.root == Reference::Root::input) {
      if (options.inputs && !options.inputs->contains(ref.path.front().key))
        problems.push_back({step.id, "reference " + ref.text + ": the task has no input '" + ref.path.front().key + "'"});
      continue;
    }
    if (ref.root != Reference::Root::step) continue;  // $item, $index: checked below
    add_dep(ref.step_id, ref.text, options.dependency_analysis);
  }
  if (step.for_each) {
    info.fan_out = true;
    info.for_each = compile_params(json::object{{"for_each", *step.for_each}});
    for (auto& msg : info.for_each.problems) problems.push_back({step.id, msg});
    if (item_reference(info.for_each))
      problems.push_back({step.id, "for_each cannot refer to $item or $index (one for_each step cannot run inside another)"});
    for (const auto& ref : info.for_each.references()) {
      if (ref.root == Reference::Root::input) {
        if (options.inputs && !options.inputs->contains(ref.path.front().key))
          problems.push_back(
              {step.id, "for_each " + ref.text + ": the task has no input '" + ref.path.front().key + "'"});
        continue;
      }
      if (ref.root != Reference::Root::step) continue;
      // The list must exist before the step starts, so its step always orders it; with dependency
      // analysis off (references do not order) the user must list it.
      const bool listed =
          std::find(step.dependencies.begin(), step.dependencies.end(), ref.step_id) != step.dependencies.end();
      if (!options.dependency_analysis && !listed && ref.step_id != step.id)
        problems.push_back({step.id, "for_each " + ref.text + ": step " + std::to_string(ref.step_id) +
                                         " must be in \"dependencies\" (dependency_analysis is off)"});
      add_dep(ref.step_id, "for_each " + ref.text, true);
    }
  } else if (auto misplaced = item_reference(info.params)) {
    problems.push_back({step.id, *misplaced + " is defined only in a step with for_each"});
  }
  if (info.tool && info.params.problems.empty()) {
    check_parameter_schema(step, info, problems);
    check_llm_schema(step, info, problems);
  }
  if (step.verify)
    for (auto& msg : check_criterion(*step.verify)) problems.push_back({step.id, "verify: " + msg});
  return deps;
}

}  // namespace

namespace {

void derive(const Plan& plan, const tools::Registry& registry, const AnalysisOptions& options, Analysis& a) {
  const auto n = plan.steps.size();
  a.steps.resize(n);
  auto& problems = a.problems;

  // Checked first and alone: an oversized plan is rejected before any step is inspected.
  if (options.max_steps > 0 && n > static_cast<std::size_t>(options.max_steps)) {
    problems.push_back({0, "the plan has " + std::to_string(n) + " steps, more than planner.max_steps (" +
                               std::to_string(options.max_steps) + ")"});
    a.steps.clear();
    return;
  }

  for (std::size_t i = 0; i < n; ++i) {
    const int id = plan.steps[i].id;
    if (id <= 0) problems.push_back({0, "step #" + std::to_string(i + 1) + " has an invalid id " + std::to_string(id)});
    if (!a.index_of.emplace(id, i).second) problems.push_back({id, "duplicate step id " + std::to_string(id)});
  }

  bool graph_ok = true;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& step = plan.steps[i];
    auto& info = a.steps[i];
    for (const auto& dep : inspect_step(step, registry, options, info, problems)) {
      auto it = a.index_of.find(dep.id);
      if (it == a.index_of.end()) {
        problems.push_back({step.id, (dep.via.empty() ? "depends on step " : dep.via + " refers to step ") +
                                         std::to_string(dep.id) + ", which is not in the plan"});
        graph_ok = false;
        continue;
      }
      if (dep.id == step.id) {
        graph_ok = false;
        continue;
      }
      if (dep.orders && std::find(info.deps.begin(), info.deps.end(), it->second) == info.deps.end())
        info.deps.push_back(it->second);
    }
  }
  if (!graph_ok) return;

  for (std::size_t i = 0; i < n; ++i)
    for (auto d : a.steps[i].deps) a.steps[d].dependents.push_back(i);

  // Kahn's algorithm: levels in topological order; whatever is left sits on a cycle.
  std::vector<std::size_t> pending(n);
  std::vector<std::size_t> order;
  order.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    pending[i] = a.steps[i].deps.size();
    if (pending[i] == 0) order.push_back(i);
  }
  for (std::size_t k = 0; k < order.size(); ++k) {
    auto u = order[k];
    for (auto v : a.steps[u].dependents) {
      a.steps[v].level = std::max(a.steps[v].level, a.steps[u].level + 1);
      if (--pending[v] == 0) order.push_back(v);
    }
  }
  if (order.size() != n) {
    std::vector<bool> left(n, false);
    for (std::size_t i = 0; i < n; ++i) left[i] = pending[i] != 0;
    for (const auto& cycle : find_cycles(a.steps, left)) {
      std::string text;
      for (auto idx : cycle) {
        if (!text.empty()) text += " -> ";
        text += std::to_string(plan.steps[idx].id);
      }
      problems.push_back({plan.steps[cycle.front()].id, "dependency cycle: " + text + " (each step depends on the next)"});
    }
    return;
  }

  int max_level = 0;
  for (const auto& s : a.steps) max_level = std::max(max_level, s.level);
  a.levels.assign(n ? static_cast<std::size_t>(max_level) + 1 : 0, {});
  for (std::size_t i = 0; i < n; ++i) a.levels[static_cast<std::size_t>(a.steps[i].level)].push_back(i);

  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    auto& s = a.steps[*it];
    for (auto d : s.dependents) s.height = std::max(s.height, a.steps[d].height + 1);
  }
  if (n) {
    std::size_t cur = order.front();  // a source; pick the one heading the longest chain
    for (std::size_t i = 0; i < n; ++i)
      if (a.steps[i].deps.empty() && a.steps[i].height > a.steps[cur].height) cur = i;
    for (;;) {
      a.critical_path.push_back(cur);
      const auto& deps = a.steps[cur].dependents;
      if (deps.empty()) break;
      cur = *std::max_element(deps.begin(), deps.end(),
                              [&](auto x, auto y) { return a.steps[x].height < a.steps[y].height; });
    }
  }
}

}  // namespace

Analysis analyze(const Plan& plan, const tools::Registry& registry, const AnalysisOptions& options) {
  Analysis a;
  derive(plan, registry, options, a);
  std::stable_sort(a.problems.begin(), a.problems.end(),
                   [](const PlanProblem& x, const PlanProblem& y) { return x.step_id < y.step_id; });
  return a;
}

IncrementalAnalysis::IncrementalAnalysis(const tools::Registry& registry, AnalysisOptions options)
    : registry_(registry), options_(options) {}

std::vector<std::size_t> IncrementalAnalysis::add(Step step) {
  Pending p;
  p.step = std::move(step);
  std::vector<PlanProblem> problems;
  auto deps = inspect_step(p.step, registry_, options_, p.info, problems);
  // Self-references are among `problems`; no step with a repeated id is admitted (the final
  // analysis reports it), even when the first of them was itself invalid.
  const bool fresh_id = seen_ids_.insert(p.step.id).second;
  const bool valid = problems.empty() && p.step.id > 0 && fresh_id;
  for (auto& d : deps) p.deps.push_back({d.id, d.orders});
  std::vector<std::size_t> admitted;
  if (!valid) return admitted;
  // Past max_steps nothing more runs: the final analysis rejects the plan.
  if (options_.max_steps > 0 && plan_.steps.size() + waiting_.size() >= static_cast<std::size_t>(options_.max_steps))
    return admitted;
  // Only ordering dependencies wait: with dependency_analysis off, waiting on a reference would
  // order steps that analyze() leaves unordered, and two steps referring to each other (or one
  // referring to a later step that depends on it) would wait forever.
  std::unordered_set<int> missing;
  for (const auto& [id, orders] : p.deps)
    if (orders && !analysis_.index_of.contains(id)) missing.insert(id);
  if (!missing.empty()) {
    const int id = p.step.id;
    p.missing = missing.size();
    for (int dep : missing) waiting_on_[dep].push_back(id);
    waiting_.emplace(id, std::move(p));
    return admitted;
  }
  admit(std::move(p), admitted);
  // Each admitted step releases the steps that waited only for it, in turn.
  for (std::size_t k = 0; k < admitted.size(); ++k) {
    const auto released = waiting_on_.find(plan_.steps[admitted[k]].id);
    if (released == waiting_on_.end()) continue;
    const std::vector<int> ids = std::move(released->second);
    waiting_on_.erase(released);
    for (int id : ids) {
      auto it = waiting_.find(id);
      if (it == waiting_.end() || --it->second.missing != 0) continue;
      Pending ready = std::move(it->second);
      waiting_.erase(it);
      admit(std::move(ready), admitted);
    }
  }
  return admitted;
}

void IncrementalAnalysis::admit(Pending p, std::vector<std::size_t>& admitted) {
  const auto index = plan_.steps.size();
  StepInfo info = std::move(p.info);
  for (const auto& [id, orders] : p.deps) {
    if (!orders) continue;
    auto dep = analysis_.index_of.at(id);
    if (std::find(info.deps.begin(), info.deps.end(), dep) != info.deps.end()) continue;
    info.deps.push_back(dep);
    info.level = std::max(info.level, analysis_.steps[dep].level + 1);
    analysis_.steps[dep].dependents.push_back(index);
  }
  analysis_.index_of.emplace(p.step.id, index);
  plan_.steps.push_back(std::move(p.step));
  analysis_.steps.push_back(std::move(info));
  admitted.push_back(index);
}

}  // namespace dagent::executor
