#pragma once
// Errors of the memory module (dagent::memory): values, with a category, across module boundaries.

#include <string>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace dagent::memory {

enum class MemoryErrc {
  io_error = 1,        ///< the operating system refused a read, write, fsync or rename
  corrupt,             ///< the saved index is truncated, fails its checksum or cannot be parsed
  dimension_mismatch,  ///< a vector's dimension differs from the index's (fixed by its first vector)
  invalid_argument,    ///< an empty text, k < 1, or vectors and entries that do not line up
  embedding_failed,    ///< the embedding call failed (the message carries the provider's reason)
  unavailable,         ///< the embedding provider could not be reached or refused us
  model_mismatch,      ///< the saved index was built with another embedding model than the configured one
};

const boost::system::error_category& memory_category() noexcept;
boost::system::error_code make_error_code(MemoryErrc e) noexcept;

/// A failed memory operation: a code to branch on and a message naming the file or value at fault.
struct MemoryError {
  boost::system::error_code code;
  std::string message;
};
[[noreturn]] void throw_exception_from_error(const MemoryError& e, const boost::source_location& loc);

template <class T>
using MemoryResult = boost::system::result<T, MemoryError>;

/// Shorthand for a MemoryError.
MemoryError memory_error(MemoryErrc code, std::string message);

}  // namespace dagent::memory

namespace boost::system {
template <>
struct is_error_code_enum<dagent::memory::MemoryErrc> : std::true_type {};
}  // namespace boost::system
