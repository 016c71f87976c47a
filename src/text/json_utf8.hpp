#pragma once
// UTF-8 repair for JSON values: the strings and object keys of a value that took text from
// outside (a tool's output, inputs given through the C++ API), and JSON text about to be written.

#include <string>

#include <boost/json/object.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>

namespace dagent::text {

/// Replaces each ill-formed part of every string and object key in `value` by U+FFFD (see
/// make_valid_utf8(std::string&)). Allocates nothing when all are valid; true when it changed.
/// When two keys of one object become equal, the first is kept. Iterative: any depth is safe.
bool make_valid_utf8(boost::json::value& value);
bool make_valid_utf8(boost::json::object& object);
bool make_valid_utf8(boost::json::string& text);

/// `value` serialized, as valid UTF-8 whatever its strings held. The repair is on the bytes:
/// ill-formed parts are never ASCII, so the JSON structure is untouched and each string comes
/// out as make_valid_utf8 would make it. No second copy when the text is valid.
std::string serialize_valid(const boost::json::value& value);

}  // namespace dagent::text
