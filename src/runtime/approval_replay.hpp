#pragma once
// A replay's approval decisions: the "approval" events of a recording, matched by step, tool and
// a digest of the resolved parameters (repeated calls in their recorded order).

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "dagent/approval.hpp"
#include "record/recording.hpp"

namespace dagent::runtime {

class ApprovalReplay {
 public:
  explicit ApprovalReplay(const record::Recording& recording);

  /// The recorded decision for this call, or nullopt when the recording holds none (recorded
  /// before tools.approval existed, another plan, other parameters).
  std::optional<ApprovalDecision> find(int step_id, std::string_view tool, const boost::json::object& params);

 private:
  std::map<std::string, std::deque<ApprovalDecision>, std::less<>> decisions_;
};

/// The digest of resolved parameters an "approval" event carries ("params_sha256").
std::string params_digest(const boost::json::object& params);

}  // namespace dagent::runtime
