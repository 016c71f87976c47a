#pragma once
// Distributed steps for a run (execution.backend redis, `dagent run --distributed`): the tools
// that live workers offer become remote tools of the run; planning, scheduling, references,
// verification and recording stay here (README "Running on many machines").

#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

namespace dagent::runtime {

class Run;

/// For a live run with execution.backend redis: finds the live workers and makes the run's tools
/// they offer (and the tools only they offer) remote, setting run->distribution. `run_key` names
/// the run's keys in Redis (a resumed run uses its recording's run id instead). No live worker:
/// one warning, and every step runs here. The problems when Redis cannot be used.
boost::asio::awaitable<std::vector<std::string>> distribute(Run* run, std::string run_key);

/// `flow`, with the coordinator reading the run's results beside it when the run is distributed;
/// the cancellations of given-up calls are sent before it completes.
boost::asio::awaitable<void> with_workers(Run* run, boost::asio::awaitable<void> flow);

}  // namespace dagent::runtime
