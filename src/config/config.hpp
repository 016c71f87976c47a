#pragma once
// Typed configuration (SPEC.md §4). Defaults sit beside the fields; nothing outside src/config/
// sees YAML.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/json/value.hpp>

namespace dagent::config {

struct LlmConfig {
  std::string base_url = "https://api.openai.com/v1";
  std::string api_key_env = "OPENAI_API_KEY";
  std::string model = "gpt-4o-mini";
  std::string embedding_model = "text-embedding-3-small";
  std::int64_t timeout_ms = 60000;
  std::int64_t connect_timeout_ms = 5000;
  int max_retries = 2;
  std::string ca_file;
  bool structured_output = true;
  std::int64_t stream_timeout_ms = 600000;     ///< a whole streamed reply, however lively
  std::int64_t stream_max_bytes = 16 << 20;    ///< a streamed reply's body at most
  double retry_budget = 0.2;                   ///< retries at most this fraction of the calls made...
  int retry_budget_min = 5;                    ///< ...but always this many
  std::vector<std::string> models;             ///< more models the `llm` tool may name, besides `model`
};

struct ConnectionPoolingConfig {
  bool enabled = true;
  int max_connections = 100;
  int max_keepalive = 50;
  std::int64_t idle_timeout_ms = 30000;
  /// Open the connections a run's concurrent model calls will need while it plans.
  bool warm_connections = true;
};

/// How the provider counts its limits: a bucket refilled continuously (OpenAI and servers built
/// like it) or the calls of the last 60 s (a rolling window).
enum class RateWindow { bucket, rolling };

struct RateLimitingConfig {
  bool enabled = true;
  std::int64_t rpm_limit = 10000;
  std::int64_t tpm_limit = 2000000;
  double safety_margin = 0.9;
  RateWindow window = RateWindow::bucket;
  /// Draw from one budget kept in Redis (redis.url) with every process that shares it.
  bool shared = false;
  /// Processes sharing the budget: while Redis cannot be reached, each keeps to limit / this.
  int expected_processes = 1;
};

enum class Scheduling { eager, levels };

struct ParallelExecutionConfig {
  bool enabled = true;
  int max_parallel_steps = 5;
  int max_parallel_llm_calls = 3;
  bool dependency_analysis = true;
  Scheduling scheduling = Scheduling::eager;
};

struct BatchEmbeddingsConfig {
  bool enabled = true;
  int batch_size = 100;
  std::int64_t max_delay_ms = 10;
};

/// Where the response cache keeps replies: this process only, or also in Redis for every process.
enum class CacheBackend { memory, redis };

struct CachingConfig {
  bool tool_catalog = true;
  bool prompt_templates = true;
  bool llm_responses = false;
  std::int64_t ttl_seconds = 3600;
  std::int64_t max_entries = 10000;         ///< in each process
  CacheBackend backend = CacheBackend::memory;  ///< redis: needs redis.url and llm_responses
};

struct BackgroundTasksConfig {
  bool verification = true;
  bool memory_updates = true;
};

struct CircuitBreakerConfig {
  bool enabled = true;
  int failure_threshold = 5;
  std::int64_t open_ms = 30000;
};

struct PerformanceConfig {
  ConnectionPoolingConfig connection_pooling;
  RateLimitingConfig rate_limiting;
  ParallelExecutionConfig parallel_execution;
  BatchEmbeddingsConfig batch_embeddings;
  CachingConfig caching;
  BackgroundTasksConfig background_tasks;
  CircuitBreakerConfig circuit_breaker;
};

/// A keyword route: when a goal names its keywords, the planner skips intent analysis and offers
/// only the route's tools.
struct Route {
  std::string name;
  std::vector<std::string> keywords;
  std::vector<std::string> tools;  ///< empty: every enabled tool
  int line = 0;                    ///< where it was configured, for messages
};

/// Replacement prompt templates (files, relative to the config file); empty: the built-in one.
struct PromptFiles {
  std::string intent;
  std::string plan;
  std::string repair;
  std::string replan;
  std::string answer;
};

/// When the intent call runs relative to the plan call (issue 15): before it (the plan waits),
/// beside it (a plan with every tool, kept when it uses only the intent's tools), or folded into
/// it (one call returns the intent and the plan).
enum class IntentMode { sequential, speculative, folded };

struct PlannerConfig {
  bool intent_analysis = true;
  IntentMode intent_mode = IntentMode::speculative;
  bool stream_plan = true;
  int max_steps = 50;
  int max_replans = 1;
  bool synthesize_answer = true;
  int answer_budget_tokens = 3000;  ///< step outputs shown to answer synthesis, in estimated tokens
  int quote_budget_tokens = 1000;   ///< a model reply quoted back in a repair prompt, in estimated tokens
  std::int64_t planning_timeout_ms = 300000;  ///< intent, plan and repair calls of one planning, together
  std::int64_t answer_timeout_ms = 300000;    ///< one answer synthesis (or replan) call
  std::vector<Route> routes;
  PromptFiles prompts;
};

struct ExecutorConfig {
  std::int64_t step_timeout_ms = 120000;
  int step_retries = 0;
  int max_fan_out = 10000;  ///< most items one for_each step may fan out to
};

struct VerificationConfig {
  bool llm_judge = true;
  int max_reruns = 1;
};

enum class IndexKind { flat, hnsw };

struct MemoryConfig {
  bool enabled = true;
  std::string path = ".dagent/memory";
  IndexKind index = IndexKind::flat;
  int recall_k = 5;
  int chunk_chars = 2000;
  int chunk_overlap = 200;
  int dimensions = 0;  ///< asks the embedding model for vectors this long; 0: the model's default
};

/// Per-run budgets (README "Budgets"); 0 is unlimited.
struct LimitsConfig {
  std::int64_t max_llm_calls = 0;          ///< chat calls a run may start (planner, llm steps, judge)
  std::int64_t max_tokens = 0;             ///< prompt + completion tokens of those calls together
  std::int64_t max_wall_ms = 0;            ///< a run's wall time; then it is cancelled
  std::int64_t max_tokens_per_call = 4096; ///< an llm step's max_tokens at most, and its default
};

struct ToolsConfig {
  std::string workspace = ".";
  std::int64_t read_max_bytes = 1 << 20;        ///< read_file's default and largest max_bytes
  std::int64_t search_max_line_bytes = 64 << 10;  ///< search_files looks at this much of a line
  std::vector<std::string> enabled = {"read_file", "write_file", "list_dir", "search_files",
                                      "llm",       "memory_search", "memory_add"};
  /// Tools that need the user's consent before each call: names or globs (`*`, `?`, `[...]`,
  /// e.g. `write_*`). Empty: none, so non-interactive runs behave as before.
  std::vector<std::string> approval;
  /// tools.protected: what tools never write. `name/` (one name ending in `/`): any file or folder
  /// of that name at any depth; anything else: a path (relative to the config file's folder, or
  /// absolute) with everything below it. The config file, prompt files, memory folder and the
  /// recording in use are protected besides, whatever this says.
  std::vector<std::string> protected_paths = {".git/", ".dagent/"};
};

/// One MCP server (config `mcp.servers.NAME`): a command run as a child process (stdio) or a
/// Streamable HTTP `url`. Exactly one of `command` and `url` is set.
struct McpServerConfig {
  std::vector<std::string> command;                           ///< argv; argv[0] looked up in PATH
  std::vector<std::pair<std::string, std::string>> env;       ///< added to dagent's environment; `${VAR}` expands
  std::string cwd;                                            ///< the child's folder (relative: to the config's folder)
  std::int64_t timeout_ms = 30000;                            ///< one request's limit; a progress notification restarts it
  std::string url;                                            ///< https://host/mcp (http:// only to loopback)
  std::vector<std::pair<std::string, std::string>> headers;   ///< HTTP headers; `${VAR}` expands
  int line = 0;                                               ///< where it is configured, for messages
};

struct McpConfig {
  std::map<std::string, McpServerConfig> servers;  ///< by name: [A-Za-z0-9_-]+, a tool is `NAME.TOOL`
};

/// Where a task came from, for messages.
struct SourceLocation {
  std::string file;  ///< a path, or "--set"
  int line = 0;      ///< 1-based; 0 when unknown
};

/// A task (SPEC §2), from a task file or an entry of `tasks:`.
struct Task {
  std::string name;
  std::string goal;
  std::filesystem::path workspace;   ///< absolute; empty for a `tasks:` entry without one (then tools.workspace)
  boost::json::object inputs;
  std::optional<boost::json::value> plan;  ///< a fixed plan: the JSON array or {"steps": [...]}
  std::filesystem::path plan_file;         ///< where a fixed plan was read from, if a file
  SourceLocation source;
};

/// The shared Redis of a scale-out (README "Scale-out on Redis"); url "" is off.
struct RedisConfig {
  std::string url;                         ///< redis://host:port/db (loopback only) or rediss://
  std::string password_env;                ///< the variable holding the password; "" sends no AUTH
  std::string ca_file;                     ///< extra PEM bundle to trust for rediss://
  std::int64_t timeout_ms = 250;           ///< one command or pipeline, from send to last reply
  std::int64_t connect_timeout_ms = 1000;  ///< TCP connect, TLS handshake, AUTH and SELECT
  int pool_size = 4;                       ///< connections at most
};

/// Where plan steps run: in this process, or (redis) also on `dagent worker` processes that take
/// them from a Redis Stream (README "Running on many machines").
enum class ExecutionBackend { local, redis };

struct ExecutionConfig {
  ExecutionBackend backend = ExecutionBackend::local;  ///< `dagent run --distributed` sets redis
  /// A worker's job not kept fresh for this long (the worker died) is taken by another worker.
  std::int64_t visibility_timeout_ms = 30000;
  /// Remote calls a run keeps in flight at once; 0: the live workers' total concurrency.
  int max_remote_in_flight = 0;
  int worker_concurrency = 4;  ///< jobs one `dagent worker` runs at once (--concurrency overrides)
  /// A job taken more often than this (its workers died running it: a poison job) fails instead.
  int max_deliveries = 3;
};

/// The run history (README "Run history"): every run written to a SQLite database.
struct HistoryConfig {
  bool enabled = true;
  std::string path;   ///< the database file; "": $XDG_STATE_HOME/dagent/history.db (else ~/.local/state/…)
  int keep_days = 30; ///< runs older than this are removed after each write; 0 keeps them all
};

/// The service (README "Service (dagent serve)"): an HTTP server that takes runs.
struct ServeConfig {
  std::string listen = "127.0.0.1:8080";  ///< HOST:PORT; beyond loopback only with token_env (`--listen` overrides)
  std::string token_env;                  ///< env variable holding the bearer token; "": no token asked
  int max_concurrent_runs = 4;            ///< runs underway at once; more wait in the queue
  int max_queued_runs = 100;              ///< runs waiting; beyond, POST /v1/runs answers 503
  std::int64_t max_body_bytes = 1 << 20;  ///< a request body larger than this is refused (413)
  std::int64_t drain_ms = 30000;          ///< SIGTERM: running runs get this long, then are cancelled
  int max_connections = 256;              ///< open connections; more are closed at once
  std::int64_t idle_timeout_ms = 30000;   ///< a connection with no request for this long is closed
  int max_event_clients = 64;             ///< event streams open at once (all runs)
  int runs_kept = 1000;                   ///< finished runs kept in memory; older: from the history
  std::int64_t event_bytes = 4 << 20;     ///< a run's buffered events beyond this: answer deltas dropped
};

struct Config {
  LlmConfig llm;
  RedisConfig redis;
  ExecutionConfig execution;
  PerformanceConfig performance;
  PlannerConfig planner;
  ExecutorConfig executor;
  VerificationConfig verification;
  MemoryConfig memory;
  ToolsConfig tools;
  LimitsConfig limits;
  McpConfig mcp;
  HistoryConfig history;
  ServeConfig serve;
  std::map<std::string, Task> tasks;
  std::filesystem::path base_dir = ".";  ///< folder of the config file; relative paths resolve here
  std::string source = "<defaults>";      ///< the config file's path, or "<defaults>"
};

}  // namespace dagent::config
