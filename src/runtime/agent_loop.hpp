#pragma once
// The agent loop of one run, apart from its wiring: plan (whole or streamed), repair, execute,
// answer, replan. Each coroutine fills the run's result, or its problems when nothing could run.

#include <boost/asio/awaitable.hpp>

#include "runtime/run.hpp"

namespace dagent::runtime {

/// A goal: the parallel phase, the planning call (streamed when planner.stream_plan and eager
/// scheduling, its steps starting as they arrive), one repair when nothing ran yet, execution,
/// the answer and replanning. A resumed run executes its recorded plan instead. Ctrl-C cancels
/// the call underway; the result keeps what ran (and any answer streamed so far).
boost::asio::awaitable<void> run_goal_loop(Run* run);

/// A fixed plan, already prepared: execute it (a resumed run keeps its finished steps).
boost::asio::awaitable<void> run_plan_loop(Run* run, Prepared* prepared);

/// Succeeded when every step succeeded with no failed or missing verdict, and the run recorded
/// no error; an interruption fails the run and leads its error.
void finish_status(executor::RunResult& result);

}  // namespace dagent::runtime
