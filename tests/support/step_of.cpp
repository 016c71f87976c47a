// step_of (declared in test_tools.hpp) fails the test through Catch, so it lives apart from the
// tools, which dagent_test_worker links without Catch.

#include <catch2/catch.hpp>

#include "support/test_tools.hpp"

namespace dagent::test {

namespace {

template <class Result>
const auto& find_step(const Result& r, int id) {
  for (const auto& s : r.steps)
    if (s.id == id) return s;
  FAIL("no step " << id);
  return r.steps.front();
}

}  // namespace

const StepResult& step_of(const RunResult& r, int id) { return find_step(r, id); }

const executor::StepResult& step_of(const executor::RunResult& r, int id) { return find_step(r, id); }

}  // namespace dagent::test
