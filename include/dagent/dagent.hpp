#pragma once
// dagent's public API in one include: the runtime, tools and the workspace sandbox, results.

#include "dagent/approval.hpp"    // IWYU pragma: export
#include "dagent/run_result.hpp"  // IWYU pragma: export
#include "dagent/runtime.hpp"     // IWYU pragma: export
#include "dagent/tool.hpp"        // IWYU pragma: export
#include "dagent/workspace.hpp"   // IWYU pragma: export
