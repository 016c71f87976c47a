#pragma once
// Incremental extraction of plan steps from a streamed plan text, sans-I/O: chunks in, steps out.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

namespace dagent::planner {

/// Yields each step object of a plan as soon as its closing `}` arrives, however the text is
/// split into chunks (inside strings, escapes or UTF-8 sequences included), in O(total bytes),
/// buffering only the step being collected.
/// The plan is a JSON array of steps, `[{...}, ...]`, or an object whose member "steps" at depth 1
/// is that array, `{"reasoning": "...", "steps": [...], ...}`. The first `{` or `[` anywhere in the
/// text starts the JSON, so prose and a ```json fence opener may precede it but prose must not
/// contain `{` or `[`. Brackets inside strings are ignored; the key is matched on its raw bytes
/// (an escaped "steps" is not recognized). Array elements that are not objects are ignored, and
/// a step whose bytes do not parse as an object is skipped: the whole-text parse reports it.
/// Everything after the steps array (or after the root value, when it had none) is ignored.
class StepStream {
 public:
  /// Consumes `chunk`; returns the steps completed by it, in order.
  std::vector<boost::json::object> feed(std::string_view chunk);

  /// Whether the steps array's closing `]` was seen.
  bool finished() const noexcept;

  /// How many steps feed() has returned so far.
  std::size_t steps_emitted() const noexcept;

 private:
  enum class Phase { seeking, in_root, done };

  void open(char c, std::size_t at);
  void close(char c, std::size_t at, std::string_view chunk, std::vector<boost::json::object>& out);
  void end_string();

  Phase phase_ = Phase::seeking;
  bool root_is_object_ = false;
  std::size_t depth_ = 0;          ///< open brackets outside strings, the root's included
  bool in_string_ = false;
  bool escape_ = false;
  bool expect_key_ = false;        ///< object form: the next string at depth 1 is a key
  bool in_key_ = false;
  bool key_is_steps_ = false;      ///< object form: the latest key at depth 1 was "steps"
  std::string key_;                ///< raw bytes of the key being read, capped past "steps"
  std::size_t steps_depth_ = 0;    ///< depth inside the steps array; 0 until it opens
  bool collecting_ = false;
  std::size_t collect_from_ = 0;   ///< where the step starts in the current chunk
  std::string step_;               ///< bytes of the step collected from earlier chunks
  bool finished_ = false;
  std::size_t steps_emitted_ = 0;
};

}  // namespace dagent::planner
