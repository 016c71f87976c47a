#pragma once
// A configuration or task problem located by file, line and dotted key.

#include <string>
#include <vector>

#include <boost/assert/source_location.hpp>

namespace dagent::config {

/// One problem found while loading or validating configuration or a task.
struct Problem {
  std::string file;     ///< a path, or "--set" for overrides; may be empty
  int line = 0;         ///< 1-based; 0 when not known
  std::string key;      ///< dotted key such as `performance.rate_limiting.rpm_limit`; may be empty
  std::string message;

  /// Renders `FILE:LINE: KEY: MESSAGE`, leaving out the parts that are empty or 0.
  std::string to_string() const;
};

/// Every problem found by one load or validation, in the order found.
struct Problems {
  std::vector<Problem> items;

  /// One rendered problem per line, each ending in a newline.
  std::string to_string() const;
  /// Each problem rendered, in order.
  std::vector<std::string> lines() const;
};

/// Lets `boost::system::result<T, Problems>::value()` throw a std::runtime_error carrying the
/// rendered problems.
[[noreturn]] void throw_exception_from_error(const Problems& problems,
                                             const boost::source_location& location);

}  // namespace dagent::config
