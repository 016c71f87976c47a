// dagent_test_worker CONFIG NAME CONCURRENCY [WORKSPACE_ROOT...]: a worker process (the library's
// run_worker_process, as a program that embeds dagent would run one) with the built-in file tools
// of CONFIG's tools.enabled plus the test tools:
//   sleep {ms, value?}  (tests/support/test_tools.hpp): a latency-bound step;
//   crash {}: kills the worker (SIGKILL to itself), logging "crash" to gate.log first;
//   gate {key}: appends "start KEY NAME" to gate.log in the workspace, waits until the file
//               `release` exists there, appends "done KEY NAME" and returns {"key", "worker"}.
// gate.log shows, without timing, which worker ran which call and how often.

#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>

#include "config/loader.hpp"
#include "dagent/workspace.hpp"
#include "distributed/worker_process.hpp"
#include "support/test_tools.hpp"

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using dagent::Tool;
using dagent::ToolContext;
using dagent::ToolResult;

void append_line(const std::filesystem::path& file, const std::string& line) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const std::string text = line + "\n";
  (void)::write(fd, text.data(), text.size());  // one write: lines of concurrent workers never mix
  ::close(fd);
}

class GateTool final : public Tool {
 public:
  explicit GateTool(std::string worker) : worker_(std::move(worker)) {}
  std::string_view name() const override { return "gate"; }
  std::string_view description() const override { return "logs its start, waits for the release file, logs its end"; }
  const json::object& parameters_schema() const override {
    static const json::object s =
        json::parse(R"({"type":"object","properties":{"key":{"type":"string"}},"required":["key"]})").as_object();
    return s;
  }
  asio::awaitable<ToolResult> invoke(json::object params, ToolContext ctx) override {
    const std::string key(params.at("key").as_string());
    const auto root = ctx.workspace->root();
    append_line(root / "gate.log", "start " + key + " " + worker_);
    asio::steady_timer timer(co_await asio::this_coro::executor);
    std::error_code ec;
    while (!std::filesystem::exists(root / "release", ec)) {
      timer.expires_after(std::chrono::milliseconds(10));
      auto [waited] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (waited) co_return dagent::tool_error(dagent::ToolErrc::cancelled, "gate cancelled");
    }
    append_line(root / "gate.log", "done " + key + " " + worker_);
    co_return json::value(json::object{{"key", key}, {"worker", worker_}});
  }

 private:
  std::string worker_;
};

// "crash" {}: the worker process dies at once (SIGKILL to itself), as on a tool that crashes it.
class CrashTool final : public Tool {
 public:
  std::string_view name() const override { return "crash"; }
  std::string_view description() const override { return "kills its worker"; }
  const json::object& parameters_schema() const override {
    static const json::object s = json::parse(R"({"type":"object"})").as_object();
    return s;
  }
  asio::awaitable<ToolResult> invoke(json::object, ToolContext ctx) override {
    append_line(ctx.workspace->root() / "gate.log", "crash");
    ::kill(::getpid(), SIGKILL);
    co_return json::value(nullptr);
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: dagent_test_worker CONFIG NAME CONCURRENCY [WORKSPACE_ROOT...]\n");
    return 2;
  }
  auto cfg = dagent::config::load_file(argv[1]);
  if (!cfg) {
    for (const auto& line : cfg.error().lines()) std::fprintf(stderr, "%s\n", line.c_str());
    return 2;
  }
  dagent::distributed::WorkerProcessOptions options;
  options.name = argv[2];
  options.concurrency = std::atoi(argv[3]);
  for (int i = 4; i < argc; ++i) options.workspace_roots.emplace_back(argv[i]);
  std::vector<std::shared_ptr<Tool>> extra;
  extra.push_back(std::make_shared<dagent::test::SleepTool>());
  extra.push_back(std::make_shared<GateTool>(options.name));
  extra.push_back(std::make_shared<CrashTool>());
  return dagent::distributed::run_worker_process(*cfg, std::move(options), std::move(extra));
}
