#pragma once
// Goal to validated plan: a parallel phase (keyword routing, intent analysis, memory recall,
// tool catalog), the planning call (whole or streamed), one repair, answer synthesis and
// replanning. The planner knows the executor only through Plan and analyze().

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include "config/config.hpp"
#include "executor/run_types.hpp"
#include "net/llm_provider.hpp"
#include "planner/keyword_router.hpp"
#include "planner/planning_event.hpp"
#include "planner/prompts.hpp"
#include "planner/tool_catalog.hpp"

namespace dagent::tools {
class Registry;
}

namespace dagent::planner {

/// Memories relevant to a goal, for the planning prompt. The memory module provides one.
class Recall {
 public:
  virtual ~Recall() = default;
  virtual boost::asio::awaitable<std::vector<std::string>> recall(std::string goal, int k) = 0;
};

/// Where the intent of a goal comes from, as prepare() leaves it.
enum class IntentTiming {
  known,        ///< routed, analysed already (planner.intent_mode sequential), or intent analysis off
  speculative,  ///< the intent call runs beside the first plan call (plan())
  folded,       ///< the first plan call states the intent itself
};

/// What the parallel phase learned about a goal; the input of every planning call.
struct PlanningContext {
  std::string goal;
  boost::json::object inputs;
  std::string intent;               ///< from the route or the intent call; may be empty
  std::string route;                ///< the keyword route that matched, if any
  std::vector<std::string> tools;   ///< the tools offered to the planning call; empty: all
  std::vector<std::string> memories;
  std::string catalog;              ///< the full catalog entries of `tools`
  /// When the planning of this goal (intent, plan and repair calls together) must be over:
  /// prepare() sets it to now + planner.planning_timeout_ms; unset, draft() starts the clock.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  IntentTiming intent_timing = IntentTiming::known;
};

/// One planning call's outcome.
struct PlanDraft {
  boost::json::array steps;            ///< the steps as the model wrote them
  std::string reply;                   ///< the raw reply, shown to the repair call
  std::vector<std::string> problems;   ///< why it cannot run; empty when valid
  /// The call failed, timed out or could not be made (a template that cannot be read); then
  /// `problems` says so too, and a repair would not help.
  std::optional<net::LlmError> error;
  std::string intent;                  ///< the reply's "intent" member (folded intent analysis)

  bool ok() const noexcept { return !error && problems.empty(); }
};

/// The first planning call's outcome and the context the later calls (repair, replan) use: its
/// intent and tool set are the ones the intent analysis found.
struct Planned {
  PlanningContext ctx;
  PlanDraft draft;
};

/// Answer synthesis: the answer, or the model's request for more steps.
struct Answer {
  std::string text;
  std::string replan_reason;           ///< non-empty: the model asked to replan instead
  /// The call failed, was cut (no [DONE], an error event), timed out, or answered nothing.
  std::optional<net::LlmError> error;
};

/// Receives each step of a streamed plan as soon as it is complete.
using StepSink = std::function<void(boost::json::object)>;

/// One planner per runtime: the catalog and template caches live as long as it does. Lives on
/// the runtime's loop; the provider and registry must outlive it.
class Planner {
 public:
  Planner(net::LlmProvider& llm, const tools::Registry& registry, const config::Config& cfg);

  /// The memory seam; null: no recall.
  void set_recall(Recall* recall) noexcept { recall_ = recall; }
  /// Observer of the planner's phases, and the time events are measured from.
  void on_event(std::function<void(const PlanningEvent&)> callback,
                std::chrono::steady_clock::time_point epoch);

  /// The parallel phase for `goal`: routing, then intent analysis (planner.intent_mode
  /// sequential; otherwise left to plan(), see intent_timing), recall and the catalog
  /// concurrently. Fails on a configuration problem (a route naming an unknown tool, a template
  /// that cannot be read).
  boost::asio::awaitable<boost::system::result<PlanningContext, std::vector<std::string>>> prepare(
      std::string goal, boost::json::object inputs);

  /// One planning call. With `on_step`, the plan is requested as a stream and each complete step
  /// is handed over as it arrives; the streamed and the whole reply are read by one StepStream,
  /// so the steps handed over are the object steps of the draft. The finished plan is validated
  /// with executor::analyze. Bounded by ctx.deadline.
  boost::asio::awaitable<PlanDraft> draft(PlanningContext ctx, StepSink on_step);

  /// The first planning call with the intent as ctx.intent_timing says. known: draft(). folded:
  /// draft() asks for {"intent", "steps"}; the intent is read from the reply. speculative: the
  /// intent call and a plan call offered every tool run concurrently; streamed steps are held
  /// until the intent is known. The plan is kept when the intent does not narrow the tools, or
  /// when it is valid and uses only the intent's tools, or when streamed steps already went to
  /// `on_step`; otherwise it is discarded (its call cancelled as soon as a held step shows it)
  /// and draft() plans again with the narrowed catalog. Bounded by ctx.deadline.
  boost::asio::awaitable<Planned> plan(PlanningContext ctx, StepSink on_step);

  /// A second planning call that shows the model its invalid plan (quoted within
  /// planner.quote_budget_tokens) and the problems. Bounded by ctx.deadline.
  boost::asio::awaitable<PlanDraft> repair(PlanningContext ctx, PlanDraft bad);

  /// prepare(), draft() and at most one repair(): a valid plan, or every problem of the last try.
  boost::asio::awaitable<PlanDraft> create_plan(std::string goal, boost::json::object inputs);

  /// New steps after a run whose results were not enough: `kept` are the steps that keep their
  /// results, `results` their digest (quoted in an untrusted-data block, as is the reason); new steps are numbered from `next_id`. The draft holds only
  /// the new steps; it is validated together with `kept`, and a reply without new steps is a
  /// problem. Bounded by planner.answer_timeout_ms.
  boost::asio::awaitable<PlanDraft> replan(PlanningContext ctx, boost::json::array kept, std::string results,
                                           std::string reason, int next_id);

  /// Answer synthesis from the goal and the step results, streamed to `on_delta`; the model may
  /// ask to replan instead when `allow_replan`. Bounded by planner.answer_timeout_ms.
  boost::asio::awaitable<Answer> synthesize(std::string goal, std::vector<executor::StepResult> steps, bool allow_replan,
                                            std::function<void(std::string_view)> on_delta);

 private:
  struct Parallel;
  struct Speculation;
  boost::asio::awaitable<void> analyse_intent(Parallel* p);
  boost::asio::awaitable<Planned> speculate(PlanningContext ctx, StepSink on_step);
  boost::asio::awaitable<void> intent_beside(Speculation* s);
  boost::asio::awaitable<std::optional<PlanDraft>> guessed_plan(Speculation* s, PlanningContext ctx);
  boost::asio::awaitable<void> recall_memories(Parallel* p);
  boost::asio::awaitable<void> build_catalog(Parallel* p);
  const std::vector<CatalogEntry>& entries_for(Parallel* p);
  boost::asio::awaitable<PlanDraft> call_for_plan(Prompt prompt, StepSink on_step, PlanningPhase phase,
                                                  const PlanningContext& ctx, const boost::json::array* kept,
                                                  std::chrono::steady_clock::time_point deadline,
                                                  std::string timeout_message);
  net::ChatRequest plan_request(Prompt prompt, const PlanningContext& ctx) const;
  /// prompts_.render(kind, vars) for a prompt that carries untrusted data: its system part ends
  /// with k_untrusted_rule, whatever the template (built-in or a file) says.
  boost::system::result<Prompt, std::string> render_with_data(PromptKind kind, PromptVars vars);
  std::string format_rule(bool with_intent = false) const;
  void validate(PlanDraft& draft, const PlanningContext& ctx, const boost::json::array* kept) const;
  void emit(PlanningPhase phase, bool finished, std::string_view detail = {}) const;

  net::LlmProvider& llm_;
  const tools::Registry& registry_;
  const config::Config& cfg_;
  PromptLibrary prompts_;
  ToolCatalog catalog_;
  KeywordRouter router_;
  Recall* recall_ = nullptr;
  std::function<void(const PlanningEvent&)> on_event_;
  std::chrono::steady_clock::time_point epoch_ = std::chrono::steady_clock::now();
};

}  // namespace dagent::planner
