#pragma once
// The step outputs that answer synthesis and replanning show the model: essential fields only,
// long texts trimmed to a token budget with a visible marker.

#include <string>
#include <vector>

#include "executor/run_types.hpp"

namespace dagent::planner {

/// One line per step: "step N (action): <output JSON>" for succeeded steps, with bookkeeping
/// fields (usage, bytes) dropped, and "step N (action) failed|skipped: reason" for the others.
/// Long strings are cut, each with "…[trimmed K chars]", so the whole fits `budget_tokens`
/// (estimated at 4 characters a token); small outputs leave their unused share to large ones.
std::string digest_results(const std::vector<executor::StepResult>& steps, int budget_tokens);

}  // namespace dagent::planner
