// BlockingTool::invoke: runs a tool's blocking work on the worker pool and resumes the step on
// the loop, completing at once when the step is cancelled.

#include "dagent/tool.hpp"

#include <exception>
#include <memory>
#include <utility>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace dagent {
namespace {

namespace asio = boost::asio;

// Shared by the pool job, the cancellation handler and the loop. `done` is only touched on the
// loop (both completions are posted there), so it needs no lock.
template <class Handler>
struct OffloadState {
  explicit OffloadState(Handler h) : handler(std::move(h)) {}
  Handler handler;
  bool done = false;
};

template <class Handler>
void complete(const std::shared_ptr<OffloadState<Handler>>& state, ToolResult result) {
  if (state->done) return;  // the other side already completed the step
  state->done = true;
  asio::get_associated_cancellation_slot(state->handler).clear();
  std::move(state->handler)(std::move(result));
}

struct InitiateOffload {
  template <class Handler>
  void operator()(Handler handler, BlockingTool* tool, boost::json::object params, ToolContext ctx) const {
    auto loop = asio::prefer(asio::get_associated_executor(handler), asio::execution::outstanding_work.tracked);
    auto slot = asio::get_associated_cancellation_slot(handler);
    auto state = std::make_shared<OffloadState<Handler>>(std::move(handler));
    if (slot.is_connected()) {
      // Runs where the signal is emitted (the loop); completing is deferred by a post so the
      // slot is never cleared from inside its own handler.
      slot.assign([state, loop](asio::cancellation_type) {
        asio::post(loop, [state] { complete(state, tool_error(ToolErrc::cancelled, "cancelled")); });
      });
    }
    auto worker = ctx.worker;
    asio::post(worker, [state, loop, tool, params = std::move(params), ctx = std::move(ctx)]() mutable {
      ToolResult result = tool_error(ToolErrc::failed, "tool did not run");
      try {
        result = tool->run(params, ctx);
      } catch (const std::exception& e) {
        result = tool_error(ToolErrc::failed, std::string(tool->name()) + ": " + e.what());
      }
      asio::post(loop, [state, result = std::move(result)]() mutable { complete(state, std::move(result)); });
    });
  }
};

}  // namespace

asio::awaitable<ToolResult> BlockingTool::invoke(boost::json::object params, ToolContext ctx) {
  if (!ctx.worker) {
    co_return run(params, ctx);  // no pool given (embedding without a runtime): run inline
  }
  // Named parts: g++ 12 mishandles temporaries inside a co_await expression.
  InitiateOffload initiation;
  auto offloaded = asio::async_initiate<const asio::use_awaitable_t<>&, void(ToolResult)>(
      initiation, asio::use_awaitable, this, std::move(params), std::move(ctx));
  co_return co_await std::move(offloaded);
}

}  // namespace dagent
