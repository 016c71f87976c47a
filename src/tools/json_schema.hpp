#pragma once
// The JSON Schema subset that tool parameters are checked against: type, properties, required,
// additionalProperties, items, enum, minimum, maximum, minLength. Other keywords are ignored.

#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include "dagent/tool.hpp"

namespace dagent::tools {

/// The schema type name of `v`: null, boolean, integer (int64 or uint64), number (double, even
/// an integral one), string, array or object.
std::string_view json_kind(const boost::json::value& v) noexcept;

/// Every way `v` fails `schema`, each starting with the JSON path of the offending value
/// (`$.max_bytes: expected integer, got string`, `$.items[2]: ...`); empty when `v` is valid.
std::vector<std::string> validate_json(const boost::json::value& v, const boost::json::object& schema,
                                       std::string_view path = "$");

/// Checks a tool's parameters against its schema: every problem, joined with "; ", in one
/// invalid_parameters error.
boost::system::result<void, ToolError> check_parameters(const boost::json::object& params,
                                                        const boost::json::object& schema);

}  // namespace dagent::tools
