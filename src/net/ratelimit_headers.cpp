#include "net/ratelimit_headers.hpp"

#include <charconv>
#include <cmath>
#include <string>

namespace dagent::net {

namespace {

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

}  // namespace

// One pass over the headers, each of the six read from its first occurrence (as find_header
// would find it). Why not a find_header per name: building the six names and scanning the
// headers six times cost some 2 k instructions per response, most responses having none.
RateLimitHeaders read_ratelimit_headers(const std::vector<Header>& headers) {
  constexpr std::string_view k_prefix = "x-ratelimit-";
  enum Kind { limit, remaining, reset };
  RateLimitHeaders out;
  bool seen[2][3] = {};
  for (const auto& h : headers) {
    std::string_view name = h.name;
    if (!name.starts_with(k_prefix)) continue;
    name.remove_prefix(k_prefix.size());
    Kind kind;
    if (name.starts_with("limit-")) kind = limit, name.remove_prefix(6);
    else if (name.starts_with("remaining-")) kind = remaining, name.remove_prefix(10);
    else if (name.starts_with("reset-")) kind = reset, name.remove_prefix(6);
    else continue;
    const int dimension = name == "requests" ? 0 : name == "tokens" ? 1 : -1;
    if (dimension < 0 || seen[dimension][kind]) continue;
    seen[dimension][kind] = true;
    RateLimitReading& reading = dimension == 0 ? out.requests : out.tokens;
    if (kind == limit) reading.limit = parse_remaining(h.value);
    else if (kind == remaining) reading.remaining = parse_remaining(h.value);
    else reading.reset = parse_reset(h.value);
  }
  return out;
}

std::optional<double> parse_remaining(std::string_view header_value) {
  const std::string_view number = trim(header_value);
  if (number.empty()) return std::nullopt;
  double value = 0.0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc{} || end != number.data() + number.size()) return std::nullopt;
  if (!std::isfinite(value) || value < 0.0) return std::nullopt;
  return value;
}

std::optional<std::chrono::nanoseconds> parse_reset(std::string_view header_value) {
  constexpr double k_max_seconds = 86400.0;
  std::string_view rest = trim(header_value);
  if (rest.empty()) return std::nullopt;
  double seconds = 0.0;
  bool any_unit = false;
  // Units must come in order h, m, s, ms, each at most once (Go's time.Duration.String()).
  int last_rank = -1;
  while (!rest.empty()) {
    double value = 0.0;
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), value, std::chars_format::fixed);
    if (ec != std::errc{} || !std::isfinite(value) || value < 0.0 || rest.front() == '-' || rest.front() == '+')
      return std::nullopt;
    rest.remove_prefix(static_cast<std::size_t>(end - rest.data()));
    if (rest.empty()) {
      if (any_unit) return std::nullopt;  // "1m30" is ambiguous
      seconds = value;                    // plain seconds
      break;
    }
    double scale = 0.0;
    int rank = 0;
    if (rest.starts_with("ms")) scale = 0.001, rank = 3, rest.remove_prefix(2);
    else if (rest.starts_with("h")) scale = 3600.0, rank = 0, rest.remove_prefix(1);
    else if (rest.starts_with("m")) scale = 60.0, rank = 1, rest.remove_prefix(1);
    else if (rest.starts_with("s")) scale = 1.0, rank = 2, rest.remove_prefix(1);
    else return std::nullopt;
    if (rank <= last_rank) return std::nullopt;
    last_rank = rank;
    any_unit = true;
    seconds += value * scale;
  }
  if (!(seconds <= k_max_seconds)) return std::nullopt;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(std::llround(seconds * 1e9)));
}

}  // namespace dagent::net
