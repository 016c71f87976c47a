#include "planner/results_digest.hpp"

#include <algorithm>
#include <numeric>

#include <boost/json/serialize.hpp>

namespace dagent::planner {
namespace {

namespace json = boost::json;

constexpr std::size_t k_chars_per_token = 4;
constexpr std::size_t k_min_string_cap = 32;

bool is_bookkeeping(std::string_view key) { return key == "usage" || key == "bytes"; }

// `v` without bookkeeping fields and with every string longer than `cap` cut, marked.
json::value trimmed(const json::value& v, std::size_t cap) {
  switch (v.kind()) {
    case json::kind::string: {
      const auto& s = v.get_string();
      if (s.size() <= cap) return v;
      std::string cut(s.data(), cap);
      while (!cut.empty() && (static_cast<unsigned char>(cut.back()) & 0xC0) == 0x80) cut.pop_back();  // UTF-8
      if (!cut.empty() && static_cast<unsigned char>(cut.back()) >= 0xC0) cut.pop_back();
      cut += "…[trimmed " + std::to_string(s.size() - cut.size()) + " chars]";
      return json::string(cut);
    }
    case json::kind::array: {
      json::array out;
      for (const auto& e : v.get_array()) out.push_back(trimmed(e, cap));
      return out;
    }
    case json::kind::object: {
      json::object out;
      for (const auto& [k, e] : v.get_object())
        if (!is_bookkeeping(k)) out.emplace(k, trimmed(e, cap));
      return out;
    }
    default:
      return v;
  }
}

std::size_t longest_string(const json::value& v) {
  switch (v.kind()) {
    case json::kind::string: return v.get_string().size();
    case json::kind::array: {
      std::size_t m = 0;
      for (const auto& e : v.get_array()) m = std::max(m, longest_string(e));
      return m;
    }
    case json::kind::object: {
      std::size_t m = 0;
      for (const auto& [k, e] : v.get_object()) m = std::max(m, longest_string(e));
      return m;
    }
    default: return 0;
  }
}

// The output rendered within `share` characters if cutting strings can get it there; `whole` is
// its rendering with nothing cut.
std::string render_within(const json::value& output, std::string whole, std::size_t share) {
  if (whole.size() <= share) return whole;
  std::size_t lo = k_min_string_cap, hi = longest_string(output);
  std::string best = json::serialize(trimmed(output, lo));
  while (lo < hi) {  // the largest string cap whose rendering fits
    const std::size_t mid = lo + (hi - lo + 1) / 2;
    std::string text = json::serialize(trimmed(output, mid));
    if (text.size() <= share) {
      lo = mid;
      best = std::move(text);
    } else {
      hi = mid - 1;
    }
  }
  return best;
}

}  // namespace

std::string digest_results(const std::vector<executor::StepResult>& steps, int budget_tokens) {
  std::vector<std::string> lines(steps.size());
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const auto& s = steps[i];
    std::string head = "step " + std::to_string(s.id) + " (" + s.action + ")";
    if (s.status == StepStatus::succeeded) {
      lines[i] = head + ": ";
      order.push_back(i);
    } else if (s.status == StepStatus::pending) {
      lines[i] = head + " did not run";
    } else {
      lines[i] = head + " " + std::string(to_string(s.status)) + ": " + s.error;
    }
  }
  // Smallest outputs first, so what they do not use goes to the larger ones.
  std::vector<std::string> whole(steps.size());
  for (auto i : order) whole[i] = json::serialize(trimmed(steps[i].output, longest_string(steps[i].output)));
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return whole[a].size() < whole[b].size(); });
  std::size_t fixed = 0;
  for (const auto& l : lines) fixed += l.size() + 1;
  const std::size_t budget = static_cast<std::size_t>(std::max(budget_tokens, 1)) * k_chars_per_token;
  std::size_t left = budget > fixed ? budget - fixed : 0;
  for (std::size_t k = 0; k < order.size(); ++k) {
    const auto i = order[k];
    const std::size_t share = left / (order.size() - k);
    std::string text = render_within(steps[i].output, std::move(whole[i]), share);
    left -= std::min(left, text.size());
    lines[i] += text;
  }
  std::string out;
  for (const auto& l : lines) {
    out += l;
    out += '\n';
  }
  if (!out.empty()) out.pop_back();
  return out;
}

}  // namespace dagent::planner
