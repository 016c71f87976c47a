#include "rate_window.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace dagent::test_server {

namespace {

std::chrono::milliseconds ceil_millis(RateWindow::Clock::duration d) {
  return std::max(std::chrono::ceil<std::chrono::milliseconds>(d), std::chrono::milliseconds(0));
}

std::string trim_decimals(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", seconds);
  std::string s = text;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

std::string format_reset(std::chrono::milliseconds duration) {
  const auto ms = duration.count();
  if (ms < 1000) return std::to_string(ms) + "ms";
  if (ms < 60'000) return trim_decimals(static_cast<double>(ms) / 1000) + "s";
  return std::to_string(ms / 60'000) + "m" + trim_decimals(static_cast<double>(ms % 60'000) / 1000) + "s";
}

void RateWindow::expire(Clock::time_point now) {
  while (!entries_.empty() && now - entries_.front().at >= limits_.period) {
    tokens_in_window_ -= entries_.front().tokens;
    entries_.pop_front();
  }
}

void RateWindow::clear() {
  entries_.clear();
  tokens_in_window_ = 0;
  bucket_started_ = false;
}

void RateWindow::refill(Clock::time_point now) {
  if (!bucket_started_) {
    bucket_started_ = true;
    request_level_ = static_cast<double>(limits_.requests_per_minute);
    token_level_ = static_cast<double>(limits_.tokens_per_minute);
    updated_ = now;
    return;
  }
  if (now <= updated_) return;
  const double periods = std::chrono::duration<double>(now - updated_) / std::chrono::duration<double>(limits_.period);
  const auto rpm = static_cast<double>(limits_.requests_per_minute), tpm = static_cast<double>(limits_.tokens_per_minute);
  request_level_ = std::min(rpm, request_level_ + rpm * periods);
  token_level_ = std::min(tpm, token_level_ + tpm * periods);
  updated_ = now;
}

RateDecision RateWindow::admit_bucket(std::int64_t tokens, Clock::time_point now) {
  refill(now);
  RateDecision decision;
  const std::int64_t rpm = limits_.requests_per_minute, tpm = limits_.tokens_per_minute;
  const bool requests_short = rpm > 0 && request_level_ < 1.0;
  const bool tokens_short = tpm > 0 && token_level_ < static_cast<double>(tokens);
  if (!requests_short && !tokens_short) {
    request_level_ -= 1.0;
    token_level_ -= static_cast<double>(tokens);
    decision.headers = bucket_headers();
    return decision;
  }
  // The wait is until the refill covers the shortfall (a request above the capacity never fits).
  const auto per_unit = [this](double missing, std::int64_t limit) {
    const auto wait = std::chrono::duration<double>(limits_.period) * (missing / static_cast<double>(limit));
    return std::chrono::ceil<std::chrono::milliseconds>(wait);
  };
  std::chrono::milliseconds wait{0};
  if (requests_short) wait = std::max(wait, per_unit(1.0 - request_level_, rpm));
  if (tokens_short)
    wait = std::max(wait, tokens > tpm ? std::chrono::milliseconds(limits_.period)
                                       : per_unit(static_cast<double>(tokens) - token_level_, tpm));
  decision.verdict = requests_short ? RateVerdict::requests_exceeded : RateVerdict::tokens_exceeded;
  decision.retry_after = wait;
  decision.headers = bucket_headers();
  return decision;
}

HeaderList RateWindow::bucket_headers() const {
  HeaderList out;
  // "reset" is when the bucket is full again, OpenAI's reading ("12ms" after a single call).
  auto add = [&](const char* dimension, std::int64_t limit, double level) {
    if (limit <= 0) return;
    const auto reset = std::chrono::ceil<std::chrono::milliseconds>(
        std::chrono::duration<double>(limits_.period) * std::max(0.0, (static_cast<double>(limit) - level) / static_cast<double>(limit)));
    out.emplace_back(std::string("x-ratelimit-limit-") + dimension, std::to_string(limit));
    out.emplace_back(std::string("x-ratelimit-remaining-") + dimension,
                     std::to_string(static_cast<std::int64_t>(std::max(0.0, std::floor(level)))));
    out.emplace_back(std::string("x-ratelimit-reset-") + dimension, format_reset(reset));
  };
  add("requests", limits_.requests_per_minute, request_level_);
  add("tokens", limits_.tokens_per_minute, token_level_);
  return out;
}

RateDecision RateWindow::admit(std::int64_t tokens, Clock::time_point now) {
  if (limits_.model == RateModel::bucket) return admit_bucket(tokens, now);
  expire(now);
  RateDecision decision;
  const std::int64_t rpm = limits_.requests_per_minute, tpm = limits_.tokens_per_minute;
  const bool requests_full = rpm > 0 && static_cast<std::int64_t>(entries_.size()) + 1 > rpm;
  const bool tokens_full = tpm > 0 && tokens_in_window_ + tokens > tpm;

  if (!requests_full && !tokens_full) {
    entries_.push_back(Entry{now, tokens});
    tokens_in_window_ += tokens;
    decision.headers = headers(now);
    return decision;
  }

  // The wait is until the oldest entries whose expiry frees enough budget have left the window.
  std::chrono::milliseconds wait{0};
  if (requests_full) {
    const auto& freeing = entries_[entries_.size() - static_cast<std::size_t>(rpm)];
    wait = std::max(wait, ceil_millis(freeing.at + limits_.period - now));
  }
  if (tokens_full) {
    if (tokens > tpm) {
      wait = std::max(wait, limits_.period);  // never fits; OpenAI still answers 429
    } else {
      std::int64_t remaining = tokens_in_window_;
      for (const Entry& entry : entries_) {
        remaining -= entry.tokens;
        if (remaining + tokens <= tpm) {
          wait = std::max(wait, ceil_millis(entry.at + limits_.period - now));
          break;
        }
      }
    }
  }
  decision.verdict = requests_full ? RateVerdict::requests_exceeded : RateVerdict::tokens_exceeded;
  decision.retry_after = wait;
  decision.headers = headers(now);
  return decision;
}

HeaderList RateWindow::headers(Clock::time_point now) const {
  HeaderList out;
  // "reset" is when the budget is back to its initial state: when the newest entry leaves.
  const auto reset = entries_.empty() ? std::chrono::milliseconds(0) : ceil_millis(entries_.back().at + limits_.period - now);
  if (limits_.requests_per_minute > 0) {
    out.emplace_back("x-ratelimit-limit-requests", std::to_string(limits_.requests_per_minute));
    out.emplace_back("x-ratelimit-remaining-requests",
                     std::to_string(std::max<std::int64_t>(0, limits_.requests_per_minute -
                                                                  static_cast<std::int64_t>(entries_.size()))));
    out.emplace_back("x-ratelimit-reset-requests", format_reset(reset));
  }
  if (limits_.tokens_per_minute > 0) {
    out.emplace_back("x-ratelimit-limit-tokens", std::to_string(limits_.tokens_per_minute));
    out.emplace_back("x-ratelimit-remaining-tokens",
                     std::to_string(std::max<std::int64_t>(0, limits_.tokens_per_minute - tokens_in_window_)));
    out.emplace_back("x-ratelimit-reset-tokens", format_reset(reset));
  }
  return out;
}

}  // namespace dagent::test_server
