#include "cli/live_view.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "cli/terminal_out.hpp"
#include "text/terminal.hpp"

namespace dagent::cli {

namespace {

constexpr std::size_t k_max_running_lines = 8;
constexpr std::size_t k_max_step_lines = 200;  // bigger plans print only failures line by line
constexpr auto k_redraw_interval = std::chrono::milliseconds(50);

const char* mark(StepStatus s) {
  switch (s) {
    case StepStatus::succeeded: return "ok  ";
    case StepStatus::failed: return "FAIL";
    case StepStatus::skipped: return "skip";
    case StepStatus::running: return "run ";
    default: return "    ";
  }
}

}  // namespace

void LiveView::start(const RunResult& skeleton) {
  std::size_t n = 0;
  for (const auto& level : skeleton.levels) n += level.size();
  total_ = n;
  done_ = failed_ = skipped_ = 0;
  seen_.clear();
  if (mode_ == Mode::quiet) return;
  clear_block();  // the planning phase's progress line, drawn before the plan was known
  if (skeleton.levels.empty()) {
    print_safe(out_, "run %s: task %s, steps start as the plan streams in\n", skeleton.run_id.c_str(),
                 skeleton.task.c_str());
  } else {
    print_safe(out_, "run %s: task %s, %zu steps in %zu levels\n", skeleton.run_id.c_str(), skeleton.task.c_str(),
                 total_, skeleton.levels.size());
  }
  std::fflush(out_);
}

void LiveView::on_planning(const PlanningEvent& ev) {
  if (ev.phase == PlanningPhase::plan_step) {
    ++total_;
    return;
  }
  if (ev.phase == PlanningPhase::synthesis && ev.finished && answering_) {
    answer_safe_.clear();
    answer_filter_.finish(answer_safe_);
    answer_safe_ += '\n';
    std::fwrite(answer_safe_.data(), 1, answer_safe_.size(), answer_out_);
    std::fflush(answer_out_);
    answering_ = false;
  }
  if (mode_ == Mode::quiet) return;
  if (!ev.finished && ev.phase != PlanningPhase::planning && ev.phase != PlanningPhase::repair &&
      ev.phase != PlanningPhase::replan)
    return;  // the start of a short phase says nothing its end does not
  clear_block();
  std::string name(to_string(ev.phase));
  print_safe(out_, "[%9.1f ms] plan %s %s%s%.*s\n", ev.at_ms, name.c_str(), ev.finished ? "done" : "started",
               ev.detail.empty() ? "" : ": ", static_cast<int>(ev.detail.size()), ev.detail.data());
  redraw(ev.at_ms, true);
}

void LiveView::on_answer(std::string_view piece) {
  if (!answering_) {
    clear_block();
    if (answer_out_ == out_ || mode_ != Mode::quiet) std::fprintf(out_, "answer:\n");
    std::fflush(out_);
    answering_ = true;
  }
  answer_safe_.clear();
  answer_filter_.feed(piece, answer_safe_);
  std::fwrite(answer_safe_.data(), 1, answer_safe_.size(), answer_out_);
  std::fflush(answer_out_);
}

void LiveView::on_item(const StepEvent& ev) {
  auto it = running_.find(ev.step_id);
  if (it == running_.end()) return;
  auto& r = it->second;
  const bool progressed = ev.items_done != r.items_done;
  r.items = ev.items;
  r.items_done = ev.items_done;
  r.items_failed = ev.items_failed;
  if (mode_ == Mode::quiet) return;
  if (ev.status == StepStatus::failed) {
    clear_block();
    print_safe(out_, "[%9.1f ms] %s step %d %.*s item %d: failed: %.*s\n", ev.at_ms, mark(ev.status), ev.step_id,
               static_cast<int>(ev.action.size()), ev.action.data(), ev.item, static_cast<int>(ev.message.size()),
               ev.message.data());
    redraw(ev.at_ms, true);
    return;
  }
  // Plain lines: a progress line each tenth of the items, not one per item.
  const int tenth = std::max(1, r.items / 10);
  if (mode_ == Mode::lines && progressed && (r.items_done % tenth == 0 || r.items_done == r.items)) {
    print_safe(out_, "[%9.1f ms]      step %d %s ×%d: %d/%d done, %d failed\n", ev.at_ms, ev.step_id, r.action.c_str(),
               r.items, r.items_done, r.items, r.items_failed);
    std::fflush(out_);
    return;
  }
  redraw(ev.at_ms, false);
}

void LiveView::on_event(const StepEvent& ev) {
  if (ev.item >= 0) {
    on_item(ev);
    return;
  }
  const bool terminal = ev.status == StepStatus::succeeded || ev.status == StepStatus::failed ||
                        ev.status == StepStatus::skipped;
  const bool verdict_only = terminal && ev.status == StepStatus::succeeded && !running_.contains(ev.step_id) &&
                            ev.verification != VerificationStatus::pending;
  if (seen_.insert(ev.step_id).second && seen_.size() > total_) total_ = seen_.size();
  if (ev.status == StepStatus::running) {
    // A step already running reports progress (an MCP server's notifications/progress, shown
    // beside it; its start time stays) or, for for_each, how many of its items have finished.
    auto [at, fresh] = running_.try_emplace(ev.step_id, Running{text::for_terminal(ev.action), ev.at_ms, {}});  // redraw() prints it raw
    at->second.items = ev.items;
    at->second.items_done = ev.items_done;
    at->second.items_failed = ev.items_failed;
    if (!fresh && ev.message.empty()) {  // the same step again: its list is known now
      redraw(ev.at_ms, false);
      return;
    }
    if (!fresh) at->second.note = text::for_terminal(ev.message);
  } else if (terminal && !verdict_only) {
    running_.erase(ev.step_id);
    ++done_;
    if (ev.status == StepStatus::failed) ++failed_;
    if (ev.status == StepStatus::skipped) ++skipped_;
  }

  if (mode_ == Mode::quiet) return;
  const bool interesting = ev.status == StepStatus::failed ||
                           (verdict_only && ev.verification == VerificationStatus::failed);
  const bool print_line = mode_ == Mode::lines ? true : (terminal && (total_ <= k_max_step_lines || interesting));
  if (print_line && (mode_ == Mode::lines || ev.status != StepStatus::running)) {
    clear_block();
    std::string detail;
    if (verdict_only) {
      detail = std::string("verification ") + std::string(to_string(ev.verification));
    } else {
      detail = std::string(to_string(ev.status));
      if (ev.attempt > 1) detail += " (attempt " + std::to_string(ev.attempt) + ")";
    }
    if (ev.items >= 0 && ev.status != StepStatus::running)
      detail += " (×" + std::to_string(ev.items) + ", " + std::to_string(ev.items_failed) + " failed)";
    if (!ev.message.empty()) detail += ": " + std::string(ev.message);
    print_safe(out_, "[%9.1f ms] %s step %d %.*s: %s\n", ev.at_ms, verdict_only ? "    " : mark(ev.status),
                 ev.step_id, static_cast<int>(ev.action.size()), ev.action.data(), detail.c_str());
    redraw(ev.at_ms, true);
  } else {
    redraw(ev.at_ms, false);
  }
}

void LiveView::clear_block() {
  if (mode_ != Mode::terminal || drawn_lines_ == 0 || held_) return;
  std::fprintf(out_, "\x1b[%dF\x1b[J", drawn_lines_);
  drawn_lines_ = 0;
}

void LiveView::redraw(double now_ms, bool force) {
  if (mode_ != Mode::terminal || held_) {  // paused: no cursor movement among held lines
    std::fflush(out_);
    return;
  }
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < k_redraw_interval) return;
  last_draw_ = now;
  clear_block();
  std::size_t shown = 0;
  for (const auto& [id, r] : running_) {
    if (shown == k_max_running_lines) break;
    const char* gap = r.note.empty() ? "" : "  ";
    if (r.items >= 0) {
      std::fprintf(out_, "  \x1b[36mrunning\x1b[0m step %d %s ×%d: %d/%d done, %d failed  %.0f ms%s%s\n", id,
                   r.action.c_str(), r.items, r.items_done, r.items, r.items_failed, now_ms - r.since_ms, gap,
                   r.note.c_str());
    } else {
      std::fprintf(out_, "  \x1b[36mrunning\x1b[0m step %d %s  %.0f ms%s%s\n", id, r.action.c_str(),
                   now_ms - r.since_ms, gap, r.note.c_str());
    }
    ++shown;
  }
  if (running_.size() > shown) {
    std::fprintf(out_, "  … and %zu more running\n", running_.size() - shown);
    ++shown;
  }
  std::fprintf(out_, "  [%zu/%zu] %zu running, %zu failed, %zu skipped\n", done_, total_, running_.size(), failed_,
               skipped_);
  drawn_lines_ = static_cast<int>(shown) + 1;
  std::fflush(out_);
}

void LiveView::finish(const RunResult& r) {
  clear_block();
  std::size_t ok = 0, failed = 0, skipped = 0, unverified = 0;
  for (const auto& s : r.steps) {
    ok += s.status == StepStatus::succeeded;
    failed += s.status == StepStatus::failed;
    skipped += s.status == StepStatus::skipped;
    unverified += s.verification == VerificationStatus::failed;
  }
  if (mode_ != Mode::quiet || r.status != RunStatus::succeeded) {
    for (const auto& s : r.steps) {
      if (s.status == StepStatus::failed)
        print_safe(out_, "  step %d %s failed: %s\n", s.id, s.action.c_str(), s.error.c_str());
      else if (s.verification == VerificationStatus::failed)
        print_safe(out_, "  step %d %s failed verification: %s\n", s.id, s.action.c_str(),
                     s.verification_reason.c_str());
    }
  }
  print_safe(out_, "%s %s: %zu succeeded, %zu failed, %zu skipped", r.task.c_str(),
               r.status == RunStatus::succeeded ? "succeeded" : (r.interrupted ? "interrupted" : "failed"), ok, failed,
               skipped);
  if (unverified) std::fprintf(out_, ", %zu failed verification", unverified);
  std::fprintf(out_, " in %.1f ms (at most %d steps at once)\n", r.metrics.wall_ms, r.metrics.max_concurrent_steps);
  std::fflush(out_);
}

void LiveView::pause() {
  if (held_) return;
  clear_block();
  std::fflush(out_);
  std::FILE* memory = ::open_memstream(&held_text_, &held_size_);
  if (!memory) return;  // nothing held: progress goes on printing
  held_ = out_;
  out_ = memory;
  if (answer_out_ == held_) answer_out_ = memory;
}

void LiveView::resume() {
  if (!held_) return;
  std::FILE* memory = out_;
  out_ = held_;
  if (answer_out_ == memory) answer_out_ = held_;
  held_ = nullptr;
  std::fclose(memory);
  if (held_size_ > 0) std::fwrite(held_text_, 1, held_size_, out_);
  std::free(held_text_);
  held_text_ = nullptr;
  held_size_ = 0;
  std::fflush(out_);  // the block comes back with the next event
}

}  // namespace dagent::cli
