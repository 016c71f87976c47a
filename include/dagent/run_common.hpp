#pragma once
// Plain data that the public results (dagent/run_result.hpp) and the executor's and planner's own
// types share: the status enums, the planner's phases and a run's counters. Defined once here so
// the runtime hands them across its boundary as they are.

#include <cstdint>
#include <string_view>

namespace dagent {

enum class StepStatus { pending, running, succeeded, failed, skipped };
/// `error`: the verdict could not be had (the judge unreachable, timed out, or its reply not a
/// verdict); unknown is never a pass, so it fails the run.
enum class VerificationStatus { not_requested, pending, passed, failed, error };
enum class RunStatus { succeeded, failed };
/// The planner's phases, as the live view shows them.
enum class PlanningPhase { routing, intent, recall, catalog, planning, plan_step, repair, synthesis, replan };

std::string_view to_string(StepStatus s) noexcept;
std::string_view to_string(VerificationStatus s) noexcept;
std::string_view to_string(RunStatus s) noexcept;
std::string_view to_string(PlanningPhase p) noexcept;

/// Counters of SPEC §5 `metrics`.
struct RunMetrics {
  double wall_ms = 0;
  std::int64_t llm_calls = 0;
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
  std::int64_t embedding_calls = 0;
  std::int64_t retries = 0;
  std::int64_t retries_refused = 0;  ///< retries not made: the run's retry budget was spent
  double rate_limit_wait_ms = 0;
  std::int64_t cache_hits = 0;
  std::int64_t cache_l2_hits = 0;    ///< of cache_hits, answered by the shared cache in Redis
  std::int64_t cache_l2_errors = 0;  ///< shared-cache reads and writes that failed, values it held that were unreadable
  std::int64_t connections_opened = 0;
  std::int64_t rate_limit_fallback_calls = 0;  ///< admitted by the local share while the shared budget was unreachable
  int max_concurrent_steps = 0;
  double planning_ms = 0;      ///< from the run's start until the plan was complete and valid
};

}  // namespace dagent
