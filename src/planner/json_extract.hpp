#pragma once
// Tolerant extraction of the JSON value a model replied with, sans-I/O: reply text in, value out.

#include <string>
#include <string_view>

#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

namespace dagent::planner {

/// For replies that are not plans (intent analysis); plan replies are read by StepStream, the
/// one reader of the streamed and the whole plan.
/// Returns the JSON value in a model's reply, the first candidate that parses strictly (RFC 8259)
/// in this order: the whole text; the content of each ``` code fence in order (any info string
/// such as `json`; an unclosed fence runs to the end of the text); each `{...}`/`[...]` span, found
/// by a string- and escape-aware bracket scan from each `{`/`[` in order, where a span that does
/// not parse (malformed, mismatched or never closed) is skipped whole: the brackets nested in it
/// are not tried, so a broken or truncated plan never yields one of its inner objects.
/// The error is one line: "the reply contains no JSON value" when the text has no `{`/`[`, else
/// "the reply's JSON is malformed: <reason> at offset N" for the first fence whose content starts
/// with `{`/`[`, or failing that the longest span; N counts bytes from the start of `text`.
boost::system::result<boost::json::value, std::string> extract_json(std::string_view text);

}  // namespace dagent::planner
