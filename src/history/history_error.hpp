#pragma once
// Errors of the run history (dagent::history): values, with a category, across module boundaries.

#include <string>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace dagent::history {

enum class HistoryErrc {
  cannot_open = 1,  ///< the database file or its folder cannot be created or opened
  busy,             ///< another connection holds a lock for longer than the busy timeout
  corrupt,          ///< the file is not a SQLite database, or its pages are damaged
  newer_schema,     ///< the database was written by a newer dagent (its user_version is higher)
  io_error,         ///< SQLite failed otherwise (disk full, read-only file, I/O error)
  not_found,        ///< no run with that id is stored
};

const boost::system::error_category& history_category() noexcept;
boost::system::error_code make_error_code(HistoryErrc e) noexcept;

/// A failed history operation: a code to branch on and a message naming the database file.
struct HistoryError {
  boost::system::error_code code;
  std::string message;
};
[[noreturn]] void throw_exception_from_error(const HistoryError& e, const boost::source_location& loc);

template <class T>
using HistoryResult = boost::system::result<T, HistoryError>;

/// Shorthand for a HistoryError.
HistoryError history_error(HistoryErrc code, std::string message);

}  // namespace dagent::history

namespace boost::system {
template <>
struct is_error_code_enum<dagent::history::HistoryErrc> : std::true_type {};
}  // namespace boost::system
