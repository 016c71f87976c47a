#pragma once
// JSON Schema draft-07, by valijson: schemas are checked against the draft-07 meta-schema and
// compiled once (cached), values are checked against every keyword. valijson stays inside
// json_schema.cpp.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include "dagent/tool.hpp"

namespace dagent::tools {

/// The schema type name of `v`: null, boolean, integer (int64 or uint64), number (double, even
/// an integral one), string, array or object.
std::string_view json_kind(const boost::json::value& v) noexcept;

/// `parent.key`, or `parent["key"]` when the key is not an identifier.
std::string member_path(std::string_view parent, std::string_view key);
/// `parent[index]`.
std::string element_path(std::string_view parent, std::size_t index);

/// One way a value fails a schema.
struct SchemaProblem {
  std::string path;     ///< JSON path of the offending value (`$.items[2]`)
  std::string keyword;  ///< the keyword that failed (`type`, `pattern`, `anyOf`, ...)
  std::string message;  ///< `expected integer, got string`
  std::string to_string() const { return path + ": " + message; }
};

/// A schema compiled once; immutable, so it may be shared between threads.
class CompiledSchema {
 public:
  struct Impl;
  explicit CompiledSchema(std::unique_ptr<Impl> impl);
  ~CompiledSchema();
  CompiledSchema(const CompiledSchema&) = delete;
  CompiledSchema& operator=(const CompiledSchema&) = delete;

  /// Every way `v` fails the schema, paths rooted at `path`; empty when `v` is valid.
  std::vector<SchemaProblem> validate(const boost::json::value& v, std::string_view path = "$") const;

 private:
  std::unique_ptr<Impl> impl_;
};

/// A schema compiled, or why it is not a valid draft-07 schema.
struct SchemaCompilation {
  std::shared_ptr<const CompiledSchema> schema;  ///< null when `problems` is not empty
  std::vector<std::string> problems;             ///< each `path: problem`, paths into the schema
};

/// Checks `schema` against the draft-07 meta-schema and the limits dagent adds (local `$ref`s
/// only, no `$ref` cycle that consumes nothing, bounded nesting, valid regular expressions),
/// then compiles it. Results are cached by the schema's text; problem paths start at `path`.
SchemaCompilation compile_schema(const boost::json::object& schema, std::string_view path = "$");

/// The problems of compile_schema: empty when `schema` is a valid schema.
std::vector<std::string> check_schema(const boost::json::object& schema, std::string_view path = "$");

/// Every way `v` fails `schema`, each `path: problem` (`$.max_bytes: expected integer, got
/// string`); empty when `v` is valid. An invalid schema is a failure, never a pass: its problems
/// are returned, each prefixed with "invalid schema: ".
std::vector<std::string> validate_json(const boost::json::value& v, const boost::json::object& schema,
                                       std::string_view path = "$");

/// Checks a tool's parameters against its schema: every problem, joined with "; ", in one
/// invalid_parameters error.
boost::system::result<void, ToolError> check_parameters(const boost::json::object& params,
                                                        const boost::json::object& schema);

}  // namespace dagent::tools
