#include "planner/step_stream.hpp"

#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace dagent::planner {
namespace {

namespace json = boost::json;

constexpr std::string_view k_steps_key = "steps";
constexpr std::string_view k_not_a_plan = "expected a JSON array of steps or an object with \"steps\"";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The steps of `v` when it is a plan (see StepStream), else null.
json::array* steps_of(json::value& v) {
  if (auto* a = v.if_array()) return a->empty() || a->front().is_object() ? a : nullptr;
  if (auto* o = v.if_object())
    if (auto* s = o->if_contains(k_steps_key)) return s->if_array();
  return nullptr;
}

// Whether the object elements of `steps` are exactly `emitted`, in order.
bool same_objects(const json::array& steps, const std::vector<json::object>& emitted) {
  std::size_t k = 0;
  for (const auto& s : steps) {
    if (!s.is_object()) continue;
    if (k == emitted.size() || s.get_object() != emitted[k]) return false;
    ++k;
  }
  return k == emitted.size();
}

std::string malformed(std::string_view reason, std::size_t offset) {
  return "the reply's JSON is malformed: " + std::string(reason) + " at offset " + std::to_string(offset);
}

}  // namespace

std::vector<json::object> StepStream::feed(std::string_view chunk) {
  std::vector<json::object> out;
  flushed_ = 0;
  collect_from_ = 0;
  for (std::size_t i = 0; i < chunk.size() && phase_ != Phase::done; ++i) {
    const char c = chunk[i];
    if (phase_ == Phase::seeking) {
      if (c == '{' || c == '[') start(c, i);
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
    if (!root_is_object_ && closers_.size() == 1 && !first_seen_ && !is_space(c) && c != ']') {
      first_seen_ = true;
      first_is_object_ = c == '{';
    }
    switch (c) {
      case '"':
        in_string_ = true;
        if (root_is_object_ && closers_.size() == 1 && expect_key_) {
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
        if (root_is_object_ && closers_.size() == 1) expect_key_ = true;
        break;
      default:
        break;
    }
  }
  if (phase_ == Phase::in_candidate) {
    flush(chunk, chunk.size());
    if (collecting_) step_.append(chunk.substr(collect_from_));
  }
  consumed_ += chunk.size();
  flushed_ = 0;
  return out;
}

boost::system::result<json::array, std::string> StepStream::finish() {
  if (phase_ == Phase::in_candidate) end_candidate(false);
  phase_ = Phase::done;
  if (!outcome_) {
    if (!any_candidate_) {
      outcome_.emplace(boost::system::in_place_error, "the reply contains no JSON value");
    } else {
      outcome_.emplace(boost::system::in_place_error, failure_);
    }
  }
  return *outcome_;
}

void StepStream::start(char opener, std::size_t at) {
  phase_ = Phase::in_candidate;
  any_candidate_ = true;
  candidate_start_ = consumed_ + at;
  flushed_ = at;
  parser_.reset();
  parser_failed_ = false;
  text_.clear();
  closers_.assign(1, opener == '{' ? '}' : ']');
  root_is_object_ = opener == '{';
  first_seen_ = false;
  first_is_object_ = false;
  in_string_ = false;
  escape_ = false;
  expect_key_ = root_is_object_;
  in_key_ = false;
  key_is_steps_ = false;
  key_.clear();
  steps_depth_ = root_is_object_ ? 0 : 1;
  collecting_ = false;
  step_.clear();
  finished_ = false;
}

void StepStream::open(char c, std::size_t at) {
  closers_.push_back(c == '{' ? '}' : ']');
  const std::size_t depth = closers_.size();
  if (steps_depth_ != 0) {
    // Only while the text so far is valid JSON: a step of a broken candidate is never handed out.
    if (c == '{' && depth == steps_depth_ + 1 && !finished_ && !parser_failed_ &&
        (root_is_object_ || first_is_object_)) {
      collecting_ = true;
      collect_from_ = at;
      step_.clear();
    }
  } else if (root_is_object_ && depth == 2 && c == '[' && key_is_steps_) {
    // Only the array value of "steps" at depth 1 counts; a '[' in another member's value is
    // preceded by that member's key, which cleared key_is_steps_.
    steps_depth_ = 2;
  }
}

void StepStream::close(char c, std::size_t at, std::string_view chunk, std::vector<json::object>& out) {
  if (closers_.back() != c) {  // a closer of the wrong kind ends the span; the parser reports it
    flush(chunk, at + 1);
    end_candidate(false);
    return;
  }
  const std::size_t depth = closers_.size();
  closers_.pop_back();
  if (collecting_ && depth == steps_depth_ + 1) {
    collecting_ = false;
    flush(chunk, at + 1);
    step_.append(chunk.substr(collect_from_, at + 1 - collect_from_));
    if (!parser_failed_) {
      // The parser accepted these bytes in place, so they parse on their own too.
      boost::system::error_code ec;
      json::value step = json::parse(step_, ec);
      if (!ec && step.is_object()) {
        emitted_.push_back(step.get_object());
        out.push_back(std::move(step.get_object()));
      }
    }
    step_.clear();
  } else if (steps_depth_ != 0 && depth == steps_depth_ && !finished_) {
    flush(chunk, at + 1);
    finished_ = !parser_failed_ && (root_is_object_ || first_is_object_ || !first_seen_);
  }
  if (closers_.empty()) {
    flush(chunk, at + 1);
    end_candidate(true);
  }
}

void StepStream::flush(std::string_view chunk, std::size_t upto) {
  if (upto <= flushed_) return;
  const std::string_view bytes = chunk.substr(flushed_, upto - flushed_);
  text_.append(bytes);
  if (!parser_failed_) {
    boost::system::error_code ec;
    parser_.write_some(bytes.data(), bytes.size(), ec);
    if (ec) parser_failed_ = true;
  }
  flushed_ = upto;
}

void StepStream::end_candidate(bool closed) {
  const std::size_t end = consumed_ + flushed_;
  if (!parser_failed_) {
    boost::system::error_code ec;
    parser_.finish(ec);  // an unclosed candidate: "incomplete JSON"
    parser_failed_ = ec || !closed;
  }
  std::string message;
  if (!parser_failed_) {
    text_.clear();
    json::value value = parser_.release();
    if (json::array* steps = steps_of(value)) {
      if (const auto* intent = value.is_object() ? value.get_object().if_contains("intent") : nullptr;
          intent && intent->is_string())
        intent_ = std::string(intent->get_string());
      if (same_objects(*steps, emitted_)) {
        outcome_.emplace(boost::system::in_place_value, std::move(*steps));
      } else {  // e.g. a second "steps" key: the parser kept another array than the one streamed
        outcome_.emplace(boost::system::in_place_error,
                         "the reply's plan does not match the steps read while it streamed (a repeated "
                         "\"steps\" key?)");
      }
      phase_ = Phase::done;
      return;
    }
    message = std::string(k_not_a_plan);
  } else {
    // Where the streaming parser stopped depends on how the text was split (a literal cut in
    // two, say); the whole span parsed at once gives one place for every split.
    json::stream_parser again;
    boost::system::error_code ec;
    std::size_t at = again.write_some(text_.data(), text_.size(), ec);
    if (!ec) {
      again.finish(ec);
      at = text_.size();
    }
    message = malformed(ec ? ec.message() : "incomplete JSON", candidate_start_ + at);
  }
  text_.clear();
  if (!emitted_.empty()) {  // steps were handed out from this candidate: it is the plan, broken
    outcome_.emplace(boost::system::in_place_error, std::move(message));
    phase_ = Phase::done;
    return;
  }
  note_failure(end - candidate_start_, std::move(message));
  phase_ = Phase::seeking;
  collecting_ = false;
  step_.clear();
  closers_.clear();
  finished_ = false;
}

void StepStream::note_failure(std::size_t length, std::string message) {
  if (failure_.empty() || length > failure_length_) {
    failure_length_ = length;
    failure_ = std::move(message);
  }
}

void StepStream::end_string() {
  in_string_ = false;
  if (!in_key_) return;
  in_key_ = false;
  key_is_steps_ = key_ == k_steps_key;
}

boost::system::result<json::array, std::string> read_plan(std::string_view text) {
  StepStream stream;
  stream.feed(text);
  return stream.finish();
}

}  // namespace dagent::planner
