// Embedding dagent in a program: load a config, register a tool of your own, run a plan and
// watch its steps. Usage: embed_example WORKSPACE [CONFIG]
//
// The plan reads WORKSPACE/notes.txt, counts its words with the custom `word_count` tool and
// writes WORKSPACE/out/count.json.

#include <cstdio>
#include <sstream>
#include <string>

#include <boost/json.hpp>

#include "dagent/dagent.hpp"

namespace {

// A tool is a name, a description, a JSON Schema of its parameters and a run() that may block
// (BlockingTool runs it on the worker pool).
class WordCountTool final : public dagent::BlockingTool {
 public:
  std::string_view name() const override { return "word_count"; }
  std::string_view description() const override { return "counts the words of a text"; }
  const boost::json::object& parameters_schema() const override {
    static const boost::json::object schema = boost::json::parse(R"({
      "type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
      "additionalProperties": false})").as_object();
    return schema;
  }
  dagent::ToolResult run(const boost::json::object& params, const dagent::ToolContext&) override {
    std::istringstream in(std::string(params.at("text").as_string()));
    std::int64_t words = 0;
    for (std::string w; in >> w;) ++words;
    return boost::json::value(boost::json::object{{"words", words}});
  }
};

void print_event(const dagent::StepEvent& ev) {
  std::printf("event step=%d action=%.*s status=%.*s\n", ev.step_id, static_cast<int>(ev.action.size()),
              ev.action.data(), static_cast<int>(to_string(ev.status).size()), to_string(ev.status).data());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: embed_example WORKSPACE [CONFIG]\n");
    return 2;
  }
  auto loaded = dagent::Runtime::load(argc > 2 ? argv[2] : "", {"performance.parallel_execution.max_parallel_steps=4"});
  if (auto* problems = std::get_if<std::vector<std::string>>(&loaded)) {
    for (const auto& p : *problems) std::fprintf(stderr, "%s\n", p.c_str());
    return 2;
  }
  auto& runtime = std::get<dagent::Runtime>(loaded);
  if (auto added = runtime.register_tool(std::make_shared<WordCountTool>()); !added) {
    std::fprintf(stderr, "%s\n", added.error().message.c_str());
    return 2;
  }

  auto plan = boost::json::parse(R"([
    {"id": 1, "action": "read_file", "parameters": {"path": "notes.txt"}},
    {"id": 2, "action": "word_count", "parameters": {"text": "$step1.content"}},
    {"id": 3, "action": "write_file", "parameters": {"path": "out/count.json", "content": "{\"words\": $step2.words}"}}
  ])");
  dagent::RunOptions options;
  options.on_event = print_event;
  auto outcome = runtime.run_plan(plan, {}, argv[1], options, "embed-example");
  for (const auto& p : outcome.problems) std::fprintf(stderr, "%s\n", p.c_str());
  if (outcome.problems.empty()) {
    for (const auto& s : outcome.result.steps)
      std::printf("step %d %s: %s %s\n", s.id, s.action.c_str(), std::string(to_string(s.status)).c_str(),
                  boost::json::serialize(s.output).c_str());
  }
  return outcome.exit_code();
}
