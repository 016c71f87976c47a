#include "history/history_error.hpp"

#include <string>

#include <catch2/catch.hpp>

using namespace dagent::history;

TEST_CASE("every HistoryErrc value has a message") {
  for (auto e : {HistoryErrc::cannot_open, HistoryErrc::busy, HistoryErrc::corrupt, HistoryErrc::newer_schema,
                 HistoryErrc::io_error, HistoryErrc::not_found}) {
    const auto ec = make_error_code(e);
    CHECK(ec.category().name() == std::string("dagent.history"));
    CHECK(ec.message() != "unknown history error");
  }
}
