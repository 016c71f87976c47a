#include "memory/embedding_batcher.hpp"

#include <algorithm>
#include <deque>
#include <exception>
#include <iterator>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "net/call_meter.hpp"
#include "net/net_error.hpp"
#include "observe/metrics.hpp"

namespace dagent::memory {

namespace asio = boost::asio;

struct EmbeddingBatcher::Waiter {
  Waiter(asio::any_io_executor loop, std::vector<std::string> all, std::shared_ptr<net::CallMeter> m)
      : texts(std::move(all)),
        pending(texts.size()),
        wake(std::move(loop), asio::steady_timer::time_point::max()),
        meter(std::move(m)) {}

  std::vector<std::string> texts;  ///< each is moved into its request when sent
  std::size_t pending;             ///< texts without a vector yet
  net::EmbedResponse response;
  std::optional<net::LlmError> error;
  bool finished = false;     ///< answered, failed or abandoned by its caller: later replies are ignored
  asio::steady_timer wake;   ///< never expires; cancelled to wake the caller
  std::shared_ptr<net::CallMeter> meter;  ///< the caller's, or null; kept for requests that outlive it
};

namespace {

struct Item {
  std::shared_ptr<EmbeddingBatcher::Waiter> waiter;
  std::size_t index = 0;   ///< which of the waiter's texts
  std::size_t length = 0;  ///< its size in bytes: the weight of its share of the usage
};

}  // namespace

struct EmbeddingBatcher::State {
  State(asio::any_io_executor executor, net::LlmProvider& llm, BatcherOptions opts)
      : loop(executor), provider(&llm), options(std::move(opts)), delay(executor) {
    options.batch_size = std::max<std::size_t>(options.batch_size, 1);
  }

  asio::any_io_executor loop;
  net::LlmProvider* provider;
  BatcherOptions options;
  /// Texts waiting for a request, oldest first. Bounded: a full batch leaves at once, so between
  /// calls it holds fewer than batch_size items.
  std::deque<Item> queue;
  asio::steady_timer delay;            ///< armed while the queue is not empty
  bool delay_armed = false;
  std::uint64_t delay_generation = 0;  ///< bumped on each arm and disarm
  std::int64_t requests_sent = 0;
  std::int64_t in_flight = 0;
};

namespace {

using State = EmbeddingBatcher::State;
using Waiter = EmbeddingBatcher::Waiter;

net::LlmError batch_error(net::NetErrc code, std::string message) {
  return net::LlmError{net::make_error_code(code), std::move(message), 0, {}, {}, 0};
}

void finish(Waiter& waiter) {
  waiter.finished = true;
  waiter.wake.cancel();
}

void fail(Waiter& waiter, net::LlmError error) {
  waiter.error = std::move(error);
  finish(waiter);
}

void disarm(State& state) {
  if (!state.delay_armed) return;
  state.delay_armed = false;
  ++state.delay_generation;
  state.delay.cancel();
}

// Drops the queued texts of a waiter that no longer wants them, so they are never sent.
void drop_queued(State& state, const Waiter& waiter) {
  std::erase_if(state.queue, [&](const Item& item) { return item.waiter.get() == &waiter; });
  if (state.queue.empty()) disarm(state);
}

// The part of `total` that falls to the weights in [before, upto) out of `all`; the parts of
// consecutive ranges add up to `total` exactly.
std::int64_t share(std::int64_t total, std::int64_t before, std::int64_t upto, std::int64_t all) {
  return total * upto / all - total * before / all;
}

// Hands each waiter in `batch` its vectors and share of the usage, or the request's error.
void deliver(State& state, const std::vector<Item>& batch, net::LlmResult<net::EmbedResponse> result) {
  if (result && (result->size() != batch.size() || result->vectors.size() != batch.size() * result->dimension))
    result = batch_error(net::NetErrc::protocol_error, "embeddings: expected " + std::to_string(batch.size()) +
                                                           " vectors, got " + std::to_string(result->size()));
  if (!result) {
    for (const auto& item : batch) {
      if (item.waiter->finished) continue;
      fail(*item.waiter, result.error());
      drop_queued(state, *item.waiter);
    }
    return;
  }
  const net::EmbedResponse& reply = *result;
  std::int64_t all = 0;
  for (const auto& item : batch) all += static_cast<std::int64_t>(item.length) + 1;
  std::int64_t before = 0;
  for (std::size_t k = 0; k < batch.size(); ++k) {
    const auto upto = before + static_cast<std::int64_t>(batch[k].length) + 1;
    const auto prompt_tokens = share(reply.usage.prompt_tokens, before, upto, all);
    const auto completion_tokens = share(reply.usage.completion_tokens, before, upto, all);
    before = upto;
    Waiter& waiter = *batch[k].waiter;
    if (waiter.finished) continue;
    net::EmbedResponse& mine = waiter.response;
    if (mine.dimension == 0) {
      mine.dimension = reply.dimension;
      mine.vectors.resize(waiter.texts.size() * reply.dimension);
    } else if (mine.dimension != reply.dimension) {
      // Why: one caller's texts may span requests, and its vectors must share one dimension.
      fail(waiter, batch_error(net::NetErrc::protocol_error,
                               "embeddings: the requests of one call returned vectors of " +
                                   std::to_string(mine.dimension) + " and " + std::to_string(reply.dimension) +
                                   " dimensions"));
      drop_queued(state, waiter);
      continue;
    }
    const auto row = reply.vector(k);
    std::copy(row.begin(), row.end(), mine.vectors.begin() + static_cast<std::ptrdiff_t>(batch[k].index * mine.dimension));
    mine.usage.prompt_tokens += prompt_tokens;
    mine.usage.completion_tokens += completion_tokens;
    if (--waiter.pending == 0) finish(waiter);
  }
}

// Counts what a request cost (`cost`, all the provider counted for it) to the meters of the
// callers in `batch`. Why this split: the request is one call however many callers share it. It
// counts once, with its retries, waits, connections and cache hits, to the caller whose text
// opened the batch (the first, even if it was cancelled since: its run asked for it); its tokens
// are split by input length as deliver() splits the usage, so each meter holds its own texts'
// tokens and the meters add up to the provider's counts. The part of a caller without a meter
// is counted nowhere but in the provider's metrics, as is what arrives after the request ended
// (a failed background write to the shared cache).
void settle(const std::vector<Item>& batch, const net::CallMeter& cost) {
  net::CallMeter call = cost;
  call.prompt_tokens = call.completion_tokens = 0;
  if (const auto& opener = batch.front().waiter->meter) *opener += call;
  std::int64_t all = 0;
  for (const auto& item : batch) all += static_cast<std::int64_t>(item.length) + 1;
  std::int64_t before = 0;
  for (const auto& item : batch) {
    const auto upto = before + static_cast<std::int64_t>(item.length) + 1;
    if (const auto& meter = item.waiter->meter) {
      meter->prompt_tokens += share(cost.prompt_tokens, before, upto, all);
      meter->completion_tokens += share(cost.completion_tokens, before, upto, all);
    }
    before = upto;
  }
}

asio::awaitable<void> send(std::shared_ptr<State> state, std::vector<Item> batch, net::EmbedRequest request) {
  auto cost = std::make_shared<net::CallMeter>();  // shared: a background write may count into it later
  request.meter = cost;
  auto call = state->provider->embed(std::move(request));
  auto result = co_await std::move(call);
  settle(batch, *cost);
  deliver(*state, batch, std::move(result));
}

// Owns a sent request: counts it out when it ends; an exception is a bug and leaves the loop.
struct SendDone {
  std::shared_ptr<State> state;
  void operator()(std::exception_ptr e) const {
    --state->in_flight;
    if (e) std::rethrow_exception(e);
  }
};

void send_batch(const std::shared_ptr<State>& state, std::vector<Item> batch) {
  net::EmbedRequest request{state->options.model, {}, state->options.dimensions};
  request.inputs.reserve(batch.size());
  observe::embedding_batch(batch.size());
  for (const auto& item : batch) request.inputs.push_back(std::move(item.waiter->texts[item.index]));
  ++state->requests_sent;
  ++state->in_flight;
  asio::co_spawn(state->loop, send(state, std::move(batch), std::move(request)), SendDone{state});
}

// Sends the oldest `count` queued texts as one request.
void flush(const std::shared_ptr<State>& state, std::size_t count) {
  auto& queue = state->queue;
  const auto end = queue.begin() + static_cast<std::ptrdiff_t>(count);
  std::vector<Item> batch(std::make_move_iterator(queue.begin()), std::make_move_iterator(end));
  queue.erase(queue.begin(), end);
  send_batch(state, std::move(batch));
}

struct DelayElapsed {
  std::shared_ptr<State> state;
  std::uint64_t generation;
  void operator()(boost::system::error_code ec) const {
    // Why: an expiry already queued when the timer was disarmed or re-armed still arrives here.
    if (ec || generation != state->delay_generation) return;
    state->delay_armed = false;
    if (!state->queue.empty()) flush(state, state->queue.size());
  }
};

void arm(const std::shared_ptr<State>& state) {
  state->delay_armed = true;
  state->delay.expires_after(state->options.max_delay);
  state->delay.async_wait(DelayElapsed{state, ++state->delay_generation});
}

void enqueue(const std::shared_ptr<State>& state, const std::shared_ptr<Waiter>& waiter) {
  const auto batch_size = state->options.batch_size;
  for (std::size_t i = 0; i < waiter->texts.size(); ++i) {
    Item item{waiter, i, waiter->texts[i].size()};
    if (!state->options.enabled) {
      send_batch(state, {std::move(item)});
      continue;
    }
    state->queue.push_back(std::move(item));
    if (state->queue.size() == batch_size) flush(state, batch_size);
  }
  if (state->queue.empty()) disarm(*state);
  else if (!state->delay_armed) arm(state);
}

}  // namespace

EmbeddingBatcher::EmbeddingBatcher(asio::any_io_executor loop, net::LlmProvider& provider, BatcherOptions options)
    : state_(std::make_shared<State>(std::move(loop), provider, std::move(options))) {}

EmbeddingBatcher::~EmbeddingBatcher() {
  disarm(*state_);
  for (const auto& item : state_->queue)
    if (!item.waiter->finished)
      fail(*item.waiter, batch_error(net::NetErrc::cancelled, "cancelled: the embedding batcher was destroyed"));
  state_->queue.clear();
}

std::int64_t EmbeddingBatcher::requests_sent() const noexcept { return state_->requests_sent; }

std::int64_t EmbeddingBatcher::requests_in_flight() const noexcept { return state_->in_flight; }

asio::awaitable<net::LlmResult<net::EmbedResponse>> EmbeddingBatcher::embed(std::vector<std::string> texts,
                                                                             std::shared_ptr<net::CallMeter> meter) {
  if (texts.empty()) co_return net::EmbedResponse{};
  auto state = state_;  // not `this`: the batcher may be gone when we wake
  auto waiter = std::make_shared<Waiter>(state->loop, std::move(texts), std::move(meter));
  enqueue(state, waiter);
  // Why: co_await on an already cancelled coroutine throws; cancellation must be a value here.
  const asio::cancellation_state cancel = co_await asio::this_coro::cancellation_state;
  if (cancel.cancelled() == asio::cancellation_type::none) {
    auto woken = waiter->wake.async_wait(asio::as_tuple(asio::use_awaitable));
    co_await std::move(woken);
  }
  if (!waiter->finished) {  // our caller was cancelled; requests already sent finish without us
    waiter->finished = true;
    drop_queued(*state, *waiter);
    co_return batch_error(net::NetErrc::cancelled, "cancelled: the embedding call was cancelled");
  }
  if (waiter->error) co_return std::move(*waiter->error);
  co_return std::move(waiter->response);
}

}  // namespace dagent::memory
