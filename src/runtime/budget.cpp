#include "runtime/budget.hpp"

#include "net/net_error.hpp"
#include "net/rate_limiter.hpp"

namespace dagent::runtime {

namespace asio = boost::asio;

namespace {

std::int64_t prompt_estimate(const net::ChatRequest& request) {
  std::int64_t tokens = 0;
  for (const auto& m : request.messages) tokens += net::estimate_tokens(m.content);
  return tokens;
}

}  // namespace

// Why a ticket: a call cancelled mid-flight (Ctrl-C, the wall-time cap, a step timeout) ends with
// an exception at its next co_await; the destructor still releases its reservation and charges
// what it may have cost.
struct Budget::Ticket {
  Budget* budget;
  std::int64_t reserved;
  std::int64_t prompt;         ///< the prompt's estimate
  std::size_t streamed = 0;    ///< reply bytes delivered so far (streamed calls)
  bool settled = false;

  Ticket(Budget* b, std::int64_t r, std::int64_t p) : budget(b), reserved(r), prompt(p) {}
  Ticket(const Ticket&) = delete;
  Ticket& operator=(const Ticket&) = delete;
  ~Ticket() {
    // A call that failed before any reply text arrived reported no usage: it costs nothing here.
    if (!settled) settle(streamed ? prompt + (static_cast<std::int64_t>(streamed) + 3) / 4 : 0);
  }
  void settle(std::int64_t used) {
    budget->reserved_ -= reserved;
    budget->tokens_ += used;
    settled = true;
  }
  /// The reply's usage; a provider that reports none (some streams) is charged the estimate.
  void settle(const net::ChatResponse& reply) {
    const auto& u = reply.usage;
    std::int64_t used = u.prompt_tokens + u.completion_tokens;
    if (used == 0) used = prompt + net::estimate_tokens(reply.content);
    settle(used);
  }
};

namespace {

// Counts the streamed bytes for the ticket, then hands them on.
struct StreamTap {
  std::function<void(std::string_view)> inner;
  std::size_t* bytes;
  void operator()(std::string_view piece) const {
    *bytes += piece.size();
    if (inner) inner(piece);
  }
};

}  // namespace

double Budget::elapsed_ms() const {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - epoch_).count();
}

net::LlmError Budget::refuse(std::string message) {
  if (!exceeded_) exceeded_ = message;
  net::LlmError e;
  e.code = net::make_error_code(net::NetErrc::budget_exceeded);
  e.message = std::move(message);
  return e;
}

bool Budget::stop_wall() {
  if (wall_stopped_) return false;
  wall_stopped_ = true;
  const bool first = !exceeded_;
  if (first)
    exceeded_ = "budget exceeded: limits.max_wall_ms: " + std::to_string(static_cast<std::int64_t>(elapsed_ms())) +
                " of " + std::to_string(limits_.max_wall_ms) + " ms";
  return first;
}

std::optional<net::LlmError> Budget::admit(const net::ChatRequest& request, std::int64_t& reserved) {
  if (limits_.max_wall_ms > 0) {
    const double elapsed = elapsed_ms();
    if (wall_stopped_ || elapsed >= static_cast<double>(limits_.max_wall_ms))
      return refuse("budget exceeded: limits.max_wall_ms: " + std::to_string(static_cast<std::int64_t>(elapsed)) +
                    " of " + std::to_string(limits_.max_wall_ms) + " ms");
  }
  if (limits_.max_llm_calls > 0 && calls_ >= limits_.max_llm_calls)
    return refuse("budget exceeded: limits.max_llm_calls: " + std::to_string(calls_) + " of " +
                  std::to_string(limits_.max_llm_calls) + " calls");
  reserved = 0;
  if (limits_.max_tokens > 0) {
    // A call reserves its prompt and the most it may answer (its max_tokens); the planner's calls
    // without max_tokens reserve their prompt only.
    reserved = prompt_estimate(request) + request.max_tokens.value_or(0);
    if (tokens_ >= limits_.max_tokens)
      return refuse("budget exceeded: limits.max_tokens: " + std::to_string(tokens_) + " of " +
                    std::to_string(limits_.max_tokens) + " tokens");
    if (tokens_ + reserved_ + reserved > limits_.max_tokens)
      return refuse("budget exceeded: limits.max_tokens: " + std::to_string(tokens_) + " of " +
                    std::to_string(limits_.max_tokens) + " tokens (the call needs up to " + std::to_string(reserved) +
                    " more" + (reserved_ > 0 ? ", calls in flight hold " + std::to_string(reserved_) : std::string()) +
                    ")");
  }
  ++calls_;
  reserved_ += reserved;
  return std::nullopt;
}

asio::awaitable<net::LlmResult<net::ChatResponse>> Budget::chat(net::ChatRequest request) {
  std::int64_t reserved = 0;
  if (auto refused = admit(request, reserved)) co_return std::move(*refused);
  Ticket ticket(this, reserved, prompt_estimate(request));
  if (!request.meter) request.meter = meter_;
  auto reply = co_await inner_.chat(std::move(request));
  if (reply) ticket.settle(*reply);
  co_return reply;
}

asio::awaitable<net::LlmResult<net::ChatResponse>> Budget::chat_stream(net::ChatRequest request,
                                                                        std::function<void(std::string_view)> on_delta) {
  std::int64_t reserved = 0;
  if (auto refused = admit(request, reserved)) co_return std::move(*refused);
  Ticket ticket(this, reserved, prompt_estimate(request));
  // Why named: g++ 12 destroys a temporary with a destructor inside a co_await expression twice.
  std::function<void(std::string_view)> tap = StreamTap{std::move(on_delta), &ticket.streamed};
  if (!request.meter) request.meter = meter_;
  auto reply = co_await inner_.chat_stream(std::move(request), std::move(tap));
  if (reply) ticket.settle(*reply);
  co_return reply;
}

asio::awaitable<net::LlmResult<net::EmbedResponse>> Budget::embed(net::EmbedRequest request) {
  if (limits_.max_wall_ms > 0 && (wall_stopped_ || elapsed_ms() >= static_cast<double>(limits_.max_wall_ms)))
    co_return refuse("budget exceeded: limits.max_wall_ms: " + std::to_string(static_cast<std::int64_t>(elapsed_ms())) +
                     " of " + std::to_string(limits_.max_wall_ms) + " ms");
  if (!request.meter) request.meter = meter_;
  co_return co_await inner_.embed(std::move(request));
}

}  // namespace dagent::runtime
