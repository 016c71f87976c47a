#pragma once
// For .cpp files that parse with simdjson (exact doubles, UTF-8 validation) and hand the result
// on as Boost.JSON. Includes simdjson: never include this from another header.

#include <boost/json/value.hpp>
#include <simdjson.h>

namespace dagent::text {

/// `e` as a Boost.JSON value, numbers bit for bit (Boost 1.81's own parser can read a double one
/// unit in the last place off; simdjson does not).
boost::json::value to_boost_json(simdjson::dom::element e);

}  // namespace dagent::text
