#include "report/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include <openssl/evp.h>

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "executor/analysis.hpp"
#include "executor/plan.hpp"
#include "executor/reference.hpp"
#include "text/redact.hpp"
#include "text/terminal.hpp"
#include "text/utf8.hpp"
#include "tools/registry.hpp"

namespace dagent::report {

namespace {

namespace json = boost::json;

// ---- reading a result that may hold anything -------------------------------------------------

const json::value* field(const json::object* o, std::string_view key) { return o ? o->if_contains(key) : nullptr; }

std::optional<double> number_of(const json::value* v) {
  if (!v) return std::nullopt;
  double d = 0;
  if (v->is_double()) d = v->get_double();
  else if (v->is_int64()) d = static_cast<double>(v->get_int64());
  else if (v->is_uint64()) d = static_cast<double>(v->get_uint64());
  else return std::nullopt;
  if (!std::isfinite(d)) return std::nullopt;
  return d;
}

// A number as an int, clamped; `fallback` when it is no number.
int int_of(const json::value* v, int fallback) {
  auto d = number_of(v);
  if (!d) return fallback;
  return static_cast<int>(std::clamp(*d, -1e9, 1e9));
}

// A time in ms, clamped to 0..about 11 days: a negative or absurd value from a file must not
// make the chart's scale or its coordinates overflow.
std::optional<double> ms_of(const json::value* v) {
  auto d = number_of(v);
  if (!d) return std::nullopt;
  return std::clamp(*d, 0.0, 1e9);
}

// A string field as text; other values as compact JSON; null and absence as "".
std::string text_of(const json::value* v) {
  if (!v || v->is_null()) return {};
  if (v->is_string()) return std::string(v->get_string());
  return json::serialize(*v);
}

// ---- text out ---------------------------------------------------------------------------------

// Text from the result, fit for the page: valid UTF-8, no control characters but newline and
// tab, no bidirectional overrides (text must display in the order it reads), secrets masked.
std::string clean(std::string_view raw) {
  std::string text = text::for_terminal(text::valid_utf8(raw));
  if (auto secrets = text::secrets(); secrets && !secrets->empty()) secrets->mask(text);
  return text;
}

// `raw` cut at `max` bytes (on a UTF-8 boundary), cleaned and escaped, with what was left out.
std::string capped(std::string_view raw, std::size_t max) {
  if (raw.size() <= max) return html_escape(clean(raw));
  const std::size_t cut = text::utf8_cut(raw, max);
  return html_escape(clean(raw.substr(0, cut))) + "<span class=\"more\">… (" + std::to_string(raw.size() - cut) +
         " bytes more)</span>";
}

std::string esc(std::string_view raw) { return html_escape(clean(raw)); }

std::string format(const char* fmt, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, a);
  return buf;
}

std::string fmt_ms(double ms) {
  if (ms < 1000) return format("%.1f ms", ms);  // NaN is not: it falls through to %g below
  if (ms < 60000) return format("%.2f s", ms / 1000);
  // A result file is read as given: a duration past any real run (or not finite) is written as a
  // number rather than converted to whole minutes, which would overflow.
  if (!(ms < 1e15)) return format("%.3g ms", ms);
  return std::to_string(static_cast<long long>(ms / 60000)) + " min " + format("%.0f s", std::fmod(ms, 60000) / 1000);
}

std::string fmt_count(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  return format("%.3f", v);
}

// Pretty JSON; deeper than this, a subtree is written compact (the serializer needs no stack).
constexpr int k_pretty_depth = 24;

void pretty(const json::value& v, int depth, std::string& out) {
  const std::string indent(static_cast<std::size_t>(depth) * 2, ' ');
  if (depth >= k_pretty_depth) {
    out += json::serialize(v);
    return;
  }
  if (const auto* o = v.if_object(); o && !o->empty()) {
    out += "{\n";
    bool first = true;
    for (const auto& kv : *o) {
      if (!first) out += ",\n";
      first = false;
      out += indent + "  " + json::serialize(json::value(kv.key())) + ": ";
      pretty(kv.value(), depth + 1, out);
    }
    out += "\n" + indent + "}";
  } else if (const auto* a = v.if_array(); a && !a->empty()) {
    out += "[\n";
    bool first = true;
    for (const auto& e : *a) {
      if (!first) out += ",\n";
      first = false;
      out += indent + "  ";
      pretty(e, depth + 1, out);
    }
    out += "\n" + indent + "]";
  } else {
    out += json::serialize(v);
  }
}

// A value for a step's field: strings as text, anything else as pretty JSON.
std::string shown(const json::value& v) {
  if (v.is_string()) return std::string(v.get_string());
  std::string out;
  pretty(v, 0, out);
  return out;
}

// Each text shown for the steps is cut at max_field_bytes; all of them share max_text_bytes.
class TextBudget {
 public:
  explicit TextBudget(const ReportOptions& o) : field_(o.max_field_bytes), left_(o.max_text_bytes) {}
  std::string take(std::string_view raw) {
    if (left_ == 0) return "<span class=\"more\">(left out: the report is at its size limit)</span>";
    const std::size_t max = std::min(field_, left_);
    left_ -= std::min(raw.size(), max);
    return capped(raw, max);
  }
  // take(shown(v)), without formatting `v` once the budget is spent.
  std::string take_json(const json::value& v) { return left_ == 0 ? take(std::string_view()) : take(shown(v)); }

 private:
  std::size_t field_;
  std::size_t left_;
};

// ---- the run as the page shows it ---------------------------------------------------------------

struct ItemView {
  int index = 0;
  std::string status;
  int attempts = 0;
  std::optional<double> started, finished, duration;
  int slot = -1;
  std::string error;
};

struct StepView {
  int id = 0;
  std::string action;
  std::string status;
  int attempts = 0;
  std::optional<double> started, finished;
  std::optional<int> slot;  // absent in results written before the field existed
  int level = 0;
  std::string verification = "not_requested";
  std::string verification_reason;
  std::string error;
  const json::value* output = nullptr;
  const json::object* raw = nullptr;
  const executor::Step* plan_step = nullptr;
  std::vector<std::size_t> deps;  // indices into the step list
  std::vector<ItemView> items;
  int critical_position = -1;     // its place on the critical path, or -1
};

struct Bar {
  std::size_t step = 0;
  int item = -1;  // for_each item, or -1 for the step itself
  double start = 0, end = 0;
  int slot = -1;
  std::string status;
  int attempts = 1;
};

// Whether a step ran in this run: it had a slot, or (a result from before slots were kept) it
// succeeded or failed.
bool ran(const StepView& s) {
  return s.slot ? *s.slot >= 0 : (s.status == "succeeded" || s.status == "failed" || s.status == "running");
}

std::string status_class(std::string_view s) {
  for (std::string_view known : {"succeeded", "failed", "skipped", "pending", "running"})
    if (s == known) return std::string(known);
  return "other";
}

std::string verdict_class(std::string_view s) {
  for (std::string_view known : {"passed", "failed", "error", "pending"})
    if (s == known) return std::string(known);
  return "";
}

std::vector<StepView> read_steps(const json::array& steps) {
  std::vector<StepView> out;
  out.reserve(steps.size());
  for (const auto& v : steps) {
    StepView s;
    s.raw = v.if_object();
    s.id = int_of(field(s.raw, "id"), 0);
    s.action = text_of(field(s.raw, "action"));
    s.status = text_of(field(s.raw, "status"));
    s.attempts = std::max(0, int_of(field(s.raw, "attempts"), 0));
    s.started = ms_of(field(s.raw, "started_ms"));
    s.finished = ms_of(field(s.raw, "finished_ms"));
    if (const auto* slot = field(s.raw, "slot"); slot && number_of(slot)) s.slot = int_of(slot, -1);
    s.level = std::clamp(int_of(field(s.raw, "level"), -1), -1, 1 << 20);
    s.error = text_of(field(s.raw, "error"));
    s.output = field(s.raw, "output");
    if (const auto* ver = field(s.raw, "verification"); ver && ver->is_object()) {
      if (auto st = text_of(field(&ver->get_object(), "status")); !st.empty()) s.verification = st;
      s.verification_reason = text_of(field(&ver->get_object(), "reason"));
    }
    if (const auto* items = field(s.raw, "items"); items && items->is_array()) {
      for (const auto& iv : items->get_array()) {
        const auto* io = iv.if_object();
        ItemView item;
        item.index = int_of(field(io, "index"), static_cast<int>(s.items.size()));
        item.status = text_of(field(io, "status"));
        item.attempts = std::max(0, int_of(field(io, "attempts"), 0));
        item.started = ms_of(field(io, "started_ms"));
        item.finished = ms_of(field(io, "finished_ms"));
        item.duration = ms_of(field(io, "duration_ms"));
        item.slot = int_of(field(io, "slot"), -1);
        item.error = text_of(field(io, "error"));
        s.items.push_back(std::move(item));
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

// Dependencies and levels as the executor derives them (SPEC §3: explicit ∪ referenced), from the
// result's plan. Levels the result gives win: they are what ran.
void link_plan(const json::object& result, const executor::Plan& plan, std::vector<StepView>& steps) {
  std::unordered_map<int, std::size_t> view_of;  // step id → first step with it
  for (std::size_t i = 0; i < steps.size(); ++i) view_of.emplace(steps[i].id, i);
  std::unordered_map<int, std::size_t> plan_of;
  for (std::size_t p = 0; p < plan.steps.size(); ++p) plan_of.emplace(plan.steps[p].id, p);
  for (auto& s : steps)
    if (auto it = plan_of.find(s.id); it != plan_of.end()) s.plan_step = &plan.steps[it->second];

  if (const auto* levels = field(&result, "levels"); levels && levels->is_array()) {
    const auto& ls = levels->get_array();
    for (std::size_t l = 0; l < ls.size() && l < (1u << 20); ++l) {
      if (!ls[l].is_array()) continue;
      for (const auto& id : ls[l].get_array())
        if (auto it = view_of.find(int_of(&id, 0)); it != view_of.end() && steps[it->second].level < 0)
          steps[it->second].level = static_cast<int>(l);
    }
  }
  const tools::Registry no_tools;
  const auto analysis = executor::analyze(plan, no_tools, {.dependency_analysis = true, .max_steps = 0});
  const bool dag = analysis.steps.size() == plan.steps.size() && (plan.steps.empty() || !analysis.levels.empty());
  for (auto& s : steps) {
    if (!s.plan_step) continue;
    std::vector<int> dep_ids;
    const auto p = plan_of.at(s.id);
    if (dag) {
      for (auto d : analysis.steps[p].deps) dep_ids.push_back(plan.steps[d].id);
    } else {  // a cycle or a dangling reference: the plan's own lists, as far as they lead
      dep_ids = s.plan_step->dependencies;
      for (const auto& ref : executor::compile_params(s.plan_step->parameters).references())
        if (ref.root == executor::Reference::Root::step) dep_ids.push_back(ref.step_id);
    }
    for (int id : dep_ids)
      if (auto it = view_of.find(id); it != view_of.end() && it->second != static_cast<std::size_t>(&s - steps.data()) &&
                                      std::find(s.deps.begin(), s.deps.end(), it->second) == s.deps.end())
        s.deps.push_back(it->second);
    if (s.level < 0 && dag) s.level = analysis.steps[p].level;
  }
  // Steps placed nowhere: one level after their dependencies, in list order.
  for (auto& s : steps) {
    if (s.level >= 0) continue;
    s.level = 0;
    for (auto d : s.deps) s.level = std::max(s.level, steps[d].level + 1);
  }
  for (auto& s : steps) s.level = std::min(s.level, static_cast<int>(steps.size()));

  std::vector<int> path;
  if (const auto* cp = field(&result, "critical_path"); cp && cp->is_array()) {
    for (const auto& id : cp->get_array()) path.push_back(int_of(&id, 0));
  } else if (dag) {
    for (auto idx : analysis.critical_path) path.push_back(plan.steps[idx].id);
  }
  int position = 0;
  for (int id : path)
    if (auto it = view_of.find(id); it != view_of.end() && steps[it->second].critical_position < 0)
      steps[it->second].critical_position = position++;
}

// ---- the page's parts ---------------------------------------------------------------------------

constexpr int k_node_w = 150, k_node_h = 34, k_col_gap = 60, k_row_gap = 12, k_graph_top = 26;

std::string render_graph(const std::vector<StepView>& steps, const ReportOptions& options) {
  if (steps.empty()) return "<p class=\"note\">The result has no steps.</p>";
  if (steps.size() > options.max_drawn_steps)
    return "<p class=\"note\">" + std::to_string(steps.size()) + " steps: too many to draw (the limit is " +
           std::to_string(options.max_drawn_steps) + "); see the steps below.</p>";
  // One column per level that holds a step: a level number from the file cannot widen the page.
  std::vector<int> used;
  for (const auto& s : steps) used.push_back(s.level);
  std::sort(used.begin(), used.end());
  used.erase(std::unique(used.begin(), used.end()), used.end());
  const int levels = static_cast<int>(used.size());
  std::vector<int> rows(used.size(), 0);
  std::vector<std::pair<int, int>> at(steps.size());  // x, y of each node's top-left corner
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const auto col = static_cast<int>(std::lower_bound(used.begin(), used.end(), steps[i].level) - used.begin());
    at[i] = {8 + col * (k_node_w + k_col_gap), k_graph_top + rows[static_cast<std::size_t>(col)]++ * (k_node_h + k_row_gap)};
  }
  const int width = 16 + levels * (k_node_w + k_col_gap) - k_col_gap;
  const int height = k_graph_top + *std::max_element(rows.begin(), rows.end()) * (k_node_h + k_row_gap) + 4;
  std::string svg = "<svg id=\"graph-svg\" width=\"" + std::to_string(width) +
                    "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " + std::to_string(width) + " " +
                    std::to_string(height) + "\" role=\"img\" aria-label=\"plan graph\">";
  svg += "<defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"8\" markerHeight=\"8\" "
         "markerUnits=\"userSpaceOnUse\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#8a94a6\"/></marker><marker id=\"arrow-crit\" "
         "viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"9\" markerHeight=\"9\" markerUnits=\"userSpaceOnUse\" "
         "orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#d9480f\"/></marker></defs>";
  for (int l = 0; l < levels; ++l)
    svg += "<text class=\"level-label\" x=\"" + std::to_string(8 + l * (k_node_w + k_col_gap)) +
           "\" y=\"16\">level " + std::to_string(used[static_cast<std::size_t>(l)]) + "</text>";
  for (std::size_t i = 0; i < steps.size(); ++i) {
    for (auto d : steps[i].deps) {
      const bool crit = steps[i].critical_position >= 0 && steps[d].critical_position >= 0 &&
                        steps[i].critical_position == steps[d].critical_position + 1;
      const int x1 = at[d].first + k_node_w, y1 = at[d].second + k_node_h / 2;
      const int x2 = at[i].first, y2 = at[i].second + k_node_h / 2;
      const int bend = std::max(30, std::abs(x2 - x1) / 2);
      svg += std::string("<path class=\"edge") + (crit ? " critical" : "") + "\" d=\"M" + std::to_string(x1) + "," +
             std::to_string(y1) + " C" + std::to_string(x1 + bend) + "," + std::to_string(y1) + " " +
             std::to_string(x2 - bend) + "," + std::to_string(y2) + " " + std::to_string(x2) + "," +
             std::to_string(y2) + "\" marker-end=\"url(#" + (crit ? "arrow-crit" : "arrow") + ")\"/>";
    }
  }
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const auto& s = steps[i];
    const auto idx = std::to_string(i);
    const std::string label = "#" + std::to_string(s.id) + " " + s.action;
    const auto cut = text::utf8_cut(label, 22);
    svg += "<g class=\"node " + status_class(s.status) + (s.critical_position >= 0 ? " critical" : "") +
           "\" data-id=\"" + std::to_string(s.id) + "\" data-step=\"" + idx + "\" data-target=\"step-" + idx + "\"" +
           (s.critical_position >= 0 ? " data-cp=\"" + std::to_string(s.critical_position) + "\"" : "") +
           " transform=\"translate(" + std::to_string(at[i].first) + "," + std::to_string(at[i].second) + ")\">";
    svg += "<title>" + esc(label + " — " + s.status + (s.critical_position >= 0 ? " (critical path)" : "")) + "</title>";
    svg += "<rect width=\"" + std::to_string(k_node_w) + "\" height=\"" + std::to_string(k_node_h) + "\" rx=\"6\"/>";
    svg += "<text x=\"10\" y=\"21\">" + esc(label.substr(0, cut)) + (cut < label.size() ? "…" : "") + "</text>";
    if (s.verification != "not_requested")
      svg += "<circle class=\"verdict " + verdict_class(s.verification) + "\" cx=\"" + std::to_string(k_node_w - 10) +
             "\" cy=\"10\" r=\"4\"/>";
    svg += "</g>";
  }
  return svg + "</svg>";
}

// Rows for bars that carry no slot (results written before slots were kept): each bar in the
// first row free at its start.
void assign_rows(std::vector<Bar>& bars) {
  std::vector<std::size_t> order(bars.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return bars[a].start < bars[b].start; });
  std::vector<double> free_at;
  for (auto i : order) {
    std::size_t row = 0;
    while (row < free_at.size() && free_at[row] > bars[i].start) ++row;
    if (row == free_at.size()) free_at.push_back(0);
    free_at[row] = bars[i].end;
    bars[i].slot = static_cast<int>(row);
  }
}

double nice_tick(double span) {
  const double raw = span / 8;
  const double base = std::pow(10.0, std::floor(std::log10(std::max(raw, 1e-3))));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (base * m >= raw) return base * m;
  return base * 10;
}

constexpr int k_gantt_label = 90, k_gantt_plot = 1000, k_lane_h = 26, k_gantt_top = 22;

std::string render_gantt(const std::vector<StepView>& steps, std::optional<double> planning_ms,
                         std::optional<double> wall_ms, const ReportOptions& options) {
  std::vector<Bar> bars;
  bool all_slotted = true;
  std::size_t not_run = 0;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const auto& s = steps[i];
    bool item_bars = false;
    for (std::size_t k = 0; k < s.items.size(); ++k) {
      const auto& it = s.items[k];
      if (!it.started || !it.finished || it.attempts == 0) continue;
      item_bars = true;
      bars.push_back({i, it.index, *it.started, std::max(*it.started, *it.finished), it.slot, it.status, it.attempts});
      if (it.slot < 0) all_slotted = false;
    }
    if (item_bars) continue;
    if (!ran(s) || !s.started || !s.finished) {
      ++not_run;
      continue;
    }
    bars.push_back({i, -1, *s.started, std::max(*s.started, *s.finished), s.slot.value_or(-1), s.status,
                    std::max(1, s.attempts)});
    if (!s.slot) all_slotted = false;
  }
  std::string note;
  if (bars.size() > options.max_drawn_steps) {
    note = "<p class=\"note\">Only the first " + std::to_string(options.max_drawn_steps) + " of " +
           std::to_string(bars.size()) + " bars are drawn.</p>";
    std::stable_sort(bars.begin(), bars.end(), [](const Bar& a, const Bar& b) { return a.start < b.start; });
    bars.resize(options.max_drawn_steps);
  }
  if (!all_slotted) {
    assign_rows(bars);
  } else {
    // Slots as given, numbered densely: an absurd slot number must not make thousands of empty rows.
    std::vector<int> used;
    for (const auto& b : bars) used.push_back(b.slot);
    std::sort(used.begin(), used.end());
    used.erase(std::unique(used.begin(), used.end()), used.end());
    for (auto& b : bars) b.slot = static_cast<int>(std::lower_bound(used.begin(), used.end(), b.slot) - used.begin());
  }
  int lanes = 0;
  for (const auto& b : bars) lanes = std::max(lanes, b.slot + 1);
  const bool planning_row = planning_ms && *planning_ms > 0;
  double end = std::max({1.0, wall_ms.value_or(0), planning_ms.value_or(0)});
  for (const auto& b : bars) end = std::max(end, b.end);
  const auto x_of = [&](double ms) { return k_gantt_label + ms / end * k_gantt_plot; };
  const int rows = lanes + (planning_row ? 1 : 0);
  const int height = k_gantt_top + std::max(rows, 1) * k_lane_h + 8;
  const int width = k_gantt_label + k_gantt_plot + 180;  // room for a label after the last bar
  std::string svg = "<svg id=\"gantt-svg\" width=\"" + std::to_string(width) +
                    "\" height=\"" + std::to_string(height) + "\" viewBox=\"0 0 " + std::to_string(width) + " " +
                    std::to_string(height) + "\" role=\"img\" aria-label=\"Gantt chart\">";
  const double tick = nice_tick(end);
  for (int k = 0; k * tick <= end * 1.0001 && k < 64; ++k) {
    const double t = k * tick;
    const auto x = format("%.1f", x_of(t));
    svg += "<line class=\"tick\" x1=\"" + x + "\" y1=\"" + std::to_string(k_gantt_top - 4) + "\" x2=\"" + x +
           "\" y2=\"" + std::to_string(height - 6) + "\"/><text class=\"tick-label\" x=\"" + x + "\" y=\"12\">" +
           fmt_ms(t) + "</text>";
  }
  int row = 0;
  const auto lane_y = [&](int r) { return k_gantt_top + r * k_lane_h; };
  if (planning_row) {
    svg += "<text class=\"lane-label\" x=\"4\" y=\"" + std::to_string(lane_y(row) + 17) + "\">planning</text>";
    svg += "<rect class=\"bar planning\" x=\"" + format("%.1f", x_of(0)) + "\" y=\"" + std::to_string(lane_y(row) + 4) +
           "\" width=\"" + format("%.1f", std::max(2.0, x_of(*planning_ms) - x_of(0))) + "\" height=\"" +
           std::to_string(k_lane_h - 8) + "\"><title>planning " + fmt_ms(*planning_ms) + "</title></rect>";
    ++row;
  }
  for (int lane = 0; lane < lanes; ++lane)
    svg += "<text class=\"lane-label\" x=\"4\" y=\"" + std::to_string(lane_y(row + lane) + 17) + "\">slot " +
           std::to_string(lane) + "</text>";
  // Each lane's bars as pixel spans, to put a note beside a bar where no other bar is.
  struct Span {
    const Bar* bar;
    double x0, x1;
  };
  std::vector<std::vector<Span>> spans(static_cast<std::size_t>(lanes));
  for (const auto& b : bars)
    spans[static_cast<std::size_t>(b.slot)].push_back({&b, x_of(b.start), x_of(b.start) + std::max(2.0, x_of(b.end) - x_of(b.start))});
  std::string notes;  // drawn after every bar, so no later bar covers them
  for (const auto& b : bars) {
    const auto& s = steps[b.step];
    const int y = lane_y(row + b.slot) + 4;
    const double x = x_of(b.start);
    const double w = std::max(2.0, x_of(b.end) - x);
    const auto idx = std::to_string(b.step);
    std::string name = "#" + std::to_string(s.id) + (b.item >= 0 ? "[" + std::to_string(b.item) + "]" : "") + " " + s.action;
    std::string tip = name + " — " + b.status + ", " + fmt_ms(b.start) + " to " + fmt_ms(b.end) + " (" +
                      fmt_ms(b.end - b.start) + ")";
    if (b.attempts > 1) tip += ", " + std::to_string(b.attempts) + " attempts";
    if (b.item < 0 && s.verification != "not_requested") tip += ", verification " + s.verification;
    svg += "<g class=\"bar-group\" data-step=\"" + idx + "\" data-target=\"step-" + idx + "\"><title>" + esc(tip) +
           "</title><rect class=\"bar " + status_class(b.status) + (b.attempts > 1 ? " retried" : "") + "\" x=\"" +
           format("%.1f", x) + "\" y=\"" + std::to_string(y) + "\" width=\"" + format("%.1f", w) + "\" height=\"" +
           std::to_string(k_lane_h - 8) + "\" rx=\"3\"/>";
    // A label inside a bar wide enough for it, else after the bar (with the retry mark).
    const std::string retry =
        b.attempts > 1 ? "<tspan class=\"retry-mark\">↻" + std::to_string(b.attempts) + "</tspan>" : "";
    const bool inside = w > 60;
    if (inside) {
      const auto cut = text::utf8_cut(name, static_cast<std::size_t>(w / 7));
      svg += "<text class=\"bar-label\" x=\"" + format("%.1f", x + 4) + "\" y=\"" + std::to_string(y + 13) + "\">" +
             esc(name.substr(0, cut)) + "</text>";
    }
    if (!inside || !retry.empty()) {
      const auto cut = text::utf8_cut(name, 24);
      const double need = 7.0 * static_cast<double>(inside ? 2 : cut + 3) + 12;
      double right = width, left = k_gantt_label;  // the free room after and before the bar
      for (const auto& other : spans[static_cast<std::size_t>(b.slot)]) {
        if (other.bar == &b) continue;
        if (other.x0 >= x) right = std::min(right, other.x0);
        else left = std::max(left, other.x1);
      }
      const bool before = right - (x + w) < need && x - left >= need;
      notes += "<text class=\"bar-note\" x=\"" + format("%.1f", before ? x - 8 : x + w + 8) + "\" y=\"" +
               std::to_string(y + 13) + "\"" + (before ? " text-anchor=\"end\"" : "") + ">" +
               (inside ? "" : esc(name.substr(0, cut)) + " ") + retry + "</text>";
    }
    if (b.item < 0 && !verdict_class(s.verification).empty()) {
      const double cx = x + w, cy = y + (k_lane_h - 8) / 2.0;
      svg += "<path class=\"verdict " + verdict_class(s.verification) + "\" d=\"M" + format("%.1f", cx) + "," +
             format("%.1f", cy - 6) + " l6,6 l-6,6 l-6,-6 z\"/>";
    }
    svg += "</g>";
  }
  svg += notes + "</svg>";
  std::string legend =
      "<p class=\"legend\"><span class=\"swatch succeeded\"></span>succeeded <span class=\"swatch failed\"></span>failed "
      "<span class=\"swatch other\"></span>other <span class=\"mark retried\">↻N</span> retried (N attempts) "
      "<span class=\"diamond passed\"></span>verified <span class=\"diamond failed\"></span>verification failed "
      "<span class=\"diamond error\"></span>no verdict <span class=\"diamond pending\"></span>verdict pending";
  if (not_run) legend += " · " + std::to_string(not_run) + " step" + (not_run == 1 ? "" : "s") + " did not run";
  return svg + note + legend + "</p>";
}

std::string render_totals(const json::object& result, const std::vector<StepView>& steps) {
  const json::object* metrics = nullptr;
  if (const auto* m = field(&result, "metrics"); m && m->is_object()) metrics = &m->get_object();
  auto metric = [&](std::string_view key) { return number_of(field(metrics, key)); };
  std::string out = "<div class=\"tiles\">";
  auto tile = [&](std::string_view label, const std::string& value) {
    out += "<div class=\"tile\"><div class=\"value\">" + value + "</div><div class=\"label\">" + std::string(label) +
           "</div></div>";
  };
  auto or_dash = [](std::optional<double> v, auto f) { return v ? f(*v) : std::string("–"); };
  tile("wall time", or_dash(metric("wall_ms"), fmt_ms));
  tile("planning", or_dash(metric("planning_ms"), fmt_ms));
  const auto prompt = metric("prompt_tokens"), completion = metric("completion_tokens");
  tile("tokens (prompt + completion)",
       prompt || completion ? fmt_count(prompt.value_or(0) + completion.value_or(0)) + " <small>(" +
                                  fmt_count(prompt.value_or(0)) + " + " + fmt_count(completion.value_or(0)) + ")</small>"
                            : "–");
  tile("LLM calls", or_dash(metric("llm_calls"), fmt_count));
  std::size_t ok = 0, failed = 0, attempts = 0;
  for (const auto& s : steps) {
    ok += s.status == "succeeded";
    failed += s.status == "failed";
    attempts += static_cast<std::size_t>(s.attempts);
  }
  tile("steps", std::to_string(steps.size()) + " <small>(" + std::to_string(ok) + " ok, " + std::to_string(failed) +
                    " failed)</small>");
  tile("retries", or_dash(metric("retries"), fmt_count));
  tile("cache hits", or_dash(metric("cache_hits"), fmt_count));
  tile("max concurrent steps", or_dash(metric("max_concurrent_steps"), fmt_count));
  out += "</div>";
  if (metrics) {
    out += "<details class=\"metrics\"><summary>all metrics</summary><table>";
    for (const auto& kv : *metrics)
      out += "<tr><th>" + esc(kv.key()) + "</th><td>" + capped(text_of(&kv.value()), 200) + "</td></tr>";
    out += "<tr><th>step attempts</th><td>" + std::to_string(attempts) + "</td></tr></table></details>";
  }
  return out;
}

std::string render_step(const StepView& s, std::size_t index, const std::vector<StepView>& steps, TextBudget& budget) {
  const auto idx = std::to_string(index);
  std::string out = "<section class=\"step " + status_class(s.status) + (s.critical_position >= 0 ? " critical" : "") +
                    "\" id=\"step-" + idx + "\" data-id=\"" + std::to_string(s.id) + "\"" +
                    (s.critical_position >= 0 ? " data-cp=\"" + std::to_string(s.critical_position) + "\"" : "") +
                    "><details><summary><span class=\"sid\">#" + std::to_string(s.id) + "</span> <span class=\"action\">" +
                    esc(text::excerpt(s.action, 200)) + "</span> <span class=\"badge " + status_class(s.status) + "\">" +
                    esc(text::excerpt(s.status, 40)) + "</span>";
  if (s.attempts > 1) out += " <span class=\"badge retried\">" + std::to_string(s.attempts) + " attempts</span>";
  if (s.verification != "not_requested")
    out += " <span class=\"badge verdict-" + verdict_class(s.verification) + "\">verification " +
           esc(text::excerpt(s.verification, 40)) + "</span>";
  if (s.critical_position >= 0) out += " <span class=\"badge crit\">critical path</span>";
  if (s.started && s.finished && (ran(s) || !s.items.empty()))
    out += " <span class=\"time\">" + fmt_ms(*s.started) + " → " + fmt_ms(*s.finished) + " (" +
           fmt_ms(std::max(0.0, *s.finished - *s.started)) + ")</span>";
  out += "</summary><dl>";
  out += "<dt>level</dt><dd>" + std::to_string(s.level) + "</dd>";
  if (!s.deps.empty()) {
    out += "<dt>depends on</dt><dd>";
    for (auto d : s.deps)
      out += "<a href=\"#step-" + std::to_string(d) + "\" data-target=\"step-" + std::to_string(d) + "\">#" +
             std::to_string(steps[d].id) + "</a> ";
    out += "</dd>";
  }
  if (s.plan_step) {
    out += "<dt>parameters</dt><dd><pre>" + budget.take_json(json::value(s.plan_step->parameters)) + "</pre></dd>";
    if (s.plan_step->for_each)
      out += "<dt>for each</dt><dd><pre>" + budget.take_json(*s.plan_step->for_each) + "</pre></dd>";
    if (s.plan_step->verify)
      out += "<dt>verify</dt><dd><pre>" + budget.take_json(*s.plan_step->verify) + "</pre>" +
             (s.plan_step->critical ? " <span class=\"badge\">critical: dependents wait for the verdict</span>" : "") +
             "</dd>";
  }
  if (s.output && !s.output->is_null()) out += "<dt>output</dt><dd><pre>" + budget.take_json(*s.output) + "</pre></dd>";
  if (!s.error.empty()) out += "<dt>error</dt><dd><pre class=\"error\">" + budget.take(s.error) + "</pre></dd>";
  if (!s.verification_reason.empty())
    out += "<dt>verification</dt><dd><pre>" + budget.take(s.verification_reason) + "</pre></dd>";
  if (const auto* approval = field(s.raw, "approval"); approval && approval->is_object())
    out += "<dt>approval</dt><dd>" + esc(text::excerpt(text_of(field(&approval->get_object(), "decision")), 40)) +
           " (" + esc(text::excerpt(text_of(field(&approval->get_object(), "by")), 40)) + ")</dd>";
  if (!s.items.empty()) {
    constexpr std::size_t k_max_rows = 200;
    out += "<dt>items</dt><dd><table class=\"items\"><tr><th>#</th><th>status</th><th>attempts</th><th>time</th>"
           "<th>error</th></tr>";
    for (std::size_t k = 0; k < s.items.size() && k < k_max_rows; ++k) {
      const auto& it = s.items[k];
      const auto took = it.started && it.finished ? std::optional<double>(std::max(0.0, *it.finished - *it.started))
                                                  : it.duration;
      out += "<tr><td>" + std::to_string(it.index) + "</td><td class=\"" + status_class(it.status) + "\">" +
             esc(text::excerpt(it.status, 40)) + "</td><td>" + std::to_string(it.attempts) + "</td><td>" +
             (took ? fmt_ms(*took) : "–") + "</td><td>" + budget.take(text::excerpt(it.error, 2000)) + "</td></tr>";
    }
    out += "</table>";
    if (s.items.size() > k_max_rows)
      out += "<span class=\"more\">… " + std::to_string(s.items.size() - k_max_rows) + " items more</span>";
    out += "</dd>";
  }
  return out + "</dl></details></section>";
}

// ---- the page's fixed parts -----------------------------------------------------------------------

// Counts script errors from the start, so the browser test sees any the page's own script raises.
constexpr std::string_view k_head_script =
    "window.__dagentErrors=0;window.__dagentViolations=0;"
    "function __dagentMark(){var b=document.body;if(b){b.setAttribute('data-errors',String(window.__dagentErrors));"
    "b.setAttribute('data-violations',String(window.__dagentViolations));}}"
    "window.addEventListener('error',function(){window.__dagentErrors++;__dagentMark();});"
    "document.addEventListener('securitypolicyviolation',function(){window.__dagentViolations++;__dagentMark();});";

// Opens a step's details from the graph or the chart, highlights one step everywhere on hover,
// and marks <body> with what was rendered.
constexpr std::string_view k_body_script = R"JS((function(){
var b=document.body;
function go(id){var s=document.getElementById(id);if(!s)return;var d=s.querySelector('details');if(d)d.open=true;s.scrollIntoView({block:'start'});}
document.querySelectorAll('[data-target]').forEach(function(el){el.addEventListener('click',function(e){e.preventDefault();go(el.getAttribute('data-target'));});});
document.querySelectorAll('[data-step]').forEach(function(el){
el.addEventListener('mouseenter',function(){document.querySelectorAll('[data-step="'+el.getAttribute('data-step')+'"]').forEach(function(x){x.classList.add('hl');});});
el.addEventListener('mouseleave',function(){document.querySelectorAll('.hl').forEach(function(x){x.classList.remove('hl');});});});
function all(open){document.querySelectorAll('section.step details').forEach(function(d){d.open=open;});}
var ex=document.getElementById('expand-all'),co=document.getElementById('collapse-all');
if(ex)ex.addEventListener('click',function(){all(true);});
if(co)co.addEventListener('click',function(){all(false);});
var crit=[].slice.call(document.querySelectorAll('section.step.critical')).sort(function(x,y){return Number(x.getAttribute('data-cp'))-Number(y.getAttribute('data-cp'));}).map(function(s){return s.getAttribute('data-id');});
b.setAttribute('data-steps',String(document.querySelectorAll('section.step').length));
b.setAttribute('data-critical',crit.join(','));
__dagentMark();
b.setAttribute('data-rendered','1');
})();)JS";

constexpr std::string_view k_style = R"CSS(
:root{--ok:#2f9e5b;--bad:#d64545;--skip:#9aa0a6;--wait:#e0a800;--other:#7b61ff;--crit:#d9480f;--ink:#1d2330;--mute:#667085;--line:#e3e6ec}
*{box-sizing:border-box}
body{margin:0;padding:20px 28px 60px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:#f7f8fa}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 10px}
.sub{color:var(--mute);font-size:13px}.sub code{font-size:12px}
.goal{margin:8px 0 0;white-space:pre-wrap;max-height:120px;overflow:auto}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 16px;overflow-x:auto}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;background:#eef0f4;color:var(--ink)}
.badge.succeeded{background:#e3f4ea;color:#1e6b3d}.badge.failed{background:#fbe4e4;color:#9b2c2c}
.badge.skipped{background:#eef0f2;color:#555}.badge.retried{background:#fff1d6;color:#8a5a00}
.badge.crit{background:#ffe8dc;color:var(--crit)}.badge.verdict-passed{background:#e3f4ea;color:#1e6b3d}
.badge.verdict-failed{background:#fbe4e4;color:#9b2c2c}.badge.verdict-error{background:#fff1d6;color:#8a5a00}
.run-error{background:#fbe4e4;border:1px solid #f1b5b5;color:#7d1f1f;border-radius:6px;padding:8px 12px;white-space:pre-wrap;margin:10px 0}
.tiles{display:flex;flex-wrap:wrap;gap:10px}
.tile{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:140px}
.tile .value{font-size:18px;font-weight:600}.tile .label{color:var(--mute);font-size:12px}.tile small{font-weight:400;color:var(--mute)}
.metrics{margin-top:8px}.metrics table{border-collapse:collapse;font-size:12px}.metrics th{text-align:left;font-weight:500;padding:2px 16px 2px 0;color:var(--mute)}
pre{margin:0;white-space:pre-wrap;word-break:break-word;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f3f4f7;border-radius:4px;padding:6px 8px;max-height:420px;overflow:auto}
pre.answer{font:14px/1.5 system-ui,sans-serif;background:#fff;max-height:260px}
pre.error{background:#fdf0f0}
.more{color:var(--mute);font-style:italic}
.note{color:var(--mute)}
svg text{font:12px system-ui,sans-serif}
.level-label,.tick-label,.lane-label{fill:var(--mute);font-size:11px}
.node{cursor:pointer}.node rect{fill:#fff;stroke:#b8bfcc;stroke-width:1.2}
.node.succeeded rect{fill:#e9f6ee;stroke:var(--ok)}.node.failed rect{fill:#fcebeb;stroke:var(--bad)}
.node.skipped rect{fill:#f1f2f4;stroke:var(--skip);stroke-dasharray:4 3}.node.other rect,.node.pending rect,.node.running rect{fill:#fff8e1;stroke:var(--wait)}
.node.critical rect{stroke:var(--crit);stroke-width:3}.node text{fill:var(--ink)}
.node.hl rect,.bar-group.hl rect{filter:drop-shadow(0 0 4px #3b82f6)}
.edge{fill:none;stroke:#9aa3b2;stroke-width:1.4}.edge.critical{stroke:var(--crit);stroke-width:2.6}
.tick{stroke:#eceef2}
.bar-group{cursor:pointer}.bar{fill:var(--other)}.bar.succeeded{fill:var(--ok)}.bar.failed{fill:var(--bad)}.bar.skipped{fill:var(--skip)}
.bar.running,.bar.pending{fill:var(--wait)}.bar.planning{fill:#9db4d9}.bar.retried{stroke:#b7791f;stroke-width:2;stroke-dasharray:3 2}
.bar-label{fill:#fff;font-size:11px;pointer-events:none}.bar-note{fill:var(--ink);font-size:11px;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}.retry-mark{fill:#b7791f;font-size:12px;font-weight:600}
.verdict{stroke:#fff;stroke-width:1}.verdict.passed{fill:#137333}.verdict.failed{fill:#c5221f}.verdict.error{fill:#e37400}.verdict.pending{fill:#9aa0a6}
.legend{color:var(--mute);font-size:12px;margin:8px 0 0}
.swatch{display:inline-block;width:12px;height:10px;border-radius:2px;margin:0 4px 0 8px;vertical-align:-1px}
.swatch.succeeded{background:var(--ok)}.swatch.failed{background:var(--bad)}.swatch.other{background:var(--other)}
.mark.retried{color:#b7791f;font-weight:600;margin-left:8px}
.diamond{display:inline-block;width:9px;height:9px;transform:rotate(45deg);margin:0 5px 0 10px}
.diamond.passed{background:#137333}.diamond.failed{background:#c5221f}.diamond.error{background:#e37400}.diamond.pending{background:#9aa0a6}
section.step{background:#fff;border:1px solid var(--line);border-left:4px solid var(--other);border-radius:6px;margin:6px 0}
section.step.succeeded{border-left-color:var(--ok)}section.step.failed{border-left-color:var(--bad)}section.step.skipped{border-left-color:var(--skip)}
section.step.critical{box-shadow:inset 0 0 0 1px #f4c7b0}
summary{cursor:pointer;padding:8px 12px}.sid{font-weight:600}.action{font-family:ui-monospace,monospace}.time{color:var(--mute);font-size:12px;margin-left:6px}
dl{margin:0;padding:4px 14px 12px;display:grid;grid-template-columns:110px 1fr;gap:6px 12px}dt{color:var(--mute)}dd{margin:0;min-width:0}
table.items{border-collapse:collapse;font-size:12px}table.items td,table.items th{border-bottom:1px solid var(--line);padding:2px 10px 2px 0;text-align:left}
button{font:inherit;font-size:12px;border:1px solid var(--line);background:#fff;border-radius:5px;padding:2px 10px;cursor:pointer}
)CSS";

std::string sha256_base64(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 is not available");
  unsigned char out[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(out, digest, static_cast<int>(size));
  return std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
}

// Only the page's own two scripts may run (by hash): markup that slipped through escaping could
// run nothing, load nothing and send nothing.
const std::string& content_security_policy() {
  static const std::string policy = "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-" +
                                    sha256_base64(k_head_script) + "' 'sha256-" + sha256_base64(k_body_script) +
                                    "'; img-src data:; base-uri 'none'; form-action 'none'";
  return policy;
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

boost::system::result<std::string, std::string> render_report(const boost::json::object& result,
                                                              const ReportOptions& options) {
  const auto* steps_value = field(&result, "steps");
  if (!steps_value || !steps_value->is_array())
    return {boost::system::in_place_error, "not a dagent run result: it has no \"steps\" list"};
  auto steps = read_steps(steps_value->get_array());
  executor::Plan plan;
  if (const auto* p = field(&result, "plan"); p && (p->is_array() || p->is_object()))
    plan = executor::parse_plan(*p).plan;
  link_plan(result, plan, steps);

  const json::object* metrics = nullptr;
  if (const auto* m = field(&result, "metrics"); m && m->is_object()) metrics = &m->get_object();
  const std::string run_id = text::excerpt(text_of(field(&result, "run_id")), 200);
  const std::string task = text::excerpt(text_of(field(&result, "task")), 500);
  const std::string status = text::excerpt(text_of(field(&result, "status")), 40);

  std::string page = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<meta http-equiv=\"Content-Security-Policy\" content=\"" +
                     content_security_policy() +
                     "\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                     "<meta name=\"referrer\" content=\"no-referrer\"><title>dagent run " +
                     esc(run_id) + (task.empty() ? "" : " · " + esc(task)) + "</title><script>" +
                     std::string(k_head_script) + "</script><style>" + std::string(k_style) + "</style></head>\n<body>";
  page += "<h1>dagent run <code>" + esc(run_id.empty() ? "(no id)" : run_id) + "</code> <span class=\"badge " +
          status_class(status) + "\">" + esc(status.empty() ? "unknown" : status) + "</span></h1>";
  page += "<div class=\"sub\">task <b>" + esc(task.empty() ? "(unnamed)" : task) + "</b>";
  if (const auto* planning = field(&result, "planning"); planning && planning->is_object()) {
    const auto& po = planning->get_object();
    if (auto intent = text_of(field(&po, "intent")); !intent.empty())
      page += " · intent " + esc(text::excerpt(intent, 300));
    page += " · planned in " + std::to_string(std::max(0, int_of(field(&po, "attempts"), 0))) + " call(s), " +
            std::to_string(std::max(0, int_of(field(&po, "replans"), 0))) + " replan(s)";
  } else {
    page += " · fixed plan";
  }
  page += "</div>";
  if (!options.goal.empty()) page += "<div class=\"goal\">" + capped(options.goal, options.max_field_bytes) + "</div>";
  if (auto error = text_of(field(&result, "error")); !error.empty())
    page += "<div class=\"run-error\">" + capped(error, options.max_field_bytes) + "</div>";

  page += "<h2>Totals</h2>" + render_totals(result, steps);
  if (const auto* answer = field(&result, "answer"); answer && !answer->is_null())
    page += "<h2>Answer</h2><div class=\"card\"><pre class=\"answer\">" +
            capped(answer->is_string() ? std::string(answer->get_string()) : shown(*answer), options.max_field_bytes) +
            "</pre></div>";
  page += "<h2>Plan</h2><div class=\"card\" id=\"graph\">" + render_graph(steps, options) +
          "<p class=\"legend\">Columns are levels; an arrow runs from a step to one that depends on it; "
          "<span class=\"crit-text\">thick orange</span>: the critical path (the longest dependency chain).</p></div>";
  page += "<h2>Timeline</h2><div class=\"card\" id=\"gantt\">" +
          render_gantt(steps, ms_of(field(metrics, "planning_ms")), ms_of(field(metrics, "wall_ms")), options) +
          "</div>";
  page += "<h2>Steps <button id=\"expand-all\" type=\"button\">expand all</button> <button id=\"collapse-all\" "
          "type=\"button\">collapse all</button></h2><div id=\"steps\">";
  TextBudget budget(options);
  for (std::size_t i = 0; i < steps.size() && i < options.max_listed_steps; ++i)
    page += render_step(steps[i], i, steps, budget);
  if (steps.size() > options.max_listed_steps)
    page += "<p class=\"note\">… " + std::to_string(steps.size() - options.max_listed_steps) +
            " steps more, not listed (the report lists " + std::to_string(options.max_listed_steps) + ").</p>";
  page += "</div><script>" + std::string(k_body_script) + "</script></body></html>\n";
  return {boost::system::in_place_value, std::move(page)};
}

}  // namespace dagent::report
