#include "serve/route.hpp"

#include <catch2/catch.hpp>

using dagent::serve::match_route;
using dagent::serve::RouteKind;

TEST_CASE("match_route maps each route and method", "[serve]") {
  CHECK(match_route("GET", "/healthz").kind == RouteKind::healthz);
  CHECK(match_route("GET", "/metrics").kind == RouteKind::metrics);
  CHECK(match_route("POST", "/v1/runs").kind == RouteKind::submit_run);
  CHECK(match_route("GET", "/v1/runs").kind == RouteKind::list_runs);
  auto get = match_route("GET", "/v1/runs/abc-1?x=1");
  CHECK(get.kind == RouteKind::get_run);
  CHECK(get.run_id == "abc-1");
  auto del = match_route("DELETE", "/v1/runs/abc");
  CHECK(del.kind == RouteKind::cancel_run);
  CHECK(del.run_id == "abc");
  auto events = match_route("GET", "/v1/runs/abc/events");
  CHECK(events.kind == RouteKind::run_events);
  CHECK(events.run_id == "abc");
  auto report = match_route("GET", "/runs/abc");
  CHECK(report.kind == RouteKind::run_report);
  CHECK(report.run_id == "abc");
}

TEST_CASE("match_route answers 405 with Allow and 404 for unknown paths and ids", "[serve]") {
  auto put = match_route("PUT", "/v1/runs");
  CHECK(put.kind == RouteKind::bad_method);
  CHECK(put.allow == "GET, POST");
  CHECK(match_route("POST", "/healthz").kind == RouteKind::bad_method);
  CHECK(match_route("POST", "/v1/runs/abc/events").allow == "GET");
  CHECK(match_route("GET", "/").kind == RouteKind::not_found);
  CHECK(match_route("GET", "/v1/runs/a/b").kind == RouteKind::not_found);
  CHECK(match_route("GET", "/v1/runs/..%2Fetc").kind == RouteKind::not_found);
  CHECK(match_route("GET", "/v1/runs/<script>").kind == RouteKind::not_found);
  CHECK(match_route("GET", "/v1/runs/" + std::string(65, 'a')).kind == RouteKind::not_found);
  CHECK(match_route("GET", "/runs/").kind == RouteKind::not_found);
}
