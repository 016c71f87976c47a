#include "memory/memory_error.hpp"

#include <string>
#include <utility>

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

namespace dagent::memory {
namespace {

class MemoryCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "dagent.memory"; }

  std::string message(int ev) const override {
    switch (static_cast<MemoryErrc>(ev)) {
      case MemoryErrc::io_error: return "memory file system error";
      case MemoryErrc::corrupt: return "saved memory index is corrupt";
      case MemoryErrc::dimension_mismatch: return "vector dimension does not match the index";
      case MemoryErrc::invalid_argument: return "invalid memory argument";
      case MemoryErrc::embedding_failed: return "embedding failed";
      case MemoryErrc::unavailable: return "embedding provider unavailable";
      case MemoryErrc::model_mismatch: return "index built with another embedding model";
    }
    return "unknown memory error";
  }
};

}  // namespace

const boost::system::error_category& memory_category() noexcept {
  static const MemoryCategory category;
  return category;
}

boost::system::error_code make_error_code(MemoryErrc e) noexcept { return {static_cast<int>(e), memory_category()}; }

void throw_exception_from_error(const MemoryError& e, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(e.code, e.message), loc);
}

MemoryError memory_error(MemoryErrc code, std::string message) { return {make_error_code(code), std::move(message)}; }

}  // namespace dagent::memory
