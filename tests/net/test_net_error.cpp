#include "net/net_error.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>

#include <boost/system/result.hpp>

using dagent::net::NetErrc;

TEST_CASE("net_category names itself and every NetErrc value", "[net]") {
  CHECK(std::string(dagent::net::net_category().name()) == "dagent.net");
  const std::string unknown = dagent::net::net_category().message(0);
  CHECK(unknown == "unknown network error");
  CHECK(dagent::net::net_category().message(static_cast<int>(NetErrc::budget_exceeded) + 1) == unknown);

  std::set<std::string> messages;
  int count = 0;
  for (int value = static_cast<int>(NetErrc::invalid_url); value <= static_cast<int>(NetErrc::budget_exceeded); ++value) {
    const auto e = static_cast<NetErrc>(value);
    const boost::system::error_code code = e;
    INFO("NetErrc value " << value << ": " << code.message());
    CHECK(&code.category() == &dagent::net::net_category());
    CHECK(code.value() == value);
    CHECK(code == dagent::net::make_error_code(e));
    CHECK(code);
    CHECK_FALSE(code.message().empty());
    CHECK(code.message() != unknown);
    messages.insert(code.message());
    ++count;
  }
  CHECK(count == 19);
  CHECK(messages.size() == static_cast<std::size_t>(count));
  CHECK(boost::system::error_code(NetErrc::event_too_large).message() == "server-sent event too large");
  CHECK(boost::system::error_code(NetErrc::replay_mismatch).message() == "no recorded request matches");
  CHECK(boost::system::error_code(NetErrc::provider_refused).message() == "the provider refused the request");
  CHECK(boost::system::error_code(NetErrc::too_large).message() == "response too large");
  CHECK(boost::system::error_code(NetErrc::budget_exceeded).message() == "the run's budget is spent");
}

TEST_CASE("NetErrc converts into a failed result", "[net]") {
  const boost::system::result<void> failed = dagent::net::make_error_code(NetErrc::circuit_open);
  REQUIRE_FALSE(failed);
  CHECK(failed.error() == NetErrc::circuit_open);
}
