#pragma once
// Matching a request against the recorded ones for replay: its identity (net/request_fingerprint),
// and when nothing matches, the closest recorded request and how it differs.

#include <string>

#include <boost/json/object.hpp>

#include "net/request_fingerprint.hpp"

namespace dagent::record {

// The request's identity lives in net (the response cache keys by it too); replay names it here.
using net::CallKind;
using net::fingerprint;
using net::normalize;
using net::to_string;

/// How `wanted` differs from `recorded`, for the error of a request with no match: the first
/// differing fields by JSON path with both values clipped, e.g.
/// `messages[1].content: recorded "Summarize a.md" but got "Summarize b.md"`. At most `max_lines` lines.
std::string describe_difference(const boost::json::object& recorded, const boost::json::object& wanted,
                                std::size_t max_lines = 5);

/// A distance between two normalized requests (0 = equal) for choosing the closest recorded
/// request: differing kind or model count most, then the edit size of differing strings.
std::size_t request_distance(const boost::json::object& a, const boost::json::object& b);

}  // namespace dagent::record
