#pragma once
// A reply of the service before it meets HTTP: status, type, headers and body.

#include <string>
#include <utility>
#include <vector>

namespace dagent::serve {

struct Reply {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

/// `{"error": {"message": MESSAGE, "problems": [...]}}` with `status`; text made valid UTF-8.
Reply error_reply(unsigned status, std::string message, const std::vector<std::string>& problems = {});

}  // namespace dagent::serve
