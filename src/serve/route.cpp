#include "serve/route.hpp"

#include <algorithm>

namespace dagent::serve {

namespace {

bool valid_run_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-';
  });
}

Route with_method(std::string_view method, std::string_view allowed_get, RouteKind get, RouteKind post_or_delete,
                  std::string_view other_method, std::string id = {}) {
  Route r;
  r.run_id = std::move(id);
  if (method == allowed_get) {
    r.kind = get;
  } else if (!other_method.empty() && method == other_method) {
    r.kind = post_or_delete;
  } else {
    r.kind = RouteKind::bad_method;
    r.allow = other_method.empty() ? std::string(allowed_get) : std::string(allowed_get) + ", " + std::string(other_method);
    r.run_id.clear();
  }
  return r;
}

}  // namespace

Route match_route(std::string_view method, std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  if (path == "/healthz") return with_method(method, "GET", RouteKind::healthz, RouteKind::healthz, "");
  if (path == "/metrics") return with_method(method, "GET", RouteKind::metrics, RouteKind::metrics, "");
  if (path == "/v1/runs" || path == "/v1/runs/")
    return with_method(method, "GET", RouteKind::list_runs, RouteKind::submit_run, "POST");
  constexpr std::string_view k_runs = "/v1/runs/";
  if (path.starts_with(k_runs)) {
    std::string_view rest = path.substr(k_runs.size());
    constexpr std::string_view k_events = "/events";
    if (rest.ends_with(k_events)) {
      const auto id = rest.substr(0, rest.size() - k_events.size());
      if (!valid_run_id(id)) return {};
      return with_method(method, "GET", RouteKind::run_events, RouteKind::run_events, "", std::string(id));
    }
    if (!valid_run_id(rest)) return {};
    return with_method(method, "GET", RouteKind::get_run, RouteKind::cancel_run, "DELETE", std::string(rest));
  }
  constexpr std::string_view k_report = "/runs/";
  if (path.starts_with(k_report)) {
    const auto id = path.substr(k_report.size());
    if (!valid_run_id(id)) return {};
    return with_method(method, "GET", RouteKind::run_report, RouteKind::run_report, "", std::string(id));
  }
  return {};
}

}  // namespace dagent::serve
