#include "text/simdjson_boost.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>

namespace dagent::text {

boost::json::value to_boost_json(simdjson::dom::element e) {
  simdjson::dom::object object;
  simdjson::dom::array array;
  if (e.get(object) == simdjson::SUCCESS) {
    boost::json::object out;
    out.reserve(object.size());
    for (auto field : object) out.emplace(field.key, to_boost_json(field.value));
    return out;
  }
  if (e.get(array) == simdjson::SUCCESS) {
    boost::json::array out;
    for (auto item : array) out.push_back(to_boost_json(item));
    return out;
  }
  switch (e.type()) {
    case simdjson::dom::element_type::STRING: return boost::json::string(e.get_string().value_unsafe());
    case simdjson::dom::element_type::INT64: return e.get_int64().value_unsafe();
    case simdjson::dom::element_type::UINT64: return e.get_uint64().value_unsafe();
    case simdjson::dom::element_type::DOUBLE: return e.get_double().value_unsafe();
    case simdjson::dom::element_type::BOOL: return e.get_bool().value_unsafe();
    default: return nullptr;
  }
}

}  // namespace dagent::text
