// GlobPattern: shell-style matching of workspace paths, name by name.

#include "tools/glob_pattern.hpp"

#include <cstddef>
#include <utility>

namespace dagent::tools {
namespace {

constexpr std::string_view k_any_depth = "**";

bool has_wildcard(std::string_view name) { return name.find_first_of("*?[") != std::string_view::npos; }

bool is_hidden(std::string_view name) { return !name.empty() && name.front() == '.'; }

// Bytes in the UTF-8 sequence that starts with `lead` (1 for a stray continuation byte).
std::size_t sequence_length(unsigned char lead) {
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

struct ClassMatch {
  bool well_formed = false;  // a `[` without its `]` is an ordinary character
  bool matched = false;
  std::size_t next = 0;  // the pattern position after the closing `]`
};

ClassMatch match_class(std::string_view pattern, std::size_t open, char c) {
  std::size_t i = open + 1;
  bool negate = false;
  if (i < pattern.size() && (pattern[i] == '!' || pattern[i] == '^')) {
    negate = true;
    ++i;
  }
  bool matched = false;
  bool first = true;
  const auto byte = static_cast<unsigned char>(c);
  while (i < pattern.size() && (pattern[i] != ']' || first)) {
    first = false;
    const auto low = static_cast<unsigned char>(pattern[i]);
    if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
      const auto high = static_cast<unsigned char>(pattern[i + 2]);
      matched = matched || (low <= byte && byte <= high);
      i += 3;
    } else {
      matched = matched || low == byte;
      ++i;
    }
  }
  if (i >= pattern.size()) return {};
  return {true, matched != negate, i + 1};
}

}  // namespace

boost::system::result<GlobPattern, ToolError> GlobPattern::parse(std::string_view pattern) {
  if (pattern.find('\0') != std::string_view::npos) {
    return ToolError{ToolErrc::outside_workspace, "pattern contains a NUL byte"};
  }
  if (pattern.empty()) return ToolError{ToolErrc::invalid_parameters, "pattern is empty"};
  if (pattern.front() == '/') {
    return ToolError{ToolErrc::outside_workspace, "absolute pattern '" + std::string(pattern) + "' is not allowed"};
  }
  std::vector<std::string> names;
  std::size_t start = 0;
  while (start <= pattern.size()) {
    std::size_t end = pattern.find('/', start);
    if (end == std::string_view::npos) end = pattern.size();
    const std::string_view name = pattern.substr(start, end - start);
    const bool repeated_any_depth = name == k_any_depth && !names.empty() && names.back() == k_any_depth;
    if (!name.empty() && name != "." && !repeated_any_depth) names.emplace_back(name);
    start = end + 1;
  }
  if (names.empty()) {
    return ToolError{ToolErrc::invalid_parameters, "pattern '" + std::string(pattern) + "' names no file"};
  }

  std::size_t literal = 0;
  while (literal + 1 < names.size() && !has_wildcard(names[literal])) ++literal;
  std::string base;
  for (std::size_t i = 0; i < literal; ++i) {
    if (!base.empty()) base += '/';
    base += names[i];
  }
  if (base.empty()) base = ".";
  std::vector<std::string> rest(names.begin() + static_cast<std::ptrdiff_t>(literal), names.end());
  for (const auto& name : rest) {
    if (name == "..") {
      return ToolError{ToolErrc::invalid_parameters,
                       "pattern '" + std::string(pattern) + "': '..' may only appear in its leading folder part"};
    }
  }
  return GlobPattern(std::move(base), std::move(rest));
}

bool GlobPattern::matches(std::span<const std::string> names) const { return match_from(0, names, false); }

bool GlobPattern::may_match_below(std::span<const std::string> names) const { return match_from(0, names, true); }

bool GlobPattern::match_from(std::size_t index, std::span<const std::string> names, bool below) const {
  if (names.empty()) {
    if (below) return index < rest_.size();
    while (index < rest_.size() && rest_[index] == k_any_depth) ++index;
    return index == rest_.size();
  }
  if (index == rest_.size()) return false;
  if (rest_[index] == k_any_depth) {
    if (match_from(index + 1, names, below)) return true;
    return !is_hidden(names.front()) && match_from(index, names.subspan(1), below);
  }
  return match_name(rest_[index], names.front()) && match_from(index + 1, names.subspan(1), below);
}

bool GlobPattern::match_name(std::string_view pattern, std::string_view name) {
  if (is_hidden(name) && !is_hidden(pattern)) return false;
  std::size_t p = 0;
  std::size_t n = 0;
  std::size_t star_p = std::string_view::npos;  // resume points of the last `*`
  std::size_t star_n = 0;
  while (n < name.size()) {
    if (p < pattern.size()) {
      const char c = pattern[p];
      if (c == '*') {
        star_p = ++p;
        star_n = n;
        continue;
      }
      if (c == '?') {
        ++p;
        n += sequence_length(static_cast<unsigned char>(name[n]));
        continue;
      }
      if (c == '[') {
        const ClassMatch klass = match_class(pattern, p, name[n]);
        if (klass.well_formed) {
          if (klass.matched) {
            p = klass.next;
            ++n;
            continue;
          }
        } else if (name[n] == '[') {
          ++p;
          ++n;
          continue;
        }
      } else if (c == name[n]) {
        ++p;
        ++n;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p;
    n = ++star_n;
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace dagent::tools
