#include "net/retry_budget.hpp"

#include <catch2/catch.hpp>

using dagent::net::RetryBudget;

TEST_CASE("the retry budget allows minimum + ratio x calls retries", "[net][retry]") {
  RetryBudget budget(0.2, 2);
  SECTION("the minimum holds with no calls") {
    CHECK(budget.try_spend());
    CHECK(budget.try_spend());
    CHECK_FALSE(budget.try_spend());
    CHECK(budget.retries() == 2);
  }
  SECTION("each five calls add one retry") {
    for (int i = 0; i < 10; ++i) budget.on_call();
    int granted = 0;
    while (budget.try_spend()) ++granted;
    CHECK(granted == 4);
    for (int i = 0; i < 4; ++i) budget.on_call();
    CHECK_FALSE(budget.try_spend());
    budget.on_call();
    CHECK(budget.try_spend());
    CHECK_FALSE(budget.try_spend());
  }
  SECTION("reset starts afresh") {
    while (budget.try_spend()) {
    }
    budget.reset();
    CHECK(budget.calls() == 0);
    CHECK(budget.retries() == 0);
    CHECK(budget.try_spend());
  }
  SECTION("negative settings allow nothing") {
    RetryBudget none(-1.0, -3);
    none.on_call();
    CHECK_FALSE(none.try_spend());
  }
}
