#pragma once
// Keyword routing for goals: every keyword of every route found in one pass (Aho–Corasick).

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dagent::planner {

/// One route from config: a name and its trigger keywords.
struct KeywordRoute {
  std::string name;
  std::vector<std::string> keywords;  ///< may contain spaces ("pull request"); empty ones are ignored
};

/// The route chosen for a goal and the keywords that hit.
struct RouteMatch {
  std::size_t route;                   ///< index into KeywordRouter::routes()
  std::vector<std::string> keywords;   ///< as written in config, deduplicated, in order of first hit

  /// Field-by-field equality.
  friend bool operator==(const RouteMatch&, const RouteMatch&) = default;
};

/// Matches goals against the keywords of a fixed set of routes. Matching is ASCII
/// case-insensitive and on word boundaries: the bytes just before and after a hit must not be
/// ASCII alphanumeric or '_', so "log" does not hit "catalog". Keywords of one route that are
/// equal ignoring case are one keyword (reported as first written); a keyword in two routes
/// counts for both. Immutable after construction, so match() may run concurrently.
class KeywordRouter {
 public:
  /// Builds the automaton over all non-empty keywords of `routes`.
  explicit KeywordRouter(std::vector<KeywordRoute> routes);

  /// The route with the most distinct keyword hits in `goal` (ties: the earlier route), or
  /// nullopt when nothing hits. Keywords are ordered by where their first hit ends (at the same
  /// end, the longer first). One pass over `goal`, O(goal length + hits); if anything hits,
  /// also O(states + routes) for per-call tables. Allocates nothing when nothing hits.
  std::optional<RouteMatch> match(std::string_view goal) const;

  /// The routes as given to the constructor.
  const std::vector<KeywordRoute>& routes() const noexcept;

 private:
  /// A keyword ending at some automaton state: its route and its index in that route.
  struct Owner {
    std::uint32_t route;
    std::uint32_t keyword;
  };

  std::vector<KeywordRoute> routes_;
  // Bytes folded to classes (0: in no keyword; 'A' shares 'a''s class) so the dense transition
  // table costs states x classes, not states x 256, while a step stays one lookup.
  std::array<std::uint8_t, 256> byte_class_{};
  std::size_t class_count_ = 1;
  /// Complete transitions (goto edges, failure edges folded in): next_[s * class_count_ + c].
  std::vector<std::uint32_t> next_;
  /// Per state: the length of the string it spells.
  std::vector<std::uint32_t> depth_;
  /// Per state: the nearest proper-suffix state that has owners, or the root (0).
  std::vector<std::uint32_t> dict_link_;
  /// Per state, plus one: the owners of state s are owners_[owner_begin_[s], owner_begin_[s + 1]).
  std::vector<std::uint32_t> owner_begin_;
  /// Grouped by state; routes ascending within a state, one owner per (state, route).
  std::vector<Owner> owners_;
};

}  // namespace dagent::planner
