#include "serve/reply.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "text/json_utf8.hpp"

namespace dagent::serve {

Reply error_reply(unsigned status, std::string message, const std::vector<std::string>& problems) {
  boost::json::array list;
  for (const auto& p : problems) list.emplace_back(p);
  boost::json::object error{{"message", std::move(message)}, {"problems", std::move(list)}};
  Reply r;
  r.status = status;
  r.body = text::serialize_valid(boost::json::object{{"error", std::move(error)}}) + "\n";
  return r;
}

}  // namespace dagent::serve
