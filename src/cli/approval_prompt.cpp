#include "cli/approval_prompt.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>
#include <boost/system/system_error.hpp>

#include "cli/live_view.hpp"
#include "cli/terminal_out.hpp"
#include "text/utf8.hpp"

namespace dagent::cli {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

constexpr std::size_t k_value_bytes = 400;     // of one parameter's JSON
constexpr std::size_t k_shown_parameters = 20;
constexpr std::size_t k_max_line = 4096;       // an answer longer than this is not an answer

std::string cut(std::string text, std::size_t max) {
  if (text.size() <= max) return text;
  const auto keep = text::utf8_cut(text, max);
  const auto more = text.size() - keep;
  text.resize(keep);
  return text + "… (" + std::to_string(more) + " more bytes)";
}

std::optional<ApprovalAnswer> answer_of(std::string line) {
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.pop_back();
  const auto first = line.find_first_not_of(" \t");
  line = first == std::string::npos ? std::string() : line.substr(first);
  for (auto& c : line) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (line == "y" || line == "yes") return ApprovalAnswer::allow;
  if (line == "n" || line == "no") return ApprovalAnswer::deny;
  if (line == "a" || line == "always") return ApprovalAnswer::allow_always;
  return std::nullopt;
}

}  // namespace

struct ApprovalPrompt::Impl {
  LiveView* view;
  std::FILE* out;
  int fd = -1;
  int restore_flags = -1;  // a dup of stdin shares its file status flags: put them back
  std::optional<asio::posix::stream_descriptor> in;
  std::string buffered;  // typed ahead: the next answers

  ~Impl() {
    if (in && in->is_open()) in->release();  // closed below
    if (restore_flags != -1) ::fcntl(fd, F_SETFL, restore_flags);
    if (fd != -1) ::close(fd);
  }

  // The terminal on stdin, as a file description of our own when its name is known (so making
  // it non-blocking cannot leak to the shell), else a duplicate whose flags are restored.
  void open(const asio::any_io_executor& ex) {
    if (in) return;
    if (const char* name = ::ttyname(STDIN_FILENO)) fd = ::open(name, O_RDONLY | O_NOCTTY | O_CLOEXEC);
    if (fd == -1) {
      fd = ::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
      if (fd != -1) restore_flags = ::fcntl(fd, F_GETFL);
    }
    in.emplace(ex);
    if (fd != -1) in->assign(fd);
  }
};

// Keeps the live view paused while asking; ends the prompt's line if it was left open.
struct Paused {
  ApprovalPrompt::Impl* impl;
  bool line_open = false;
  explicit Paused(ApprovalPrompt::Impl* i) : impl(i) { impl->view->pause(); }
  ~Paused() {
    if (line_open) std::fputs("\n", impl->out);
    std::fflush(impl->out);
    impl->view->resume();
  }
  Paused(const Paused&) = delete;
  Paused& operator=(const Paused&) = delete;
};

namespace {

// The next line typed, or nullopt at the end of input (Ctrl-D, a closed terminal). Throws when
// the run is interrupted meanwhile.
asio::awaitable<std::optional<std::string>> read_line(ApprovalPrompt::Impl* impl) {
  for (;;) {
    if (const auto nl = impl->buffered.find('\n'); nl != std::string::npos) {
      std::string line = impl->buffered.substr(0, nl);
      impl->buffered.erase(0, nl + 1);
      co_return line;
    }
    if (impl->buffered.size() > k_max_line) impl->buffered.clear();
    if (!impl->in->is_open()) co_return std::nullopt;
    char chunk[256];
    auto [ec, n] = co_await impl->in->async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable));
    const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none)
      throw boost::system::system_error(asio::error::operation_aborted);
    impl->buffered.append(chunk, n);
    if (ec && n == 0) co_return std::nullopt;  // EOF, or the terminal went away
  }
}

asio::awaitable<ApprovalDecision> ask(ApprovalPrompt::Impl* impl, ApprovalRequest request) {
  impl->open(co_await asio::this_coro::executor);
  Paused paused(impl);
  print_safe(impl->out, "\n%s", describe_request(request).c_str());
  ApprovalDecision decision;
  decision.given_by = "terminal";
  for (;;) {
    std::fputs("Allow? [y]es / [n]o / [a]lways for this run: ", impl->out);
    std::fflush(impl->out);
    paused.line_open = true;
    auto line = co_await read_line(impl);
    paused.line_open = false;  // the terminal echoed the newline
    if (!line) {
      std::fputs("\n", impl->out);
      decision.answer = ApprovalAnswer::deny;
      decision.reason = "no answer (end of input)";
      co_return decision;
    }
    if (auto answer = answer_of(std::move(*line))) {
      decision.answer = *answer;
      co_return decision;
    }
    std::fputs("Please answer y, n or a.\n", impl->out);
  }
}

}  // namespace

std::string describe_request(const ApprovalRequest& r) {
  std::string text = "approval needed (tools.approval: " + r.pattern + "): step " + std::to_string(r.step_id) + " " +
                     r.tool + "\n";
  std::size_t shown = 0;
  for (const auto& [key, value] : r.parameters) {
    if (shown++ == k_shown_parameters) {
      text += "  … and " + std::to_string(r.parameters.size() - k_shown_parameters) + " more parameters\n";
      break;
    }
    text += "  " + cut(std::string(key), 100) + ": " + cut(json::serialize(value), k_value_bytes) + "\n";
  }
  if (r.parameters.empty()) text += "  (no parameters)\n";
  return text;
}

ApprovalPrompt::ApprovalPrompt(LiveView& view, std::FILE* out) : impl_(std::make_unique<Impl>()) {
  impl_->view = &view;
  impl_->out = out;
}

ApprovalPrompt::~ApprovalPrompt() = default;

bool ApprovalPrompt::available() { return ::isatty(STDIN_FILENO) == 1 && ::isatty(STDERR_FILENO) == 1; }

asio::awaitable<ApprovalDecision> ApprovalPromptHook::operator()(const ApprovalRequest& request) const {
  return ask(prompt->impl_.get(), request);
}

}  // namespace dagent::cli
