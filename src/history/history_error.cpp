#include "history/history_error.hpp"

#include <string>
#include <utility>

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

namespace dagent::history {
namespace {

class HistoryCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "dagent.history"; }

  std::string message(int ev) const override {
    switch (static_cast<HistoryErrc>(ev)) {
      case HistoryErrc::cannot_open: return "run history cannot be opened";
      case HistoryErrc::busy: return "run history is locked by another process";
      case HistoryErrc::corrupt: return "run history database is corrupt";
      case HistoryErrc::newer_schema: return "run history was written by a newer dagent";
      case HistoryErrc::io_error: return "run history database error";
      case HistoryErrc::not_found: return "no such run in the history";
    }
    return "unknown history error";
  }
};

}  // namespace

const boost::system::error_category& history_category() noexcept {
  static const HistoryCategory category;
  return category;
}

boost::system::error_code make_error_code(HistoryErrc e) noexcept { return {static_cast<int>(e), history_category()}; }

void throw_exception_from_error(const HistoryError& e, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(e.code, e.message), loc);
}

HistoryError history_error(HistoryErrc code, std::string message) { return {make_error_code(code), std::move(message)}; }

}  // namespace dagent::history
