#pragma once
// The one reader of a plan reply, sans-I/O: chunks in, steps out as they complete, and at the end
// the plan. A whole reply is read by feeding it as one chunk, so the streamed and the whole path
// cannot disagree on which JSON value is the plan.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/stream_parser.hpp>
#include <boost/system/result.hpp>

namespace dagent::planner {

/// Reads a plan from a model's reply, however the text is split into chunks (inside strings,
/// escapes or UTF-8 sequences included), in O(total bytes).
///
/// The rule: candidates are the `{...}`/`[...]` spans of the text, in order: each starts at the
/// first `{`/`[` after the previous span and ends at its matching closer (a bracket scan that
/// skips strings), at a closer of the wrong kind, or at the end of the text. Each candidate is
/// parsed strictly (RFC 8259). The plan is the first candidate that parses and is a plan: an
/// array whose first element (if any) is an object, or an object with a member "steps" that is
/// an array. So prose, a code fence, `Plan [v2]:` or `{"note": 1}` may come before the plan.
///
/// Steps are yielded as soon as their closing `}` arrives: the objects of a plan array, or of the
/// array value of a "steps" key at depth 1 (the key matched on its raw bytes), while the
/// candidate's text so far is valid JSON. A candidate that has yielded a step is the plan: if it
/// then turns out malformed or unfinished, finish() fails rather than moving on, so the steps
/// yielded are always exactly the object steps of the plan finish() returns.
class StepStream {
 public:
  /// Consumes `chunk`; returns the steps completed by it, in order.
  std::vector<boost::json::object> feed(std::string_view chunk);

  /// Ends the text: the plan's steps (every element, objects or not), or a one-line reason:
  /// "the reply contains no JSON value" without any `{`/`[`; else, for the longest failed
  /// candidate (or the one that yielded steps), "the reply's JSON is malformed: <reason> at
  /// offset N" (N counts bytes from the start of the text) or "expected a JSON array of steps or
  /// an object with \"steps\"".
  boost::system::result<boost::json::array, std::string> finish();

  /// Whether the plan's steps array has closed.
  bool finished() const noexcept { return finished_; }

  /// How many steps feed() has returned so far.
  std::size_t steps_emitted() const noexcept { return emitted_.size(); }

  /// After finish(): the plan object's "intent" member when it is a string (planner.intent_mode
  /// folded asks for it beside "steps"); empty otherwise.
  const std::string& intent() const noexcept { return intent_; }

 private:
  enum class Phase { seeking, in_candidate, done };

  void start(char opener, std::size_t at);
  void open(char c, std::size_t at);
  void close(char c, std::size_t at, std::string_view chunk, std::vector<boost::json::object>& out);
  void flush(std::string_view chunk, std::size_t upto);
  void end_candidate(bool closed);
  void note_failure(std::size_t length, std::string message);
  void end_string();

  Phase phase_ = Phase::seeking;
  std::size_t consumed_ = 0;        ///< bytes of the text in earlier chunks
  boost::json::stream_parser parser_;
  bool parser_failed_ = false;
  std::string text_;                ///< the candidate's bytes, to place an error
  std::size_t candidate_start_ = 0; ///< offset of the candidate's opener in the text
  std::size_t flushed_ = 0;         ///< bytes of the current chunk handed to the parser
  std::string closers_;             ///< the closers the open brackets expect, innermost last
  bool root_is_object_ = false;
  bool first_seen_ = false;         ///< array form: the first element has begun
  bool first_is_object_ = false;
  bool in_string_ = false;
  bool escape_ = false;
  bool expect_key_ = false;         ///< object form: the next string at depth 1 is a key
  bool in_key_ = false;
  bool key_is_steps_ = false;       ///< object form: the latest key at depth 1 was "steps"
  std::string key_;                 ///< raw bytes of the key being read, capped past "steps"
  std::size_t steps_depth_ = 0;     ///< depth of the steps array; 0 until it opens
  bool collecting_ = false;
  std::size_t collect_from_ = 0;    ///< where the step starts in the current chunk
  std::string step_;                ///< bytes of the step collected from earlier chunks
  bool finished_ = false;
  std::vector<boost::json::object> emitted_;
  std::string intent_;

  std::optional<boost::system::result<boost::json::array, std::string>> outcome_;
  std::size_t failure_length_ = 0;  ///< the longest failed candidate so far
  std::string failure_;
  bool any_candidate_ = false;
};

/// The plan in a whole reply: a StepStream fed `text` at once.
boost::system::result<boost::json::array, std::string> read_plan(std::string_view text);

}  // namespace dagent::planner
