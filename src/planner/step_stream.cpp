#include "planner/step_stream.hpp"

#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace dagent::planner {
namespace {

constexpr std::string_view k_steps_key = "steps";

}  // namespace

std::vector<boost::json::object> StepStream::feed(std::string_view chunk) {
  std::vector<boost::json::object> out;
  collect_from_ = 0;
  for (std::size_t i = 0; i < chunk.size() && phase_ != Phase::done; ++i) {
    const char c = chunk[i];
    if (phase_ == Phase::seeking) {
      if (c == '{' || c == '[') {
        phase_ = Phase::in_root;
        depth_ = 1;
        root_is_object_ = c == '{';
        expect_key_ = root_is_object_;
        if (!root_is_object_) steps_depth_ = 1;
      }
      continue;
    }
    if (in_string_) {
      // Escape state survives the chunk boundary: a chunk may end right after a backslash.
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        end_string();
        continue;
      }
      if (in_key_ && key_.size() <= k_steps_key.size()) key_.push_back(c);
      continue;
    }
    switch (c) {
      case '"':
        in_string_ = true;
        if (root_is_object_ && depth_ == 1 && expect_key_) {
          in_key_ = true;
          expect_key_ = false;
          key_.clear();
        }
        break;
      case '{':
      case '[':
        open(c, i);
        break;
      case '}':
      case ']':
        close(c, i, chunk, out);
        break;
      case ',':
        if (root_is_object_ && depth_ == 1) expect_key_ = true;
        break;
      default:
        break;
    }
  }
  if (collecting_) step_.append(chunk.substr(collect_from_));
  return out;
}

bool StepStream::finished() const noexcept { return finished_; }

std::size_t StepStream::steps_emitted() const noexcept { return steps_emitted_; }

void StepStream::open(char c, std::size_t at) {
  ++depth_;
  if (steps_depth_ != 0) {
    if (c == '{' && depth_ == steps_depth_ + 1) {
      collecting_ = true;
      collect_from_ = at;
    }
  } else if (root_is_object_ && depth_ == 2 && c == '[' && key_is_steps_) {
    // Only the array value of "steps" at depth 1 counts; a '[' in another member's value is
    // preceded by that member's key, which cleared key_is_steps_.
    steps_depth_ = 2;
  }
}

void StepStream::close(char c, std::size_t at, std::string_view chunk, std::vector<boost::json::object>& out) {
  if (collecting_ && depth_ == steps_depth_ + 1) {
    collecting_ = false;
    step_.append(chunk.substr(collect_from_, at + 1 - collect_from_));
    // A step that does not parse (or a '{' closed by ']') is dropped here; the final whole-text
    // parse is what reports malformed JSON.
    if (c == '}') {
      boost::system::error_code ec;
      boost::json::value step = boost::json::parse(step_, ec);
      if (!ec && step.is_object()) {
        out.push_back(std::move(step.as_object()));
        ++steps_emitted_;
      }
    }
    step_.clear();
  } else if (steps_depth_ != 0 && depth_ == steps_depth_) {
    finished_ = c == ']';
    phase_ = Phase::done;
  }
  --depth_;
  if (depth_ == 0) phase_ = Phase::done;
}

void StepStream::end_string() {
  in_string_ = false;
  if (!in_key_) return;
  in_key_ = false;
  key_is_steps_ = key_ == k_steps_key;
}

}  // namespace dagent::planner
