#include "planner/planner.hpp"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include "dagent/tool.hpp"
#include "executor/analysis.hpp"
#include "executor/plan.hpp"
#include "net/net_error.hpp"
#include "planner/json_extract.hpp"
#include "planner/results_digest.hpp"
#include "planner/step_stream.hpp"
#include "planner/untrusted.hpp"
#include "tools/registry.hpp"

namespace dagent::planner {

namespace asio = boost::asio;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::int64_t k_intent_max_tokens = 300;
constexpr std::string_view k_replan_marker = "REPLAN:";

std::vector<KeywordRoute> keyword_routes(const std::vector<config::Route>& routes) {
  std::vector<KeywordRoute> out;
  for (const auto& r : routes) out.push_back({r.name, r.keywords});
  return out;
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

json::object intent_schema() {
  return json::object{{"type", "object"},
                      {"properties", json::object{{"intent", json::object{{"type", "string"}}},
                                                  {"tools", json::object{{"type", "array"},
                                                                         {"items", json::object{{"type", "string"}}}}}}},
                      {"required", json::array{"intent", "tools"}},
                      {"additionalProperties", false}};
}

// Not strict: a step's parameters are a free-form object, which strict mode cannot express.
// `with_intent`: the folded intent analysis, an "intent" string beside the steps.
json::object plan_schema(const std::vector<std::string>& tool_names, bool with_intent) {
  json::array names(tool_names.begin(), tool_names.end());
  json::object step{
      {"type", "object"},
      {"properties", json::object{{"id", json::object{{"type", "integer"}}},
                                  {"action", json::object{{"type", "string"}, {"enum", std::move(names)}}},
                                  {"parameters", json::object{{"type", "object"}}},
                                  {"dependencies", json::object{{"type", "array"}, {"items", json::object{{"type", "integer"}}}}},
                                  {"verify", json::object{}},
                                  {"critical", json::object{{"type", "boolean"}}},
                                  // a reference string ("$step2.entries") or an inline list
                                  {"for_each", json::object{{"type", json::array{"string", "array"}}}}}},
      {"required", json::array{"id", "action", "parameters"}}};
  json::object properties{{"steps", json::object{{"type", "array"}, {"items", std::move(step)}}}};
  json::array required{"steps"};
  if (with_intent) {  // first, so the model states the intent before it plans
    json::object first{{"intent", json::object{{"type", "string"}}}};
    for (auto& [key, value] : properties) first.emplace(key, std::move(value));
    properties = std::move(first);
    required = json::array{"intent", "steps"};
  }
  return json::object{{"type", "object"}, {"properties", std::move(properties)}, {"required", std::move(required)}};
}

// The tool of the first step in `steps` that `allowed` (non-empty) does not name; empty: none.
// A step whose action is not a string is left to validation.
std::string first_outside(const json::array& steps, const std::vector<std::string>& allowed) {
  if (allowed.empty()) return {};
  for (const auto& step : steps) {
    const auto* obj = step.if_object();
    const auto* action = obj ? obj->if_contains("action") : nullptr;
    if (!action || !action->is_string()) continue;
    if (std::find(allowed.begin(), allowed.end(), action->get_string()) == allowed.end())
      return std::string(action->get_string());
  }
  return {};
}

std::string describe(const net::LlmError& e) {
  std::string out = "the planning call failed: " + e.message;
  if (e.status && e.code != net::NetErrc::provider_refused) out += " (HTTP " + std::to_string(e.status) + ")";  // a refusal names it
  return out;
}

net::LlmError timed_out(std::string message) {
  return net::LlmError{net::make_error_code(net::NetErrc::request_timeout), std::move(message)};
}

// A failure that is ours, not the model's (a template that cannot be read): reported to the user,
// never shown to the model in a repair prompt.
net::LlmError internal_error(std::string message) { return net::LlmError{{}, std::move(message)}; }

// A template that cannot be read fails the planning; its message (a local path) stays ours.
PlanDraft template_failure(std::string message) {
  PlanDraft failed;
  failed.problems.push_back(message);
  failed.error = internal_error(std::move(message));
  return failed;
}

std::string timeout_text(std::string_view what, std::int64_t ms) {
  return std::string(what) + " timed out after " + std::to_string(ms) + " ms";
}

Clock::time_point after(std::int64_t ms) { return Clock::now() + std::chrono::milliseconds(ms); }

// Races `call` against `deadline`: on expiry the call is cancelled (and awaited) and the result is
// a request_timeout error carrying `timeout_message`. A call is never started past its deadline.
asio::awaitable<net::LlmResult<net::ChatResponse>> within(asio::awaitable<net::LlmResult<net::ChatResponse>> call,
                                                          Clock::time_point deadline, std::string timeout_message) {
  using namespace asio::experimental::awaitable_operators;
  if (Clock::now() >= deadline) co_return timed_out(std::move(timeout_message));
  asio::steady_timer timer(co_await asio::this_coro::executor, deadline);
  auto winner = co_await (std::move(call) || timer.async_wait(asio::as_tuple(asio::use_awaitable)));
  if (winner.index() == 0) co_return std::move(std::get<0>(winner));
  if (std::get<0>(std::get<1>(winner)))  // the timer was cancelled: our caller is being cancelled
    co_return net::LlmError{net::make_error_code(net::NetErrc::cancelled), "cancelled"};
  co_return timed_out(std::move(timeout_message));
}

net::ChatRequest chat_of(const config::Config& cfg, Prompt prompt) {
  net::ChatRequest r;
  r.model = cfg.llm.model;
  if (!prompt.system.empty()) r.messages.push_back({"system", std::move(prompt.system)});
  r.messages.push_back({"user", std::move(prompt.user)});
  r.temperature = 0.0;
  return r;
}

// Streams answer text to `sink` unless it starts with the replan marker; decides once enough
// text arrived to tell.
struct AnswerStream {
  std::function<void(std::string_view)> sink;
  bool allow_replan = true;
  std::string text;
  bool decided = false;
  bool replan = false;

  void operator()(std::string_view delta) {
    text += delta;
    if (decided) {
      if (!replan && sink) sink(delta);
      return;
    }
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return;
    std::string_view head = std::string_view(text).substr(first);
    if (allow_replan && head.size() < k_replan_marker.size() && k_replan_marker.starts_with(head)) return;
    decided = true;
    replan = allow_replan && head.starts_with(k_replan_marker);
    if (!replan && sink) sink(text);
  }
};

// What `work` produced, or what it threw.
struct CaughtDraft {
  std::optional<PlanDraft> value;
  std::exception_ptr error;
};

asio::awaitable<CaughtDraft> caught(asio::awaitable<PlanDraft> work) {
  CaughtDraft out;
  try {
    out.value.emplace(co_await std::move(work));
  } catch (...) {
    out.error = std::current_exception();
  }
  co_return out;
}

}  // namespace

struct Planner::Parallel {
  PlanningContext ctx;
  std::vector<std::string> problems;
  const std::vector<CatalogEntry>* entries = nullptr;  ///< rendered once per prepare(), owned by the catalog
};

const std::vector<CatalogEntry>& Planner::entries_for(Parallel* p) {
  if (!p->entries) p->entries = &catalog_.entries(registry_);
  return *p->entries;
}

Planner::Planner(net::LlmProvider& llm, const tools::Registry& registry, const config::Config& cfg)
    : llm_(llm),
      registry_(registry),
      cfg_(cfg),
      prompts_(cfg.planner.prompts, cfg.base_dir, cfg.performance.caching.prompt_templates),
      catalog_(cfg.performance.caching.tool_catalog),
      router_(keyword_routes(cfg.planner.routes)) {}

void Planner::on_event(std::function<void(const PlanningEvent&)> callback,
                       std::chrono::steady_clock::time_point epoch) {
  on_event_ = std::move(callback);
  epoch_ = epoch;
}

void Planner::emit(PlanningPhase phase, bool finished, std::string_view detail) const {
  if (!on_event_) return;
  PlanningEvent ev;
  ev.phase = phase;
  ev.finished = finished;
  ev.at_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - epoch_).count();
  ev.detail = detail;
  on_event_(ev);
}

boost::system::result<Prompt, std::string> Planner::render_with_data(PromptKind kind, PromptVars vars) {
  auto prompt = prompts_.render(kind, vars);
  if (prompt) prompt->system = with_untrusted_rule(std::move(prompt->system));  // custom templates too
  return prompt;
}

asio::awaitable<void> Planner::analyse_intent(Parallel* p) {
  // Routed, off, or left to plan(): beside the plan call (speculative) or in it (folded).
  if (!p->ctx.intent.empty() || !cfg_.planner.intent_analysis || p->ctx.intent_timing != IntentTiming::known) co_return;
  emit(PlanningPhase::intent, false);
  // The intent call sees only names and descriptions; the planning call gets the full entries.
  const std::string summaries = ToolCatalog::summaries(entries_for(p));
  const std::pair<std::string_view, std::string_view> vars[] = {{"goal", p->ctx.goal}, {"tools", summaries}};
  auto prompt = prompts_.render(PromptKind::intent, vars);
  if (!prompt) {
    p->problems.push_back(prompt.error());
    co_return;
  }
  auto request = chat_of(cfg_, std::move(*prompt));
  request.max_tokens = k_intent_max_tokens;
  if (cfg_.llm.structured_output) {
    request.json_schema = intent_schema();
    request.schema_name = "dagent_intent";
  }
  auto reply = co_await within(llm_.chat(std::move(request)), *p->ctx.deadline,
                               timeout_text("planning", cfg_.planner.planning_timeout_ms));
  if (!reply) {  // not fatal: plan with every tool; the planning call reports a dead provider
    emit(PlanningPhase::intent, true, "intent analysis failed (" + reply.error().message + "); planning with every tool");
    co_return;
  }
  auto parsed = extract_json(reply->content);
  const json::object* obj = parsed ? parsed->if_object() : nullptr;
  if (obj) {
    if (const auto* intent = obj->if_contains("intent"); intent && intent->is_string())
      p->ctx.intent = std::string(intent->get_string());
    if (const auto* tools = obj->if_contains("tools"); tools && tools->is_array())
      for (const auto& t : tools->get_array())
        if (t.is_string() && registry_.find(t.get_string()) &&
            std::find(p->ctx.tools.begin(), p->ctx.tools.end(), t.get_string()) == p->ctx.tools.end())
          p->ctx.tools.emplace_back(t.get_string());
  }
  emit(PlanningPhase::intent, true,
       obj ? p->ctx.intent + (p->ctx.tools.empty() ? "" : " [" + join(p->ctx.tools, ", ") + "]")
           : "the intent reply was not JSON; planning with every tool");
}

asio::awaitable<void> Planner::recall_memories(Parallel* p) {
  // Speculative: plan() recalls beside the intent call, then starts the plan call.
  if (!recall_ || p->ctx.intent_timing == IntentTiming::speculative) co_return;
  emit(PlanningPhase::recall, false);
  p->ctx.memories = co_await recall_->recall(p->ctx.goal, cfg_.memory.recall_k);
  emit(PlanningPhase::recall, true, std::to_string(p->ctx.memories.size()) + " memories");
}

asio::awaitable<void> Planner::build_catalog(Parallel* p) {
  emit(PlanningPhase::catalog, false);
  const auto& entries = entries_for(p);
  emit(PlanningPhase::catalog, true, std::to_string(entries.size()) + " tools");
  co_return;
}

asio::awaitable<boost::system::result<PlanningContext, std::vector<std::string>>> Planner::prepare(
    std::string goal, json::object inputs) {
  using namespace asio::experimental::awaitable_operators;
  Parallel p;
  p.ctx.goal = std::move(goal);
  p.ctx.inputs = std::move(inputs);
  p.ctx.deadline = after(cfg_.planner.planning_timeout_ms);

  emit(PlanningPhase::routing, false);
  if (auto hit = router_.match(p.ctx.goal)) {
    const auto& route = cfg_.planner.routes[hit->route];
    std::string at = "planner.routes[" + std::to_string(hit->route) + "] (" + route.name + ")";
    for (const auto& tool : route.tools) {
      if (!registry_.find(tool) && tools::is_builtin_tool(tool))  // a route cannot reach past tools.enabled
        p.problems.push_back(at + ": \"" + tool + "\" is disabled (tools.enabled)");
      else if (!registry_.find(tool)) p.problems.push_back(at + ": unknown tool '" + tool + "'");
      else p.ctx.tools.push_back(tool);
    }
    p.ctx.route = route.name;
    p.ctx.intent = "route " + route.name + " (keywords: " + join(hit->keywords, ", ") + ")";
  }
  emit(PlanningPhase::routing, true, p.ctx.route.empty() ? "no keyword route" : p.ctx.intent);
  if (!p.problems.empty()) co_return std::move(p.problems);
  if (p.ctx.intent.empty() && cfg_.planner.intent_analysis && cfg_.planner.intent_mode != config::IntentMode::sequential) {
    p.ctx.intent_timing = cfg_.planner.intent_mode == config::IntentMode::speculative ? IntentTiming::speculative
                                                                                      : IntentTiming::folded;
  }

  // Started in this order, so the intent request is on the wire while the catalog is built.
  auto intent = analyse_intent(&p);
  auto recall = recall_memories(&p);
  auto catalog = build_catalog(&p);
  co_await (std::move(intent) && std::move(recall) && std::move(catalog));
  if (!p.problems.empty()) co_return std::move(p.problems);

  // A narrowed tool set keeps the tools that plans commonly need to pass data along.
  p.ctx.catalog = ToolCatalog::full(*p.entries, p.ctx.tools);
  co_return std::move(p.ctx);
}

std::string Planner::format_rule(bool with_intent) const {
  const std::string object = with_intent ? "{\"intent\": \"<what the goal asks for, in a few words>\", \"steps\": [...]}"
                                         : "{\"steps\": [...]}";
  if (cfg_.llm.structured_output) return "Reply with the plan as a JSON object " + object + ".";
  return "Reply with one JSON object " + object + " and nothing else: no prose, no code fence.";
}

net::ChatRequest Planner::plan_request(Prompt prompt, const PlanningContext& ctx) const {
  auto request = chat_of(cfg_, std::move(prompt));
  if (cfg_.llm.structured_output) {
    std::vector<std::string> names = ctx.tools;
    if (names.empty())
      for (const Tool* t : registry_.tools()) names.emplace_back(t->name());
    request.json_schema = plan_schema(names, ctx.intent_timing == IntentTiming::folded);
    request.schema_name = "dagent_plan";
    request.strict = false;
  }
  return request;
}

void Planner::validate(PlanDraft& draft, const PlanningContext& ctx, const json::array* kept) const {
  // Counted before any step is parsed or analysed: an oversized plan is rejected at once.
  const std::size_t count = draft.steps.size() + (kept ? kept->size() : 0);
  if (count > static_cast<std::size_t>(cfg_.planner.max_steps)) {
    draft.problems.push_back("plan: the plan has " + std::to_string(count) + " steps, more than planner.max_steps (" +
                             std::to_string(cfg_.planner.max_steps) + ")");
    return;
  }
  json::array all;
  if (kept) all = *kept;
  for (const auto& s : draft.steps) all.push_back(s);
  auto parsed = executor::parse_plan(all);
  executor::AnalysisOptions options;
  options.dependency_analysis = cfg_.performance.parallel_execution.dependency_analysis;
  options.max_steps = cfg_.planner.max_steps;
  options.inputs = &ctx.inputs;
  auto analysis = executor::analyze(parsed.plan, registry_, options);
  for (const auto& p : parsed.problems) draft.problems.push_back(p.to_string());
  for (const auto& p : analysis.problems) draft.problems.push_back(p.to_string());
  if (all.empty() && draft.problems.empty()) draft.problems.push_back("plan: the plan has no steps");
}

asio::awaitable<PlanDraft> Planner::call_for_plan(Prompt prompt, StepSink on_step, PlanningPhase phase,
                                                  const PlanningContext& ctx, const json::array* kept,
                                                  Clock::time_point deadline, std::string timeout_message) {
  PlanDraft draft;
  auto request = plan_request(std::move(prompt), ctx);
  emit(phase, false, on_step ? "streaming" : "");
  // One reader for both paths: the streamed reply is fed as it arrives, a whole one at once.
  StepStream stream;
  std::string streamed;
  net::LlmResult<net::ChatResponse> reply = net::LlmError{};
  if (on_step) {
    auto on_delta = [&stream, &streamed, &on_step, this](std::string_view delta) {
      streamed += delta;
      for (auto& step : stream.feed(delta)) {
        emit(PlanningPhase::plan_step, true);
        on_step(std::move(step));
      }
    };
    reply = co_await within(llm_.chat_stream(std::move(request), on_delta), deadline, std::move(timeout_message));
  } else {
    reply = co_await within(llm_.chat(std::move(request)), deadline, std::move(timeout_message));
  }
  if (!reply) {
    draft.problems.push_back(describe(reply.error()));
    draft.error = std::move(reply.error());
    emit(phase, true, draft.problems.front());
    co_return draft;
  }
  draft.reply = std::move(reply->content);
  if (!on_step) stream.feed(draft.reply);
  auto plan = stream.finish();
  draft.intent = stream.intent();
  if (on_step && streamed != draft.reply) {
    // The steps handed out came from other text than the reply: neither can be trusted.
    draft.problems.push_back("plan: the streamed reply differs from the reply's final text");
  } else if (!plan) {
    draft.problems.push_back("plan: " + plan.error());
  } else {
    draft.steps = std::move(*plan);
    validate(draft, ctx, kept);
  }
  const std::string detail = draft.problems.empty() ? std::to_string(draft.steps.size()) + " steps"
                                                    : std::to_string(draft.problems.size()) + " problems";
  emit(phase, true, detail);
  co_return draft;
}

asio::awaitable<PlanDraft> Planner::draft(PlanningContext ctx, StepSink on_step) {
  const std::string max_steps = std::to_string(cfg_.planner.max_steps);
  // Task inputs and recalled memories are data: each set in its own untrusted-data block.
  const std::string inputs = ctx.inputs.empty() ? "(none)" : untrusted_block("task inputs", json::serialize(ctx.inputs));
  const std::string memories =
      ctx.memories.empty() ? "(none)" : untrusted_block("recalled memories", "- " + join(ctx.memories, "\n- "));
  const bool folded = ctx.intent_timing == IntentTiming::folded;
  const std::string format = format_rule(folded);
  const std::string intent = folded              ? "(not analysed: state it in the reply's \"intent\")"
                             : ctx.intent.empty() ? "(not analysed)"
                                                  : ctx.intent;
  const std::pair<std::string_view, std::string_view> vars[] = {
      {"goal", ctx.goal},         {"intent", intent}, {"tools", ctx.catalog}, {"memories", memories},
      {"inputs", inputs},         {"format", format}, {"max_steps", max_steps}};
  auto prompt = render_with_data(PromptKind::plan, vars);
  if (!prompt) co_return template_failure(prompt.error());
  if (!ctx.deadline) ctx.deadline = after(cfg_.planner.planning_timeout_ms);
  const auto deadline = *ctx.deadline;
  co_return co_await call_for_plan(std::move(*prompt), std::move(on_step), PlanningPhase::planning, ctx, nullptr,
                                   deadline, timeout_text("planning", cfg_.planner.planning_timeout_ms));
}

// The state shared by the intent call and the speculative plan call, on speculate()'s frame.
struct Planner::Speculation {
  PlanningContext narrowed;           ///< the prepared context; the intent call adds intent, tools, catalog
  std::vector<std::string> problems;  ///< the intent template could not be read
  StepSink sink;                      ///< the caller's; null: a whole plan
  asio::steady_timer* discard = nullptr;  ///< cancelled to abandon the speculative call
  bool intent_known = false;
  bool released = false;              ///< steps went to `sink`: the plan is kept whatever follows
  bool dropped = false;
  std::string why_dropped;
  std::vector<json::object> held;     ///< streamed steps waiting for the intent

  // Why a streamed step waits: dispatched before the intent is known, it might use a tool the
  // intent does not allow, and a step that ran cannot be taken back.
  struct Hold {
    Speculation* s;
    void operator()(json::object step) const { s->take(std::move(step)); }
  };

  void take(json::object step) {
    if (dropped) return;
    if (!intent_known) {
      held.push_back(std::move(step));
      return;
    }
    if (!released) {
      if (auto tool = first_outside(json::array{step}, narrowed.tools); !tool.empty()) return drop(tool);
    }
    released = true;
    sink(std::move(step));
  }

  // The intent is known: the held steps go on, or the plan that wrote them is abandoned.
  void decide() {
    intent_known = true;
    json::array steps(held.begin(), held.end());
    if (auto tool = first_outside(steps, narrowed.tools); !tool.empty()) return drop(tool);
    auto waiting = std::move(held);
    held.clear();
    for (auto& step : waiting) take(std::move(step));
  }

  void drop(const std::string& tool) {
    dropped = true;
    held.clear();
    why_dropped = "it uses '" + tool + "', which the intent does not allow";
    discard->cancel();
  }
};

asio::awaitable<Planned> Planner::plan(PlanningContext ctx, StepSink on_step) {
  if (ctx.intent_timing == IntentTiming::speculative) co_return co_await speculate(std::move(ctx), std::move(on_step));
  // Not in the braced initializer: g++ 12 miscompiles co_await inside one.
  PlanDraft first = co_await draft(ctx, std::move(on_step));
  Planned out;
  out.ctx = std::move(ctx);
  out.draft = std::move(first);
  if (out.ctx.intent_timing == IntentTiming::folded) {
    out.ctx.intent = out.draft.intent;
    out.ctx.intent_timing = IntentTiming::known;
    emit(PlanningPhase::intent, true, out.ctx.intent.empty() ? "the plan reply states no intent" : out.ctx.intent);
  }
  co_return out;
}

asio::awaitable<void> Planner::intent_beside(Speculation* s) {
  // Taken before the call: once cancelled, this coroutine must not co_await again.
  const auto cancellation = co_await asio::this_coro::cancellation_state;
  Parallel p;
  p.ctx = s->narrowed;
  p.ctx.intent_timing = IntentTiming::known;
  co_await analyse_intent(&p);
  // Ctrl-C (or a sibling's exception) ended the intent call: release nothing to the scheduler.
  if (cancellation.cancelled() != asio::cancellation_type::none) co_return;
  s->problems = std::move(p.problems);
  s->narrowed.intent = std::move(p.ctx.intent);
  s->narrowed.tools = std::move(p.ctx.tools);
  s->narrowed.catalog = ToolCatalog::full(entries_for(&p), s->narrowed.tools);
  s->narrowed.intent_timing = IntentTiming::known;
  s->decide();
}

asio::awaitable<std::optional<PlanDraft>> Planner::guessed_plan(Speculation* s, PlanningContext ctx) {
  using namespace asio::experimental::awaitable_operators;
  {  // the memories go into the plan prompt: recalled first, while the intent call runs
    Parallel p;
    p.ctx = ctx;
    p.ctx.intent_timing = IntentTiming::known;
    co_await recall_memories(&p);
    s->narrowed.memories = p.ctx.memories;
    ctx.memories = std::move(p.ctx.memories);
  }
  StepSink sink;
  if (s->sink) sink = Speculation::Hold{s};
  // Why caught(): `||` waits for one *success*; a draft that throws (an observer) must end the race.
  auto winner = co_await (caught(draft(std::move(ctx), std::move(sink))) ||
                          s->discard->async_wait(asio::as_tuple(asio::use_awaitable)));
  if (winner.index() == 1) co_return std::nullopt;
  auto& done = std::get<0>(winner);
  if (done.error) std::rethrow_exception(done.error);
  if (s->dropped) co_return std::nullopt;
  co_return std::move(done.value);
}

asio::awaitable<Planned> Planner::speculate(PlanningContext ctx, StepSink on_step) {
  using namespace asio::experimental::awaitable_operators;
  Speculation s;
  s.narrowed = ctx;
  s.sink = on_step;
  asio::steady_timer discard(co_await asio::this_coro::executor, Clock::time_point::max());
  s.discard = &discard;
  // The intent request goes on the wire first; both calls share the planning deadline.
  auto guess = co_await (intent_beside(&s) && guessed_plan(&s, ctx));
  if (!s.problems.empty()) co_return Planned{std::move(s.narrowed), template_failure(s.problems.front())};
  Planned out{std::move(s.narrowed), {}};
  if (guess && !s.dropped) {
    const std::string tool = first_outside(guess->steps, out.ctx.tools);
    // Without a narrowed set the guess is the very request the sequential path would make.
    if (out.ctx.tools.empty() || s.released || (guess->ok() && tool.empty())) {
      emit(PlanningPhase::planning, true, "speculative plan kept");
      out.draft = std::move(*guess);
      co_return out;
    }
    s.why_dropped = !tool.empty() ? "it uses '" + tool + "', which the intent does not allow"
                    : guess->error ? "its call failed"
                                   : "it is invalid";
  }
  emit(PlanningPhase::planning, true,
       "speculative plan discarded: " + s.why_dropped + "; planning with the intent's tools");
  out.draft = co_await draft(out.ctx, std::move(on_step));
  co_return out;
}

asio::awaitable<PlanDraft> Planner::repair(PlanningContext ctx, PlanDraft bad) {
  // Both quote the model's reply (the problems name its keys and values): each within the budget.
  // The model's earlier reply is data now, and so are the problems that quote it.
  const std::string problems = untrusted_block(
      "problems found in the plan", quote_within("- " + join(bad.problems, "\n- "), cfg_.planner.quote_budget_tokens));
  const std::string plan = untrusted_block("the plan you wrote", quote_within(bad.reply, cfg_.planner.quote_budget_tokens));
  const std::string format = format_rule();
  const std::pair<std::string_view, std::string_view> vars[] = {
      {"goal", ctx.goal}, {"plan", plan}, {"problems", problems}, {"tools", ctx.catalog}, {"format", format}};
  auto prompt = render_with_data(PromptKind::repair, vars);
  if (!prompt) co_return template_failure(prompt.error());
  if (!ctx.deadline) ctx.deadline = after(cfg_.planner.planning_timeout_ms);
  const auto deadline = *ctx.deadline;
  co_return co_await call_for_plan(std::move(*prompt), {}, PlanningPhase::repair, ctx, nullptr, deadline,
                                   timeout_text("planning", cfg_.planner.planning_timeout_ms));
}

asio::awaitable<PlanDraft> Planner::create_plan(std::string goal, json::object inputs) {
  auto ctx = co_await prepare(std::move(goal), std::move(inputs));
  if (!ctx) {
    PlanDraft failed;
    failed.problems = std::move(ctx.error());
    co_return failed;
  }
  auto planned = co_await plan(std::move(*ctx), {});
  if (planned.draft.ok() || planned.draft.error) co_return std::move(planned.draft);
  co_return co_await repair(std::move(planned.ctx), std::move(planned.draft));
}

asio::awaitable<PlanDraft> Planner::replan(PlanningContext ctx, json::array kept, std::string results,
                                           std::string reason, int next_id) {
  const std::string next = std::to_string(next_id);
  const std::string format = format_rule();
  // The model's words (after reading the results) and the step outputs: both data.
  const std::string why = untrusted_block("the reason to replan", quote_within(reason, cfg_.planner.quote_budget_tokens));
  const std::string shown = untrusted_block("step results", results);
  const std::pair<std::string_view, std::string_view> vars[] = {
      {"goal", ctx.goal},   {"results", shown}, {"reason", why},
      {"next_id", next},    {"tools", ctx.catalog}, {"format", format}};
  auto prompt = render_with_data(PromptKind::replan, vars);
  if (!prompt) co_return template_failure(prompt.error());
  auto more = co_await call_for_plan(std::move(*prompt), {}, PlanningPhase::replan, ctx, &kept,
                                     after(cfg_.planner.answer_timeout_ms),
                                     timeout_text("replanning", cfg_.planner.answer_timeout_ms));
  // Kept steps alone are valid, so an empty reply would pass as a plan that changes nothing.
  if (more.ok() && more.steps.empty()) more.problems.push_back("plan: the reply adds no new steps");
  co_return more;
}

asio::awaitable<Answer> Planner::synthesize(std::string goal, std::vector<executor::StepResult> steps, bool allow_replan,
                                            std::function<void(std::string_view)> on_delta) {
  Answer answer;
  const std::string results = untrusted_block("step results", digest_results(steps, cfg_.planner.answer_budget_tokens));
  const std::string replan_rule =
      allow_replan ? "If the results are not enough to answer and more tool calls would fix that, reply instead "
                     "with one line: REPLAN: <what is missing>"
                   : "";
  const std::pair<std::string_view, std::string_view> vars[] = {
      {"goal", goal}, {"results", results}, {"replan_rule", replan_rule}};
  auto prompt = render_with_data(PromptKind::answer, vars);
  if (!prompt) {
    answer.error = internal_error(prompt.error());
    co_return answer;
  }
  emit(PlanningPhase::synthesis, false);
  AnswerStream stream{std::move(on_delta), allow_replan};
  auto on_piece = [&stream](std::string_view delta) { stream(delta); };
  auto reply = co_await within(llm_.chat_stream(chat_of(cfg_, std::move(*prompt)), on_piece),
                               after(cfg_.planner.answer_timeout_ms),
                               timeout_text("answer synthesis", cfg_.planner.answer_timeout_ms));
  if (!reply) {
    answer.error = std::move(reply.error());
    emit(PlanningPhase::synthesis, true, "answer synthesis failed: " + answer.error->message);
    co_return answer;
  }
  std::string text = std::move(reply->content);
  const auto first = text.find_first_not_of(" \t\r\n");
  std::string_view head = first == std::string::npos ? std::string_view() : std::string_view(text).substr(first);
  if (allow_replan && head.starts_with(k_replan_marker)) {
    head.remove_prefix(k_replan_marker.size());
    const auto start = head.find_first_not_of(" \t");
    answer.replan_reason = start == std::string_view::npos ? "more steps are needed" : std::string(head.substr(start));
    while (!answer.replan_reason.empty() && (answer.replan_reason.back() == '\n' || answer.replan_reason.back() == '\r'))
      answer.replan_reason.pop_back();
    emit(PlanningPhase::synthesis, true, "the model asks to replan: " + answer.replan_reason);
    co_return answer;
  }
  if (head.empty()) {  // a complete stream that says nothing is not an answer
    answer.error = net::LlmError{net::make_error_code(net::NetErrc::protocol_error), "the model's answer is empty"};
    emit(PlanningPhase::synthesis, true, "answer synthesis failed: " + answer.error->message);
    co_return answer;
  }
  if (!stream.decided && stream.sink) stream.sink(text);  // short answers never reached the decision
  answer.text = std::move(text);
  emit(PlanningPhase::synthesis, true);
  co_return answer;
}

}  // namespace dagent::planner
