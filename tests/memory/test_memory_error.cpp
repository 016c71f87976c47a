#include "memory/memory_error.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>

#include <boost/system/system_error.hpp>

using dagent::memory::MemoryErrc;

TEST_CASE("memory_category names itself and every MemoryErrc value", "[memory]") {
  CHECK(std::string(dagent::memory::memory_category().name()) == "dagent.memory");
  const MemoryErrc all[] = {MemoryErrc::io_error,         MemoryErrc::corrupt,          MemoryErrc::dimension_mismatch,
                            MemoryErrc::invalid_argument, MemoryErrc::embedding_failed, MemoryErrc::unavailable,
                            MemoryErrc::model_mismatch};
  std::set<std::string> messages;
  for (const auto e : all) {
    const boost::system::error_code code = e;
    CHECK(&code.category() == &dagent::memory::memory_category());
    CHECK(code.value() == static_cast<int>(e));
    CHECK(code == dagent::memory::make_error_code(e));
    CHECK_FALSE(code.message().empty());
    CHECK(code.message() != dagent::memory::memory_category().message(0));
    messages.insert(code.message());
  }
  CHECK(messages.size() == std::size(all));
  CHECK(boost::system::error_code(MemoryErrc::corrupt).message() == "saved memory index is corrupt");
  CHECK(dagent::memory::memory_category().message(99) == "unknown memory error");
}

TEST_CASE("memory_error makes a failed MemoryResult", "[memory]") {
  const dagent::memory::MemoryResult<int> result = dagent::memory::memory_error(MemoryErrc::corrupt, "'a.dgm' is truncated");
  REQUIRE(result.has_error());
  CHECK(result.error().code == MemoryErrc::corrupt);
  CHECK(result.error().message == "'a.dgm' is truncated");
}

TEST_CASE("MemoryResult value() throws system_error with the message", "[memory]") {
  const dagent::memory::MemoryResult<int> result = dagent::memory::memory_error(MemoryErrc::io_error, "disk full");
  try {
    (void)result.value();
    FAIL("value() did not throw");
  } catch (const boost::system::system_error& e) {
    CHECK(e.code() == MemoryErrc::io_error);
    CHECK(std::string(e.what()).find("disk full") != std::string::npos);
  }
}
