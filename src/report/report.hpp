#pragma once
// The HTML run report (`dagent report`, `dagent serve` at /runs/{id}): one self-contained page
// drawn from a run's result JSON (SPEC.md §5).

#include <cstddef>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

namespace dagent::report {

struct ReportOptions {
  std::size_t max_field_bytes = 64 << 10;   ///< each shown text (parameters, output, error, answer) is cut here
  std::size_t max_text_bytes = 16 << 20;    ///< all step texts together; later fields say they were left out
  std::size_t max_drawn_steps = 500;        ///< larger plans get no graph; the Gantt chart draws this many bars
  std::size_t max_listed_steps = 10000;     ///< steps past this get no section, only a count
  std::string goal;                         ///< the task's goal (the history keeps it beside the result); shown when set
};

/// A whole HTML page: the plan as a graph (levels, dependencies, critical path), a Gantt chart of
/// the steps by concurrency slot (verification verdicts and retries marked), each step's inputs and
/// outputs (collapsed), totals and the answer. It loads nothing (a CSP forbids it; its own scripts
/// are allowed by hash) and every text of the result is escaped. A pure function of its input:
/// any JSON object gives a page, except one with no "steps" list, which is not a run result.
/// After rendering, the page's script sets on <body>: data-rendered="1", data-steps (the step
/// sections drawn), data-critical (the highlighted step ids, in path order, comma-separated) and
/// data-errors (script errors seen).
boost::system::result<std::string, std::string> render_report(const boost::json::object& result,
                                                              const ReportOptions& options = {});

/// `text` with & < > " ' as character references: safe in element content and quoted attributes.
std::string html_escape(std::string_view text);

}  // namespace dagent::report
