// End-to-end: JSON Schemas in plans are checked as schemas by `dagent validate`, and criteria
// check every draft-07 keyword when the plan runs.

#include <catch2/catch.hpp>

#include "support/process.hpp"

namespace {

using dagent::test::run_process;
using dagent::test::TempDir;

dagent::test::ProcessResult dagent_cli(const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), DAGENT_BINARY);
  return run_process(args, dir.path());
}

}  // namespace

TEST_CASE("dagent validate reports invalid schemas in verify and llm steps, naming step and key", "[cli][json_schema]") {
  TempDir dir;
  dir.write("ws/a.txt", "hello");
  dir.write("task.yaml", R"(workspace: ws
plan:
  - {id: 1, action: read_file, parameters: {path: a.txt}, verify: {json_schema: {type: nonsense}}}
  - {id: 2, action: llm, parameters: {prompt: x, json_schema: {properties: {n: {pattern: "^[a-z]+$$"},
                                                                     m: {$ref: "http://example.com/s.json"}}}}}
  - {id: 3, action: read_file, parameters: {path: a.txt}, verify: {json_schema: {required: [bytes], maxProperties: 5}}}
)");
  auto r = dagent_cli(dir, {"validate", "task.yaml"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("step 1: verify: json_schema.type: must be a type name"));
  CHECK_THAT(r.err, Catch::Contains("step 2: parameters.json_schema.properties.m.$ref: \"http://example.com/s.json\" "
                                    "is not a local reference"));
  CHECK_THAT(r.err, !Catch::Contains("step 3"));
  CHECK_THAT(r.err, !Catch::Contains("pattern"));  // `$$` is a literal `$`: the pattern is fine
  CHECK_THAT(r.err, Catch::Contains("2 problems"));
}

TEST_CASE("criteria_passed_unchecked: a verify json_schema with const fails the run (exit 1)", "[cli][json_schema]") {
  TempDir dir;
  dir.write("ws/a.txt", "hello");
  dir.write("task.yaml", R"(workspace: ws
plan:
  - {id: 1, action: read_file, parameters: {path: a.txt}, verify: {field: bytes, json_schema: {const: 3}}}
)");
  auto r = dagent_cli(dir, {"run", "task.yaml"});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err + r.out, Catch::Contains("the output does not match the schema: output: expected 3, got 5"));
  dir.write("ok.yaml", R"(workspace: ws
plan:
  - {id: 1, action: read_file, parameters: {path: a.txt}, verify: {field: bytes, json_schema: {const: 5}}}
)");
  CHECK(dagent_cli(dir, {"run", "ok.yaml"}).exit_code == 0);
}
