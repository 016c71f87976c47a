#pragma once
// A whole worker process (`dagent worker`, or a program that embeds dagent and adds tools of its
// own): its loop, thread pool, tools, signals and Worker.

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "dagent/tool.hpp"

namespace dagent::distributed {

struct WorkerProcessOptions {
  std::string name;                                  ///< "" : host name and process id
  int concurrency = 0;                               ///< 0: execution.worker_concurrency
  std::vector<std::filesystem::path> workspace_roots;  ///< empty: the current folder
  bool quiet = false;                                ///< no progress lines on stderr
};

/// Runs a worker with the built-in file tools of tools.enabled (the `llm` and memory tools stay
/// with the coordinator), the tools of the MCP servers of mcp.servers (started first, as
/// SERVER.TOOL) and `extra` tools, until SIGTERM or SIGINT; then finishes the jobs underway,
/// withdraws and stops the servers. Returns the exit code: 0, or 2 when the config cannot serve
/// (no redis.url, bad URL, a missing password variable, an MCP server that does not start).
int run_worker_process(const config::Config& cfg, WorkerProcessOptions options,
                       std::vector<std::shared_ptr<Tool>> extra = {});

}  // namespace dagent::distributed
