#pragma once
// Which route a request names: method and target to a Route, without I/O.

#include <string>
#include <string_view>

namespace dagent::serve {

enum class RouteKind {
  healthz,       ///< GET /healthz (no token asked)
  metrics,       ///< GET /metrics
  submit_run,    ///< POST /v1/runs
  list_runs,     ///< GET /v1/runs
  get_run,       ///< GET /v1/runs/{id}
  cancel_run,    ///< DELETE /v1/runs/{id}
  run_events,    ///< GET /v1/runs/{id}/events
  run_report,    ///< GET /runs/{id}: the HTML report
  not_found,     ///< no such path (404)
  bad_method,    ///< the path exists, not with this method (405; `allow` lists the methods)
};

struct Route {
  RouteKind kind = RouteKind::not_found;
  std::string run_id;  ///< for the routes of one run
  std::string allow;   ///< bad_method: the Allow header
};

/// The route of `method` on `target` (a query string is ignored). A run id is 1 to 64 of
/// [0-9a-zA-Z_-]; anything else is not_found, so an id never carries a path or markup.
Route match_route(std::string_view method, std::string_view target);

}  // namespace dagent::serve
