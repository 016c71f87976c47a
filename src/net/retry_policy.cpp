#include "net/retry_policy.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string_view>

namespace dagent::net {
namespace {

constexpr double k_initial_delay_ms = 500.0;
constexpr double k_max_delay_ms = 8000.0;
constexpr double k_max_header_delay_ms = 60000.0;
constexpr int k_max_backoff_exponent = 5;

constexpr std::array<std::string_view, 7> k_day_names = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 12> k_month_names = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

// Like Python's float(): surrounding whitespace and a leading '+' are allowed, the rest must be
// one number ("inf", "nan" and numbers too large for a double parse, and are then out of
// range).
std::optional<double> parse_float(std::string_view text) {
  text = trim(text);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return std::nullopt;
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (end != text.data() + text.size()) return std::nullopt;
  if (ec == std::errc::result_out_of_range) return std::numeric_limits<double>::infinity();
  if (ec != std::errc()) return std::nullopt;
  return value;
}

std::optional<int> parse_digits(std::string_view text) {
  int value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

template <std::size_t N>
std::optional<int> index_of(const std::array<std::string_view, N>& names, std::string_view name) {
  const auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end()) return std::nullopt;
  return static_cast<int>(it - names.begin());
}

// IMF-fixdate (RFC 9110 5.6.7), e.g. "Sun, 06 Nov 1994 08:49:37 GMT". The day name must be a
// day name but is not checked against the date.
std::optional<std::chrono::system_clock::time_point> parse_imf_fixdate(std::string_view text) {
  text = trim(text);
  if (text.size() != 29 || text.substr(3, 2) != ", " || text[7] != ' ' || text[11] != ' ' || text[16] != ' ' ||
      text[19] != ':' || text[22] != ':' || text.substr(25) != " GMT") {
    return std::nullopt;
  }
  const auto day_name = index_of(k_day_names, text.substr(0, 3));
  const auto day = parse_digits(text.substr(5, 2));
  const auto month = index_of(k_month_names, text.substr(8, 3));
  const auto year = parse_digits(text.substr(12, 4));
  const auto hour = parse_digits(text.substr(17, 2));
  const auto minute = parse_digits(text.substr(20, 2));
  const auto second = parse_digits(text.substr(23, 2));
  if (!day_name || !day || !month || !year || !hour || !minute || !second) return std::nullopt;
  if (*hour > 23 || *minute > 59 || *second > 60) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year{*year}, std::chrono::month{static_cast<unsigned>(*month + 1)},
                                         std::chrono::day{static_cast<unsigned>(*day)}};
  if (!date.ok()) return std::nullopt;
  return std::chrono::sys_days{date} + std::chrono::hours{*hour} + std::chrono::minutes{*minute} +
         std::chrono::seconds{*second};
}

std::chrono::milliseconds round_ms(double ms) { return std::chrono::milliseconds{std::llround(ms)}; }

}  // namespace

RetryPolicy::RetryPolicy(int max_retries, std::function<double()> random01, Clock now)
    : max_retries_(std::max(max_retries, 0)), random01_(std::move(random01)), now_(std::move(now)) {
  if (!random01_ || !now_) throw std::invalid_argument("retry policy needs a random source and a clock");
}

RetryDecision RetryPolicy::decide(int retries_done, const AttemptOutcome& outcome) const {
  // Bytes of a stream already reached the caller: a new attempt would repeat them.
  if (outcome.stream_started || retries_done >= max_retries_ || !should_retry(outcome)) return {};
  return {true, delay(retries_done, outcome)};
}

bool RetryPolicy::should_retry(const AttemptOutcome& outcome) const {
  if (outcome.kind != AttemptOutcome::Kind::response) return true;
  if (outcome.x_should_retry == "true") return true;
  if (outcome.x_should_retry == "false") return false;
  const int status = outcome.status;
  return status == 408 || status == 409 || status == 429 || status >= 500;
}

std::chrono::milliseconds RetryPolicy::delay(int retries_done, const AttemptOutcome& outcome) const {
  if (outcome.kind == AttemptOutcome::Kind::response) {
    // As in the SDKs, the header that parses is the one used, even if its value is then out
    // of range: an out-of-range retry-after-ms does not fall back to retry-after.
    std::optional<double> header_ms;
    if (const auto ms = parse_float(outcome.retry_after_ms)) {
      header_ms = *ms;
    } else if (const auto seconds = parse_float(outcome.retry_after)) {
      header_ms = *seconds * 1000.0;
    } else if (const auto date = parse_imf_fixdate(outcome.retry_after)) {
      header_ms = std::chrono::duration<double, std::milli>(*date - now_()).count();
    }
    if (header_ms && *header_ms >= 0.0 && *header_ms <= k_max_header_delay_ms) return round_ms(*header_ms);
  }
  const int exponent = std::clamp(retries_done, 0, k_max_backoff_exponent);
  const double backoff_ms = std::min(std::ldexp(k_initial_delay_ms, exponent), k_max_delay_ms);
  double random = random01_();
  if (!(random >= 0.0)) random = 0.0;
  if (random > 1.0) random = 1.0;
  return round_ms(backoff_ms * (1.0 - 0.25 * random));
}

}  // namespace dagent::net
