#pragma once
// References to earlier results inside parameter strings (SPEC.md §3): `$stepN`, `$stepN.a.b[0]`,
// `$input.name`, inside a `for_each` step `$item`, `$item.a[0]` and `$index`, and `$$` for a literal `$`.

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

namespace dagent::executor {

/// One hop of a reference path: a field name or an array index.
struct PathSegment {
  std::string key;   ///< the field name, when not an index (may be empty: `{"": ...}`)
  std::size_t index = 0;
  bool index_hop = false;
  bool is_index() const noexcept { return index_hop; }
};

struct Reference {
  /// item: the current element of a for_each step's list; index: its position (a number).
  enum class Root { step, input, item, index };
  Root root = Root::step;
  int step_id = 0;                  ///< for Root::step
  std::vector<PathSegment> path;    ///< for Root::input the first segment is the input's name
  std::string text;                 ///< as written, for messages
};

/// A parameter string split into literal text and references.
struct StringTemplate {
  struct Piece {
    std::string literal;                 ///< used when `ref` is empty
    std::optional<Reference> ref;
  };
  std::vector<Piece> pieces;

  /// True when the whole string is exactly one reference: it then takes the value's JSON type.
  bool is_whole_reference() const noexcept { return pieces.size() == 1 && pieces[0].ref.has_value(); }
};

/// Splits `text` into pieces; an error names the malformed reference and its offset.
boost::system::result<StringTemplate, std::string> parse_template(std::string_view text);

/// Where a templated string sits inside a step's parameters.
struct ParamLocation {
  std::vector<PathSegment> path;
};

/// A step's parameters with every templated string found and parsed.
struct CompiledParams {
  struct Slot {
    ParamLocation where;
    StringTemplate tmpl;
  };
  std::vector<Slot> slots;               ///< strings that contain `$`
  std::vector<std::string> problems;     ///< malformed references, with the parameter path
  std::vector<Reference> references() const;
};

/// The value at `where` inside `params`, or null when the path leads nowhere.
boost::json::value* find_param(boost::json::object& params, const ParamLocation& where);

/// Finds and parses every string of `params` that holds a `$`.
CompiledParams compile_params(const boost::json::object& params);

/// Supplies the values references point at.
class ReferenceSource {
 public:
  virtual ~ReferenceSource() = default;
  /// The output of a step that succeeded, or null when it has none (yet).
  virtual const boost::json::value* step_output(int step_id) const = 0;
  virtual const boost::json::object& inputs() const = 0;
  /// Inside one item of a for_each step: the item and its index (a number); null elsewhere.
  virtual const boost::json::value* item() const { return nullptr; }
  virtual const boost::json::value* item_index() const { return nullptr; }
};

/// The value a reference points at, or a message naming the reference and what is missing.
boost::system::result<const boost::json::value*, std::string> resolve(const Reference& ref, const ReferenceSource& src);

/// `params` with every templated string replaced: whole references by the typed value, embedded
/// ones by their text (strings as-is, other values as compact JSON), `$$` by `$`.
boost::system::result<boost::json::object, std::string> resolve_params(const boost::json::object& params,
                                                                        const CompiledParams& compiled,
                                                                        const ReferenceSource& src);

/// "an array", "a string", "null"...: a value's JSON type, for messages.
std::string kind_of(const boost::json::value& v);

/// The path as text: `a.b[0].c`.
std::string to_string(const std::vector<PathSegment>& path);

}  // namespace dagent::executor
