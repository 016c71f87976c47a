#include "planner/keyword_router.hpp"

#include <algorithm>
#include <limits>
#include <utility>

namespace dagent::planner {

namespace {

constexpr std::uint32_t k_root = 0;
constexpr std::uint32_t k_absent = std::numeric_limits<std::uint32_t>::max();

unsigned char fold(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return u >= 'A' && u <= 'Z' ? static_cast<unsigned char>(u - 'A' + 'a') : u;
}

bool is_word_byte(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u == '_';
}

/// A keyword spelled by trie state `state`, before owners are grouped by state.
struct Terminal {
  std::uint32_t state;
  std::uint32_t route;
  std::uint32_t keyword;
};

}  // namespace

KeywordRouter::KeywordRouter(std::vector<KeywordRoute> routes) : routes_(std::move(routes)) {
  for (const auto& route : routes_)
    for (const auto& keyword : route.keywords)
      for (const char c : keyword) {
        auto& cls = byte_class_[fold(c)];
        if (cls == 0) cls = static_cast<std::uint8_t>(class_count_++);  // at most 230 folded bytes
      }
  for (unsigned char c = 'A'; c <= 'Z'; ++c) byte_class_[c] = byte_class_[c - 'A' + 'a'];

  // Trie: goto edges in next_, k_absent where there is none yet.
  next_.assign(class_count_, k_absent);
  depth_.assign(1, 0);
  std::vector<Terminal> terminals;
  for (std::size_t r = 0; r < routes_.size(); ++r) {
    const auto& keywords = routes_[r].keywords;
    for (std::size_t k = 0; k < keywords.size(); ++k) {
      if (keywords[k].empty()) continue;
      std::uint32_t state = k_root;
      for (const char c : keywords[k]) {
        const std::size_t edge = state * class_count_ + byte_class_[static_cast<unsigned char>(c)];
        if (next_[edge] == k_absent) {
          next_[edge] = static_cast<std::uint32_t>(depth_.size());
          depth_.push_back(depth_[state] + 1);
          next_.resize(next_.size() + class_count_, k_absent);
        }
        state = next_[edge];
      }
      terminals.push_back({state, static_cast<std::uint32_t>(r), static_cast<std::uint32_t>(k)});
    }
  }
  const std::size_t state_count = depth_.size();

  // Owners grouped by state. Stable: within a state, (route, keyword) stay in config order, so
  // unique() keeps the first spelling of a keyword a route lists twice in different cases.
  std::stable_sort(terminals.begin(), terminals.end(),
                   [](const Terminal& a, const Terminal& b) { return a.state < b.state; });
  terminals.erase(std::unique(terminals.begin(), terminals.end(),
                              [](const Terminal& a, const Terminal& b) {
                                return a.state == b.state && a.route == b.route;
                              }),
                  terminals.end());
  owner_begin_.assign(state_count + 1, 0);
  owners_.reserve(terminals.size());
  for (const auto& t : terminals) {
    ++owner_begin_[t.state + 1];
    owners_.push_back({t.route, t.keyword});
  }
  for (std::size_t s = 0; s < state_count; ++s) owner_begin_[s + 1] += owner_begin_[s];

  // BFS by depth: a state's failure target is shallower, so its row is already complete when
  // the state's own missing edges are filled from it.
  const auto has_owners = [this](std::uint32_t s) { return owner_begin_[s] != owner_begin_[s + 1]; };
  std::vector<std::uint32_t> fail(state_count, k_root);
  dict_link_.assign(state_count, k_root);
  std::vector<std::uint32_t> queue;
  queue.reserve(state_count);
  for (std::size_t c = 0; c < class_count_; ++c) {
    auto& target = next_[c];
    if (target == k_absent)
      target = k_root;
    else
      queue.push_back(target);
  }
  for (std::size_t head = 0; head < queue.size(); ++head) {
    const std::uint32_t s = queue[head];
    for (std::size_t c = 0; c < class_count_; ++c) {
      const std::uint32_t via_fail = next_[fail[s] * class_count_ + c];
      auto& target = next_[s * class_count_ + c];
      if (target == k_absent) {
        target = via_fail;
        continue;
      }
      fail[target] = via_fail;
      dict_link_[target] = has_owners(via_fail) ? via_fail : dict_link_[via_fail];
      queue.push_back(target);
    }
  }
}

std::optional<RouteMatch> KeywordRouter::match(std::string_view goal) const {
  std::vector<unsigned char> seen;         // per state; sized at the first hit
  std::vector<std::uint32_t> hit_states;   // distinct states hit, in order of first hit
  std::uint32_t state = k_root;
  for (std::size_t i = 0; i < goal.size(); ++i) {
    state = next_[state * class_count_ + byte_class_[static_cast<unsigned char>(goal[i])]];
    // A word byte next fails the right boundary of every hit ending here.
    if (i + 1 < goal.size() && is_word_byte(goal[i + 1])) continue;
    const bool own = owner_begin_[state] != owner_begin_[state + 1];
    for (std::uint32_t s = own ? state : dict_link_[state]; s != k_root; s = dict_link_[s]) {
      const std::size_t start = i + 1 - depth_[s];
      if (start > 0 && is_word_byte(goal[start - 1])) continue;
      if (seen.empty()) seen.assign(depth_.size(), 0);
      if (seen[s] != 0) continue;
      seen[s] = 1;
      hit_states.push_back(s);
    }
  }
  if (hit_states.empty()) return std::nullopt;

  std::vector<std::size_t> counts(routes_.size(), 0);
  for (const std::uint32_t s : hit_states)
    for (std::uint32_t o = owner_begin_[s]; o < owner_begin_[s + 1]; ++o) ++counts[owners_[o].route];
  const auto best = static_cast<std::size_t>(
      std::max_element(counts.begin(), counts.end()) - counts.begin());  // first maximum: the earlier route

  RouteMatch result{best, {}};
  result.keywords.reserve(counts[best]);
  for (const std::uint32_t s : hit_states)
    for (std::uint32_t o = owner_begin_[s]; o < owner_begin_[s + 1]; ++o)
      if (owners_[o].route == best) result.keywords.push_back(routes_[best].keywords[owners_[o].keyword]);
  return result;
}

const std::vector<KeywordRoute>& KeywordRouter::routes() const noexcept { return routes_; }

}  // namespace dagent::planner
