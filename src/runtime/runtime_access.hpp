#pragma once
// The in-tree programs' (the CLI, `dagent serve`, the tests) way into a Runtime beyond the public
// API: built from a loaded config, its config, and runs that return the executor's own result
// (with the slots the CLI's result file and `dagent report` need).

#include <filesystem>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "config/config.hpp"
#include "dagent/runtime.hpp"
#include "runtime/public_result.hpp"

namespace dagent::runtime {

/// A Runtime for a config loaded already (a recording's, a test's).
Runtime make_runtime(config::Config cfg);
/// The config the runtime was loaded with.
const config::Config& config_of(const Runtime& runtime) noexcept;

/// As Runtime::run_task, with the executor's result.
Outcome run_task(Runtime& runtime, std::string_view task, const RunOptions& options = {});
/// As Runtime::run_plan, with the executor's result.
Outcome run_plan(Runtime& runtime, const boost::json::value& plan, const boost::json::object& inputs,
                 const std::filesystem::path& workspace, const RunOptions& options = {},
                 std::string task_name = "plan");
/// As run_task, as a coroutine on runtime.executor(), concurrently with other runs started so.
/// `task` is parsed already (config::load_task_text for a request body); its workspace must be
/// set. `options` must outlive the coroutine; its stop_on_sigint, record, replay and resume are
/// not supported here (problems). Call only from coroutines on executor() while run_loop() runs.
boost::asio::awaitable<Outcome> run_task_async(Runtime& runtime, const config::Task& task, const RunOptions& options);

}  // namespace dagent::runtime
