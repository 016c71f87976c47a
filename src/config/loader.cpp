#include "config/loader.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include <boost/json/array.hpp>
#include <boost/json/stream_parser.hpp>
#include <boost/json/value.hpp>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include "net/secret.hpp"
#include "net/url.hpp"
#include "redis/redis_url.hpp"
#include "text/utf8.hpp"

namespace dagent::config {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

constexpr std::string_view k_override_label = "--set";
constexpr std::string_view k_tasks_key = "tasks";
constexpr std::string_view k_routes_key = "planner.routes";
constexpr std::string_view k_mcp_key = "mcp";
constexpr std::size_t k_max_suggestion_distance = 2;
constexpr std::size_t k_max_shown_chars = 40;
// Limits on untrusted YAML: a file is refused before parsing past k_max_file_bytes; a value is
// refused when nested deeper than k_max_depth or when walking it (aliases expanded) would produce
// more than k_max_values values, so an alias bomb costs bounded memory.
constexpr std::uintmax_t k_max_file_bytes = 16u << 20;
constexpr int k_max_depth = 64;
constexpr std::size_t k_max_values = 1'000'000;

constexpr std::array<std::string_view, 2> k_scheduling_names = {"eager", "levels"};
constexpr std::array<std::string_view, 2> k_index_names = {"flat", "hnsw"};
constexpr std::array<std::string_view, 2> k_rate_window_names = {"bucket", "rolling"};
constexpr std::array<std::string_view, 2> k_execution_backend_names = {"local", "redis"};
constexpr std::array<std::string_view, 3> k_intent_mode_names = {"sequential", "speculative", "folded"};
constexpr std::array<std::string_view, 2> k_cache_backend_names = {"memory", "redis"};
constexpr std::array<std::string_view, 7> k_tool_names = {
    "read_file", "write_file", "list_dir", "search_files", "llm", "memory_search", "memory_add"};
constexpr std::array<std::string_view, 5> k_task_keys = {"name", "goal", "workspace", "inputs",
                                                         "plan"};

// ---------------------------------------------------------------------------------------------
// Problems and positions

enum class Lines { shown, hidden };

struct Reporter {
  std::string file;
  Lines lines = Lines::shown;
  std::vector<Problem> problems;
  // Values still allowed from yaml_to_json over the whole file: shared, so many tasks each near
  // the limit cannot add up.
  std::size_t values_left = k_max_values;

  void add(int line, std::string key, std::string message) {
    problems.push_back(
        {file, lines == Lines::shown ? line : 0, std::move(key), std::move(message)});
  }

  bool has_problem_with(std::string_view key) const {
    return std::any_of(problems.begin(), problems.end(),
                       [key](const Problem& p) { return p.key == key; });
  }
};

int line_of(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.line >= 0 ? mark.line + 1 : 0;
}

// yaml-cpp marks an empty value at the token after it, often on the next line; the key's line is
// the one the user wrote.
int value_line(const YAML::Node& key, const YAML::Node& value) {
  return value.IsNull() ? line_of(key) : line_of(value);
}

std::string join_key(std::string_view prefix, std::string_view name) {
  std::string out(prefix);
  if (!out.empty()) out += '.';
  out += name;
  return out;
}

std::string join_names(std::span<const std::string_view> names) {
  std::string out;
  for (std::string_view name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

// Optimal string alignment distance: a transposition of two neighbours counts as one edit.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::optional<std::string_view> closest(std::string_view word,
                                        std::span<const std::string_view> candidates) {
  std::optional<std::string_view> best;
  std::size_t best_distance = k_max_suggestion_distance + 1;
  for (std::string_view candidate : candidates) {
    const std::size_t distance = edit_distance(word, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string unknown_message(std::string_view what, std::string_view word,
                            std::span<const std::string_view> known) {
  std::string message(what);
  if (const auto suggestion = closest(word, known)) {
    message += "; did you mean '" + std::string(*suggestion) + "'?";
  } else if (!known.empty()) {
    message += " (known: " + join_names(known) + ")";
  }
  return message;
}

// ---------------------------------------------------------------------------------------------
// Scalars, typed by the YAML 1.2 core schema

using Scalar = std::variant<std::nullptr_t, bool, std::int64_t, double, std::string>;

enum class IntegerText { not_integer, fits, overflows };

bool all_digits(std::string_view text, int base) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [base](char c) {
    if (base == 8) return c >= '0' && c <= '7';
    if (base == 16) return std::isxdigit(static_cast<unsigned char>(c)) != 0;
    return c >= '0' && c <= '9';
  });
}

IntegerText parse_integer(std::string_view text, std::int64_t& value) {
  int base = 10;
  std::string_view digits = text;
  if (text.starts_with("0x") || text.starts_with("0o")) {
    base = text[1] == 'x' ? 16 : 8;
    digits.remove_prefix(2);
  } else if (text.starts_with('+')) {
    digits.remove_prefix(1);
  }
  if (!all_digits(digits.starts_with('-') && base == 10 ? digits.substr(1) : digits, base)) {
    return IntegerText::not_integer;
  }
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (ec == std::errc::result_out_of_range) return IntegerText::overflows;
  return ec == std::errc{} && end == digits.data() + digits.size() ? IntegerText::fits
                                                                    : IntegerText::not_integer;
}

bool parse_float(std::string_view text, double& value) {
  std::string_view body = text;
  bool negative = false;
  if (body.starts_with('+') || body.starts_with('-')) {
    negative = body.front() == '-';
    body.remove_prefix(1);
  }
  if (body == ".inf" || body == ".Inf" || body == ".INF") {
    value = negative ? -std::numeric_limits<double>::infinity()
                     : std::numeric_limits<double>::infinity();
    return true;
  }
  if (text == ".nan" || text == ".NaN" || text == ".NAN") {
    value = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  std::size_t i = 0;
  const auto digits = [&] {
    const std::size_t start = i;
    while (i < body.size() && body[i] >= '0' && body[i] <= '9') ++i;
    return i - start;
  };
  std::size_t mantissa = digits();
  if (i < body.size() && body[i] == '.') {
    ++i;
    mantissa += digits();
  }
  if (mantissa == 0) return false;
  if (i < body.size() && (body[i] == 'e' || body[i] == 'E')) {
    ++i;
    if (i < body.size() && (body[i] == '+' || body[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  if (i != body.size()) return false;
  const auto [end, ec] = std::from_chars(body.data(), body.data() + body.size(), value);
  if (ec == std::errc::result_out_of_range) {
    const bool tiny = body.find("e-") != std::string_view::npos ||
                      body.find("E-") != std::string_view::npos;
    value = tiny ? 0.0 : std::numeric_limits<double>::infinity();
  } else if (ec != std::errc{} || end != body.data() + body.size()) {
    return false;
  }
  if (negative) value = -value;
  return true;
}

// A scalar's text as dagent keeps it. The YAML text was repaired before parsing, yet yaml-cpp can
// still hand back bytes that are not UTF-8 (a NUL inside an aliased plain scalar did, found by
// fuzz_config); repairing each scalar and key is free when it is valid.
std::string text_of(const YAML::Node& node) {
  std::string text = node.Scalar();
  text::make_valid_utf8(text);
  return text;
}

bool is_plain(const YAML::Node& node) {
  const std::string& tag = node.Tag();
  return tag != "!" && tag != "tag:yaml.org,2002:str";
}

Scalar resolve(const YAML::Node& node) {
  if (node.IsNull()) return nullptr;
  const std::string text = text_of(node);
  if (!is_plain(node)) return text;
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  std::int64_t integer = 0;
  switch (parse_integer(text, integer)) {
    case IntegerText::fits:
      return integer;
    case IntegerText::overflows: {
      double approx = 0;
      if (parse_float(text, approx)) return approx;
      return text;
    }
    case IntegerText::not_integer:
      break;
  }
  double number = 0;
  if (parse_float(text, number)) return number;
  return text;
}

std::string shown(std::string_view text) {
  std::string out = "'";
  if (text.size() > k_max_shown_chars) {
    out += text.substr(0, k_max_shown_chars);
    out += "...";
  } else {
    out += text;
  }
  out += "'";
  return out;
}

std::string describe(const YAML::Node& node) {
  if (node.IsMap()) return "a map";
  if (node.IsSequence()) return "a list";
  if (!node.IsScalar()) return "an empty value";
  const Scalar value = resolve(node);
  const std::string text = shown(node.Scalar());
  if (std::holds_alternative<bool>(value)) return "a boolean (" + text + ")";
  if (std::holds_alternative<std::int64_t>(value)) return "an integer (" + text + ")";
  if (std::holds_alternative<double>(value)) return "a number (" + text + ")";
  return "a string (" + text + ")";
}

std::string format_number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// ---------------------------------------------------------------------------------------------
// The field table: one descriptor per config key, used by the file loader, the overrides and
// to_json.

template <class T>
using Ref = T& (*)(Config&);

using AnyRef = std::variant<Ref<bool>, Ref<int>, Ref<std::int64_t>, Ref<double>, Ref<std::string>,
                            Ref<Scheduling>, Ref<IndexKind>, Ref<RateWindow>, Ref<IntentMode>, Ref<CacheBackend>,
                            Ref<ExecutionBackend>,
                            Ref<std::vector<std::string>>>;

enum class Emptiness { allowed, refused };
enum class LowerBound { inclusive, exclusive };

struct Field {
  std::string_view key;
  AnyRef ref;
  std::int64_t min = 0;                      ///< integers
  std::int64_t max = 0;                      ///< integers
  double low = 0;                            ///< numbers
  LowerBound low_bound = LowerBound::inclusive;
  double high = 0;                           ///< numbers, inclusive
  std::span<const std::string_view> names;   ///< choices in enum order; allowed list entries
  Emptiness emptiness = Emptiness::refused;  ///< strings
};

constexpr std::int64_t k_int_max = std::numeric_limits<int>::max();
constexpr std::int64_t k_int64_max = std::numeric_limits<std::int64_t>::max();
// Durations stay far from the clock's range, so `now() + duration` never overflows.
constexpr std::int64_t k_max_ms = 7LL * 24 * 3600 * 1000;  // a week
constexpr std::int64_t k_max_seconds = 365LL * 24 * 3600;  // a year
constexpr std::int64_t k_max_bytes = 1LL << 30;            // 1 GiB

constexpr Field flag(std::string_view key, Ref<bool> ref) { return {.key = key, .ref = ref}; }

constexpr Field integer(std::string_view key, Ref<int> ref, std::int64_t min,
                        std::int64_t max = k_int_max) {
  return {.key = key, .ref = ref, .min = min, .max = max};
}

constexpr Field integer(std::string_view key, Ref<std::int64_t> ref, std::int64_t min,
                        std::int64_t max = k_int64_max) {
  return {.key = key, .ref = ref, .min = min, .max = max};
}

constexpr Field number(std::string_view key, Ref<double> ref, double low, LowerBound low_bound,
                       double high) {
  return {.key = key, .ref = ref, .low = low, .low_bound = low_bound, .high = high};
}

constexpr Field text(std::string_view key, Ref<std::string> ref,
                     Emptiness emptiness = Emptiness::refused) {
  return {.key = key, .ref = ref, .emptiness = emptiness};
}

constexpr Field choice(std::string_view key, Ref<Scheduling> ref) {
  return {.key = key, .ref = ref, .names = k_scheduling_names};
}

constexpr Field choice(std::string_view key, Ref<IndexKind> ref) {
  return {.key = key, .ref = ref, .names = k_index_names};
}

constexpr Field choice(std::string_view key, Ref<RateWindow> ref) {
  return {.key = key, .ref = ref, .names = k_rate_window_names};
}

constexpr Field choice(std::string_view key, Ref<IntentMode> ref) {
  return {.key = key, .ref = ref, .names = k_intent_mode_names};
}

constexpr Field choice(std::string_view key, Ref<CacheBackend> ref) {
  return {.key = key, .ref = ref, .names = k_cache_backend_names};
}

constexpr Field choice(std::string_view key, Ref<ExecutionBackend> ref) {
  return {.key = key, .ref = ref, .names = k_execution_backend_names};
}

constexpr Field name_list(std::string_view key, Ref<std::vector<std::string>> ref,
                          std::span<const std::string_view> allowed) {
  return {.key = key, .ref = ref, .names = allowed};
}

constexpr std::array k_fields = {
    text("llm.base_url", [](Config& c) -> auto& { return c.llm.base_url; }),
    text("llm.api_key_env", [](Config& c) -> auto& { return c.llm.api_key_env; }),
    text("llm.model", [](Config& c) -> auto& { return c.llm.model; }),
    text("llm.embedding_model", [](Config& c) -> auto& { return c.llm.embedding_model; }),
    integer("llm.timeout_ms", [](Config& c) -> auto& { return c.llm.timeout_ms; }, 1, k_max_ms),
    integer("llm.connect_timeout_ms", [](Config& c) -> auto& { return c.llm.connect_timeout_ms; },
            1, k_max_ms),
    integer("llm.max_retries", [](Config& c) -> auto& { return c.llm.max_retries; }, 0, 10),
    text("llm.ca_file", [](Config& c) -> auto& { return c.llm.ca_file; }, Emptiness::allowed),
    flag("llm.structured_output", [](Config& c) -> auto& { return c.llm.structured_output; }),
    integer("llm.stream_timeout_ms", [](Config& c) -> auto& { return c.llm.stream_timeout_ms; }, 1,
            k_max_ms),
    integer("llm.stream_max_bytes", [](Config& c) -> auto& { return c.llm.stream_max_bytes; }, 1024,
            k_max_bytes),
    number("llm.retry_budget", [](Config& c) -> auto& { return c.llm.retry_budget; }, 0.0,
           LowerBound::inclusive, 10.0),
    integer("llm.retry_budget_min", [](Config& c) -> auto& { return c.llm.retry_budget_min; }, 0,
            1000),
    name_list("llm.models", [](Config& c) -> auto& { return c.llm.models; }, {}),  // any model names

    text("redis.url", [](Config& c) -> auto& { return c.redis.url; }, Emptiness::allowed),
    text("redis.password_env", [](Config& c) -> auto& { return c.redis.password_env; }, Emptiness::allowed),
    text("redis.ca_file", [](Config& c) -> auto& { return c.redis.ca_file; }, Emptiness::allowed),
    integer("redis.timeout_ms", [](Config& c) -> auto& { return c.redis.timeout_ms; }, 1, k_max_ms),
    integer("redis.connect_timeout_ms", [](Config& c) -> auto& { return c.redis.connect_timeout_ms; }, 1, k_max_ms),
    integer("redis.pool_size", [](Config& c) -> auto& { return c.redis.pool_size; }, 1, 1024),

    choice("execution.backend", [](Config& c) -> auto& { return c.execution.backend; }),
    integer("execution.visibility_timeout_ms", [](Config& c) -> auto& { return c.execution.visibility_timeout_ms; },
            100, k_max_ms),
    integer("execution.max_remote_in_flight", [](Config& c) -> auto& { return c.execution.max_remote_in_flight; }, 0,
            100000),
    integer("execution.worker_concurrency", [](Config& c) -> auto& { return c.execution.worker_concurrency; }, 1, 1024),
    integer("execution.max_deliveries", [](Config& c) -> auto& { return c.execution.max_deliveries; }, 1, 1000),

    flag("performance.connection_pooling.enabled",
         [](Config& c) -> auto& { return c.performance.connection_pooling.enabled; }),
    integer("performance.connection_pooling.max_connections",
            [](Config& c) -> auto& { return c.performance.connection_pooling.max_connections; },
            1, 100000),
    integer("performance.connection_pooling.max_keepalive",
            [](Config& c) -> auto& { return c.performance.connection_pooling.max_keepalive; }, 0,
            100000),
    integer("performance.connection_pooling.idle_timeout_ms",
            [](Config& c) -> auto& { return c.performance.connection_pooling.idle_timeout_ms; },
            1, k_max_ms),
    flag("performance.connection_pooling.warm_connections",
         [](Config& c) -> auto& { return c.performance.connection_pooling.warm_connections; }),

    flag("performance.rate_limiting.enabled",
         [](Config& c) -> auto& { return c.performance.rate_limiting.enabled; }),
    integer("performance.rate_limiting.rpm_limit",
            [](Config& c) -> auto& { return c.performance.rate_limiting.rpm_limit; }, 1,
            1000000000),
    integer("performance.rate_limiting.tpm_limit",
            [](Config& c) -> auto& { return c.performance.rate_limiting.tpm_limit; }, 1,
            1000000000000),
    number("performance.rate_limiting.safety_margin",
           [](Config& c) -> auto& { return c.performance.rate_limiting.safety_margin; }, 0.0,
           LowerBound::exclusive, 1.0),
    choice("performance.rate_limiting.window",
           [](Config& c) -> auto& { return c.performance.rate_limiting.window; }),
    flag("performance.rate_limiting.shared",
         [](Config& c) -> auto& { return c.performance.rate_limiting.shared; }),
    integer("performance.rate_limiting.expected_processes",
            [](Config& c) -> auto& { return c.performance.rate_limiting.expected_processes; }, 1, 100000),

    flag("performance.parallel_execution.enabled",
         [](Config& c) -> auto& { return c.performance.parallel_execution.enabled; }),
    integer("performance.parallel_execution.max_parallel_steps",
            [](Config& c) -> auto& {
              return c.performance.parallel_execution.max_parallel_steps;
            },
            1, 4096),
    integer("performance.parallel_execution.max_parallel_llm_calls",
            [](Config& c) -> auto& {
              return c.performance.parallel_execution.max_parallel_llm_calls;
            },
            1, 4096),
    flag("performance.parallel_execution.dependency_analysis",
         [](Config& c) -> auto& { return c.performance.parallel_execution.dependency_analysis; }),
    choice("performance.parallel_execution.scheduling",
           [](Config& c) -> auto& { return c.performance.parallel_execution.scheduling; }),

    flag("performance.batch_embeddings.enabled",
         [](Config& c) -> auto& { return c.performance.batch_embeddings.enabled; }),
    integer("performance.batch_embeddings.batch_size",
            [](Config& c) -> auto& { return c.performance.batch_embeddings.batch_size; }, 1, 2048),
    integer("performance.batch_embeddings.max_delay_ms",
            [](Config& c) -> auto& { return c.performance.batch_embeddings.max_delay_ms; }, 0,
            60000),

    flag("performance.caching.tool_catalog",
         [](Config& c) -> auto& { return c.performance.caching.tool_catalog; }),
    flag("performance.caching.prompt_templates",
         [](Config& c) -> auto& { return c.performance.caching.prompt_templates; }),
    flag("performance.caching.llm_responses",
         [](Config& c) -> auto& { return c.performance.caching.llm_responses; }),
    integer("performance.caching.ttl_seconds",
            [](Config& c) -> auto& { return c.performance.caching.ttl_seconds; }, 0,
            k_max_seconds),
    integer("performance.caching.max_entries",
            [](Config& c) -> auto& { return c.performance.caching.max_entries; }, 0,
            100000000),
    choice("performance.caching.backend", [](Config& c) -> auto& { return c.performance.caching.backend; }),

    flag("performance.background_tasks.verification",
         [](Config& c) -> auto& { return c.performance.background_tasks.verification; }),
    flag("performance.background_tasks.memory_updates",
         [](Config& c) -> auto& { return c.performance.background_tasks.memory_updates; }),

    flag("performance.circuit_breaker.enabled",
         [](Config& c) -> auto& { return c.performance.circuit_breaker.enabled; }),
    integer("performance.circuit_breaker.failure_threshold",
            [](Config& c) -> auto& { return c.performance.circuit_breaker.failure_threshold; }, 1,
            1000000),
    integer("performance.circuit_breaker.open_ms",
            [](Config& c) -> auto& { return c.performance.circuit_breaker.open_ms; }, 1, k_max_ms),

    flag("planner.intent_analysis", [](Config& c) -> auto& { return c.planner.intent_analysis; }),
    choice("planner.intent_mode", [](Config& c) -> auto& { return c.planner.intent_mode; }),
    flag("planner.stream_plan", [](Config& c) -> auto& { return c.planner.stream_plan; }),
    integer("planner.max_steps", [](Config& c) -> auto& { return c.planner.max_steps; }, 1,
            10000),
    integer("planner.max_replans", [](Config& c) -> auto& { return c.planner.max_replans; }, 0,
            10),
    flag("planner.synthesize_answer",
         [](Config& c) -> auto& { return c.planner.synthesize_answer; }),
    integer("planner.answer_budget_tokens",
            [](Config& c) -> auto& { return c.planner.answer_budget_tokens; }, 100, 1000000),
    integer("planner.quote_budget_tokens",
            [](Config& c) -> auto& { return c.planner.quote_budget_tokens; }, 50, 1000000),
    integer("planner.planning_timeout_ms",
            [](Config& c) -> auto& { return c.planner.planning_timeout_ms; }, 1, k_max_ms),
    integer("planner.answer_timeout_ms",
            [](Config& c) -> auto& { return c.planner.answer_timeout_ms; }, 1, k_max_ms),
    text("planner.prompts.intent", [](Config& c) -> auto& { return c.planner.prompts.intent; },
         Emptiness::allowed),
    text("planner.prompts.plan", [](Config& c) -> auto& { return c.planner.prompts.plan; },
         Emptiness::allowed),
    text("planner.prompts.repair", [](Config& c) -> auto& { return c.planner.prompts.repair; },
         Emptiness::allowed),
    text("planner.prompts.replan", [](Config& c) -> auto& { return c.planner.prompts.replan; },
         Emptiness::allowed),
    text("planner.prompts.answer", [](Config& c) -> auto& { return c.planner.prompts.answer; },
         Emptiness::allowed),

    integer("executor.step_timeout_ms",
            [](Config& c) -> auto& { return c.executor.step_timeout_ms; }, 1, k_max_ms),
    integer("executor.step_retries", [](Config& c) -> auto& { return c.executor.step_retries; },
            0, 10),
    integer("executor.max_fan_out", [](Config& c) -> auto& { return c.executor.max_fan_out; }, 0, 1000000),

    flag("verification.llm_judge", [](Config& c) -> auto& { return c.verification.llm_judge; }),
    integer("verification.max_reruns",
            [](Config& c) -> auto& { return c.verification.max_reruns; }, 0, 10),

    flag("memory.enabled", [](Config& c) -> auto& { return c.memory.enabled; }),
    text("memory.path", [](Config& c) -> auto& { return c.memory.path; }),
    choice("memory.index", [](Config& c) -> auto& { return c.memory.index; }),
    integer("memory.recall_k", [](Config& c) -> auto& { return c.memory.recall_k; }, 1, 1000),
    integer("memory.chunk_chars", [](Config& c) -> auto& { return c.memory.chunk_chars; }, 100,
            10000000),
    integer("memory.chunk_overlap", [](Config& c) -> auto& { return c.memory.chunk_overlap; },
            0),
    integer("memory.dimensions", [](Config& c) -> auto& { return c.memory.dimensions; }, 0, 16384),

    flag("history.enabled", [](Config& c) -> auto& { return c.history.enabled; }),
    text("history.path", [](Config& c) -> auto& { return c.history.path; }, Emptiness::allowed),
    integer("history.keep_days", [](Config& c) -> auto& { return c.history.keep_days; }, 0, 36500),

    text("serve.listen", [](Config& c) -> auto& { return c.serve.listen; }),
    text("serve.token_env", [](Config& c) -> auto& { return c.serve.token_env; }, Emptiness::allowed),
    integer("serve.max_concurrent_runs", [](Config& c) -> auto& { return c.serve.max_concurrent_runs; }, 1, 10000),
    integer("serve.max_queued_runs", [](Config& c) -> auto& { return c.serve.max_queued_runs; }, 0, 1000000),
    integer("serve.max_body_bytes", [](Config& c) -> auto& { return c.serve.max_body_bytes; }, 1024, k_max_bytes),
    integer("serve.drain_ms", [](Config& c) -> auto& { return c.serve.drain_ms; }, 0, k_max_ms),
    integer("serve.max_connections", [](Config& c) -> auto& { return c.serve.max_connections; }, 1, 100000),
    integer("serve.idle_timeout_ms", [](Config& c) -> auto& { return c.serve.idle_timeout_ms; }, 100, k_max_ms),
    integer("serve.max_event_clients", [](Config& c) -> auto& { return c.serve.max_event_clients; }, 0, 100000),
    integer("serve.runs_kept", [](Config& c) -> auto& { return c.serve.runs_kept; }, 1, 1000000),
    integer("serve.event_bytes", [](Config& c) -> auto& { return c.serve.event_bytes; }, 4096, k_max_bytes),

    text("tools.workspace", [](Config& c) -> auto& { return c.tools.workspace; }),
    integer("tools.read_max_bytes", [](Config& c) -> auto& { return c.tools.read_max_bytes; }, 1,
            k_max_bytes),
    integer("tools.search_max_line_bytes",
            [](Config& c) -> auto& { return c.tools.search_max_line_bytes; }, 64, 16 << 20),
    name_list("tools.enabled", [](Config& c) -> auto& { return c.tools.enabled; },
              k_tool_names),
    // Tool names or globs; any name, since programs register tools of their own.
    name_list("tools.approval", [](Config& c) -> auto& { return c.tools.approval; }, {}),
    // Any names (no allowed list): see ToolsConfig::protected_paths.
    name_list("tools.protected", [](Config& c) -> auto& { return c.tools.protected_paths; }, {}),

    integer("limits.max_llm_calls", [](Config& c) -> auto& { return c.limits.max_llm_calls; }, 0),
    integer("limits.max_tokens", [](Config& c) -> auto& { return c.limits.max_tokens; }, 0),
    integer("limits.max_wall_ms", [](Config& c) -> auto& { return c.limits.max_wall_ms; }, 0, k_max_ms),
    integer("limits.max_tokens_per_call",
            [](Config& c) -> auto& { return c.limits.max_tokens_per_call; }, 0, 1 << 20),
};

const Field* find_field(std::string_view key) {
  const auto it = std::find_if(k_fields.begin(), k_fields.end(),
                               [key](const Field& f) { return f.key == key; });
  return it == k_fields.end() ? nullptr : &*it;
}

bool is_section(std::string_view key) {
  return std::any_of(k_fields.begin(), k_fields.end(), [key](const Field& f) {
    return f.key.size() > key.size() && f.key.starts_with(key) && f.key[key.size()] == '.';
  });
}

// The names one level below `prefix` ("" is the top level), in table order.
std::vector<std::string_view> children_of(std::string_view prefix) {
  std::vector<std::string_view> out;
  for (const Field& field : k_fields) {
    std::string_view rest = field.key;
    if (!prefix.empty()) {
      if (!(rest.size() > prefix.size() && rest.starts_with(prefix) && rest[prefix.size()] == '.'))
        continue;
      rest.remove_prefix(prefix.size() + 1);
    }
    const std::string_view name = rest.substr(0, rest.find('.'));
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  if (prefix.empty()) out.push_back(k_tasks_key), out.push_back(k_mcp_key);
  if (prefix == "planner") out.push_back(k_routes_key.substr(k_routes_key.find('.') + 1));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reading one field's value

struct Place {
  std::string_view key;
  int line = 0;
};

std::optional<bool> read_flag(const YAML::Node& value, const Place& at, Reporter& out) {
  if (value.IsScalar()) {
    const Scalar scalar = resolve(value);
    if (const bool* b = std::get_if<bool>(&scalar)) return *b;
  }
  out.add(at.line, std::string(at.key), "expected true or false, got " + describe(value));
  return std::nullopt;
}

std::optional<std::int64_t> read_integer(const Field& field, const YAML::Node& value,
                                         const Place& at, Reporter& out) {
  std::int64_t number = 0;
  const IntegerText parsed = value.IsScalar() && is_plain(value)
                                 ? parse_integer(value.Scalar(), number)
                                 : IntegerText::not_integer;
  if (parsed == IntegerText::not_integer) {
    out.add(at.line, std::string(at.key), "expected an integer, got " + describe(value));
    return std::nullopt;
  }
  if (parsed == IntegerText::overflows || number < field.min || number > field.max) {
    const bool open_ended = field.max == k_int_max || field.max == k_int64_max;
    const bool too_low = parsed == IntegerText::fits && number < field.min;
    const std::string range = open_ended && too_low
                                  ? "must be at least " + std::to_string(field.min)
                                  : "must be between " + std::to_string(field.min) + " and " +
                                        std::to_string(field.max);
    out.add(at.line, std::string(at.key), range + ", got " + value.Scalar());
    return std::nullopt;
  }
  return number;
}

std::optional<double> read_number(const Field& field, const YAML::Node& value, const Place& at,
                                  Reporter& out) {
  std::optional<double> number;
  if (value.IsScalar()) {
    const Scalar scalar = resolve(value);
    if (const auto* i = std::get_if<std::int64_t>(&scalar)) number = static_cast<double>(*i);
    if (const auto* d = std::get_if<double>(&scalar)) number = *d;
  }
  if (!number) {
    out.add(at.line, std::string(at.key), "expected a number, got " + describe(value));
    return std::nullopt;
  }
  const bool above_low =
      field.low_bound == LowerBound::exclusive ? *number > field.low : *number >= field.low;
  if (!(above_low && *number <= field.high)) {
    const std::string low_text = field.low_bound == LowerBound::exclusive
                                     ? "greater than " + format_number(field.low)
                                     : "at least " + format_number(field.low);
    out.add(at.line, std::string(at.key),
            "must be " + low_text + " and at most " + format_number(field.high) + ", got " +
                value.Scalar());
    return std::nullopt;
  }
  return number;
}

std::optional<std::string> read_text(const Field& field, const YAML::Node& value,
                                     const Place& at, Reporter& out) {
  if (value.IsNull()) {
    if (field.emptiness == Emptiness::allowed) return std::string();
    out.add(at.line, std::string(at.key), "must not be empty");
    return std::nullopt;
  }
  if (!value.IsScalar()) {
    out.add(at.line, std::string(at.key), "expected a string, got " + describe(value));
    return std::nullopt;
  }
  if (value.Scalar().empty() && field.emptiness == Emptiness::refused) {
    out.add(at.line, std::string(at.key), "must not be empty");
    return std::nullopt;
  }
  return text_of(value);
}

std::optional<std::size_t> read_choice(const Field& field, const YAML::Node& value,
                                       const Place& at, Reporter& out) {
  if (value.IsScalar()) {
    const auto it = std::find(field.names.begin(), field.names.end(), value.Scalar());
    if (it != field.names.end()) return static_cast<std::size_t>(it - field.names.begin());
  }
  out.add(at.line, std::string(at.key),
          "expected one of " + join_names(field.names) + ", got " + describe(value));
  return std::nullopt;
}

std::optional<std::vector<std::string>> read_names(const Field& field, const YAML::Node& value,
                                                   const Place& at, Reporter& out) {
  if (!value.IsSequence()) {
    out.add(at.line, std::string(at.key), "expected a list of names, got " + describe(value));
    return std::nullopt;
  }
  const std::size_t before = out.problems.size();
  std::vector<std::string> names;
  for (const YAML::Node& element : value) {
    const int line = line_of(element) > 0 ? line_of(element) : at.line;
    if (!element.IsScalar()) {
      out.add(line, std::string(at.key), "expected a name, got " + describe(element));
      continue;
    }
    const std::string name = text_of(element);
    if (name.empty()) {
      out.add(line, std::string(at.key), field.names.empty() ? "expected a non-empty path or name, got an empty string"
                                                             : "a name must not be empty");
      continue;
    }
    if (!field.names.empty() &&  // an empty span: any name (llm.models, tools.approval, tools.protected)
        std::find(field.names.begin(), field.names.end(), name) == field.names.end()) {
      out.add(line, std::string(at.key),
              unknown_message("unknown name " + shown(name), name, field.names));
      continue;
    }
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      out.add(line, std::string(at.key), shown(name) + " is listed more than once");
      continue;
    }
    names.push_back(name);
  }
  if (out.problems.size() != before) return std::nullopt;
  return names;
}

template <class T>
std::optional<T> read_value(const Field& field, const YAML::Node& value, const Place& at,
                            Reporter& out) {
  if constexpr (std::is_same_v<T, bool>) {
    return read_flag(value, at, out);
  } else if constexpr (std::is_integral_v<T>) {
    const auto number = read_integer(field, value, at, out);
    return number ? std::optional<T>(static_cast<T>(*number)) : std::nullopt;
  } else if constexpr (std::is_same_v<T, double>) {
    return read_number(field, value, at, out);
  } else if constexpr (std::is_same_v<T, std::string>) {
    return read_text(field, value, at, out);
  } else if constexpr (std::is_enum_v<T>) {
    const auto index = read_choice(field, value, at, out);
    return index ? std::optional<T>(static_cast<T>(*index)) : std::nullopt;
  } else {
    static_assert(std::is_same_v<T, std::vector<std::string>>);
    return read_names(field, value, at, out);
  }
}

// Stores the value only when it is valid, so a bad value leaves the previous one in place.
void assign(const Field& field, const YAML::Node& value, int line, Config& cfg, Reporter& out) {
  const Place at{field.key, line};
  std::visit(
      [&](auto ref) {
        using T = std::remove_cvref_t<decltype(ref(cfg))>;
        if (std::optional<T> parsed = read_value<T>(field, value, at, out)) {
          ref(cfg) = std::move(*parsed);
        }
      },
      field.ref);
}

json::value field_json(const Field& field, const Config& cfg) {
  // The table's accessors are shared with the writers; here they are only read through.
  Config& readable = const_cast<Config&>(cfg);
  return std::visit(
      [&](auto ref) -> json::value {
        const auto& value = ref(readable);
        using T = std::remove_cvref_t<decltype(value)>;
        if constexpr (std::is_enum_v<T>) {
          return json::string(field.names[static_cast<std::size_t>(value)]);
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          json::array names;
          for (const std::string& name : value) names.emplace_back(name);
          return names;
        } else {
          return json::value(value);
        }
      },
      field.ref);
}

// ---------------------------------------------------------------------------------------------
// Cross-field rules

constexpr std::string_view k_prompts_prefix = "planner.prompts.";

// A replacement prompt template must be readable now: found at run time, its error would end a
// planning that `validate` passed.
void check_prompt_file(const Config& cfg, std::string_view key, int line, Reporter& out);

// Where the API key goes and where it comes from (issue 13): llm.base_url must parse and may be
// plain http only for a loopback host; llm.api_key_env must look like an API key variable.
void check_llm_key(const Config& cfg, std::string_view key, int line, Reporter& out) {
  if (out.has_problem_with(key)) return;
  if (key == "llm.base_url") {
    auto url = net::parse_base_url(cfg.llm.base_url);
    if (!url) out.add(line, std::string(key), url.error());
    else if (auto problem = net::plain_http_problem(*url)) out.add(line, std::string(key), *problem);
  } else if (key == "llm.api_key_env") {
    if (auto problem = net::api_key_env_problem(cfg.llm.api_key_env)) out.add(line, std::string(key), *problem);
  }
}

// redis.url must parse, and may be plain redis:// only for a loopback host (as llm.base_url).
void check_redis_key(const Config& cfg, std::string_view key, int line, Reporter& out) {
  if (out.has_problem_with(key) || key != "redis.url" || cfg.redis.url.empty()) return;
  if (auto url = redis::parse_redis_url(cfg.redis.url); !url) out.add(line, std::string(key), url.error());
}

struct ChunkLines {
  int chars = 0;
  int overlap = 0;
  int shared = 0;         ///< performance.rate_limiting.shared
  int cache_backend = 0;  ///< performance.caching.backend
  int backend = 0;        ///< execution.backend
};

void check_cross_fields(const Config& cfg, const ChunkLines& lines, Reporter& out) {
  if (cfg.execution.backend == ExecutionBackend::redis && cfg.redis.url.empty() &&
      !out.has_problem_with("execution.backend"))
    out.add(lines.backend, "execution.backend",
            "backend redis needs redis.url (the Redis whose stream the workers read); set it, or set backend: local");
  if (cfg.performance.rate_limiting.shared && cfg.redis.url.empty() &&
      !out.has_problem_with("performance.rate_limiting.shared"))
    out.add(lines.shared, "performance.rate_limiting.shared",
            "a shared budget needs redis.url (the Redis that keeps it); set it, or set shared: false");
  else if (cfg.performance.rate_limiting.shared && cfg.performance.rate_limiting.window == RateWindow::rolling &&
           !out.has_problem_with("performance.rate_limiting.shared"))
    out.add(lines.shared, "performance.rate_limiting.shared",
            "a shared budget counts a refilled bucket; window: rolling is not shared yet (set window: bucket)");
  constexpr std::string_view k_backend = "performance.caching.backend";
  if (cfg.performance.caching.backend == CacheBackend::redis && !out.has_problem_with(k_backend)) {
    if (cfg.redis.url.empty())
      out.add(lines.cache_backend, std::string(k_backend),
              "redis keeps the response cache in Redis and needs redis.url; set it, or set backend: memory");
    else if (!cfg.performance.caching.llm_responses)
      out.add(lines.cache_backend, std::string(k_backend),
              "redis is the backend of the response cache, which is off (performance.caching.llm_responses: "
              "false); turn it on, or set backend: memory");
  }
  constexpr std::string_view k_chars = "memory.chunk_chars";
  constexpr std::string_view k_overlap = "memory.chunk_overlap";
  if (out.has_problem_with(k_chars) || out.has_problem_with(k_overlap)) return;
  if (cfg.memory.chunk_overlap >= cfg.memory.chunk_chars) {
    out.add(lines.overlap > 0 ? lines.overlap : lines.chars, std::string(k_overlap),
            "must be less than memory.chunk_chars (" + std::to_string(cfg.memory.chunk_chars) +
                "), got " + std::to_string(cfg.memory.chunk_overlap));
  }
}

// ---------------------------------------------------------------------------------------------
// Maps, YAML to JSON

// Calls on_entry(name, dotted_key, key_node, value_node) for each entry with a scalar key that is
// not a repeat; reports the others.
template <class OnEntry>
void for_each_entry(const YAML::Node& map, std::string_view prefix, Reporter& out,
                    OnEntry&& on_entry) {
  std::map<std::string, int, std::less<>> seen;
  for (const auto& entry : map) {
    const YAML::Node& key = entry.first;
    const YAML::Node& value = entry.second;
    if (!key.IsScalar()) {
      out.add(line_of(key), std::string(prefix), "a key must be a name, got " + describe(key));
      continue;
    }
    const std::string name = text_of(key);
    std::string dotted = join_key(prefix, name);
    if (const auto [it, fresh] = seen.emplace(name, line_of(key)); !fresh) {
      out.add(line_of(key), dotted,
              "duplicate key; first set on line " + std::to_string(it->second));
      continue;
    }
    on_entry(name, dotted, key, value);
  }
}

json::value scalar_json(const YAML::Node& node) {
  const Scalar scalar = resolve(node);
  if (std::holds_alternative<std::nullptr_t>(scalar)) return nullptr;
  if (const bool* b = std::get_if<bool>(&scalar)) return *b;
  if (const auto* i = std::get_if<std::int64_t>(&scalar)) return *i;
  if (const auto* d = std::get_if<double>(&scalar)) {
    // JSON has no infinity or NaN: keep what was written.
    if (!std::isfinite(*d)) return json::string(text_of(node));
    return *d;
  }
  return json::string(std::get<std::string>(scalar));
}

enum class Walk { ok, too_deep, too_many };

// Converts `node` to JSON, expanding aliases; stops with `walk` set once a limit is passed.
json::value yaml_to_json(const YAML::Node& node, std::string_view key, int depth, Walk& walk,
                         Reporter& out) {
  if (walk != Walk::ok) return nullptr;
  if (out.values_left == 0) {
    walk = Walk::too_many;
    return nullptr;
  }
  --out.values_left;
  if (depth > k_max_depth && (node.IsSequence() || node.IsMap())) {
    walk = Walk::too_deep;
    return nullptr;
  }
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return scalar_json(node);
    case YAML::NodeType::Sequence: {
      json::array array;
      std::size_t index = 0;
      for (const YAML::Node& element : node) {
        if (walk != Walk::ok) break;
        array.push_back(yaml_to_json(element, std::string(key) + "[" + std::to_string(index++) + "]",
                                     depth + 1, walk, out));
      }
      return array;
    }
    case YAML::NodeType::Map: {
      json::object object;
      for_each_entry(node, key, out,
                     [&](const std::string& name, const std::string& dotted, const YAML::Node&,
                         const YAML::Node& value) {
                       if (walk == Walk::ok)
                         object[name] = yaml_to_json(value, dotted, depth + 1, walk, out);
                     });
      return object;
    }
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return nullptr;
}

// The JSON of the value at `at`, or nullopt after reporting at `at` a value nested deeper than
// k_max_depth or expanding to more than k_max_values values (an alias bomb).
std::optional<json::value> yaml_to_json(const YAML::Node& node, const Place& at, Reporter& out) {
  Walk walk = Walk::ok;
  json::value value = yaml_to_json(node, at.key, 1, walk, out);
  if (walk == Walk::ok) return value;
  // Drop the partial value before reporting, so its memory is back before anything else runs.
  value = nullptr;
  out.add(at.line, std::string(at.key),
          walk == Walk::too_deep
              ? "nested deeper than " + std::to_string(k_max_depth) + " levels"
              : "expands to more than " + std::to_string(k_max_values) +
                    " values (YAML aliases?)");
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Files

fs::path normal_absolute(const fs::path& path) {
  std::error_code ec;
  fs::path out = fs::absolute(path.empty() ? fs::path(".") : path, ec);
  if (ec) out = path;
  out = out.lexically_normal();
  if (!out.has_filename() && out.has_relative_path()) out = out.parent_path();
  return out;
}

constexpr std::string_view k_is_folder = "is a folder";

// Why `path` cannot be read as a file ("no such file", k_is_folder, "is not a regular file", or
// the system's reason such as "Permission denied"), or nullopt when it can.
std::optional<std::string> file_problem(const fs::path& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) return std::string(ec && ec != std::errc::no_such_file_or_directory ? ec.message() : "no such file");
  if (fs::is_directory(status)) return std::string(k_is_folder);
  // A FIFO or a device would block the reader or never end.
  if (!fs::is_regular_file(status)) return std::string("is not a regular file");
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::string(errno != 0 ? std::strerror(errno) : "cannot open for reading");
  return std::nullopt;
}

// The message for a file of kind `what` ("config file") that could not be read for `error`.
std::string too_big_message() {
  return "is larger than the " + std::to_string(k_max_file_bytes >> 20) + " MiB limit";
}

std::string read_problem(std::string_view what, const std::string& error) {
  if (error == k_is_folder) return std::string(k_is_folder) + ", not a " + std::string(what);
  if (error == too_big_message()) return std::string(what) + " " + error;
  return "cannot read " + std::string(what) + ": " + error;
}

void check_prompt_file(const Config& cfg, std::string_view key, int line, Reporter& out) {
  const PromptFiles& files = cfg.planner.prompts;
  const std::string_view kind = key.substr(k_prompts_prefix.size());
  const std::string& file = kind == "intent"   ? files.intent
                            : kind == "plan"   ? files.plan
                            : kind == "repair" ? files.repair
                            : kind == "replan" ? files.replan
                                               : files.answer;
  if (file.empty() || out.has_problem_with(key)) return;
  const fs::path path = normal_absolute(cfg.base_dir / fs::path(file));
  if (auto problem = file_problem(path))
    out.add(line, std::string(key), read_problem("prompt template", *problem) + " (" + path.string() + ")");
}

std::optional<std::string> read_whole_file(const fs::path& path, std::string& error) {
  if (auto problem = file_problem(path)) {
    error = std::move(*problem);
    return std::nullopt;
  }
  std::error_code ec;
  if (const std::uintmax_t size = fs::file_size(path, ec); !ec && size > k_max_file_bytes) {
    error = too_big_message();
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open for reading";
    return std::nullopt;
  }
  // Read in pieces and stop one byte past the limit, so a file that grows after the size check
  // (or a /proc file that reports size 0) is bounded too.
  std::string text;
  std::array<char, 64 * 1024> piece;
  while (in && text.size() <= k_max_file_bytes) {
    in.read(piece.data(), static_cast<std::streamsize>(piece.size()));
    text.append(piece.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) {
    error = "read error";
    return std::nullopt;
  }
  if (text.size() > k_max_file_bytes) {
    error = too_big_message();
    return std::nullopt;
  }
  return text;
}

int line_at(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + offset, '\n'));
}

// Parses YAML text into `root`; a syntax error becomes a problem with its line.
bool parse_yaml(std::string_view text, YAML::Node& root, Reporter& out) {
  // Task inputs, goals and every other string enter dagent here, and yaml-cpp passes bytes that
  // are not UTF-8 through: they become U+FFFD (never a newline, so lines keep their numbers).
  std::string valid(text);
  text::make_valid_utf8(valid);
  try {
    root = YAML::Load(valid);
    return true;
  } catch (const YAML::DeepRecursion& e) {
    // yaml-cpp's own guard (depth 500 in 0.7) says only "bad file".
    out.add(e.mark.line >= 0 ? e.mark.line + 1 : 0, "",
            "nested deeper than " + std::to_string(k_max_depth) + " levels");
  } catch (const YAML::ParserException& e) {
    out.add(e.mark.line >= 0 ? e.mark.line + 1 : 0, "", "YAML syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {
    out.add(e.mark.line >= 0 ? e.mark.line + 1 : 0, "", std::string("YAML error: ") + e.msg);
  }
  return false;
}

bool is_plan_shape(const json::value& plan) {
  if (plan.is_array()) return true;
  if (!plan.is_object()) return false;
  const json::value* steps = plan.get_object().if_contains("steps");
  return steps != nullptr && steps->is_array();
}

constexpr std::string_view k_plan_shape_message =
    "a plan must be a list of steps or a map with a 'steps' list";

std::optional<json::value> read_plan_file(const fs::path& path, const Place& at, Reporter& out) {
  std::string error;
  const std::optional<std::string> text = read_whole_file(path, error);
  if (!text) {
    out.add(at.line, std::string(at.key),
            error == k_is_folder ? "'" + path.string() + "' is a folder, not a plan file"
                                 : "cannot read plan file '" + path.string() + "': " + error);
    return std::nullopt;
  }
  // As parse_yaml: bytes that are not UTF-8 become U+FFFD rather than an "invalid JSON" error.
  const std::string valid = text::valid_utf8(*text);
  json::stream_parser parser;
  boost::system::error_code ec;
  const std::size_t consumed = parser.write(valid.data(), valid.size(), ec);
  if (!ec) parser.finish(ec);
  if (ec) {
    out.problems.push_back(
        {path.string(), line_at(valid, consumed), "", "invalid JSON: " + ec.message()});
    return std::nullopt;
  }
  json::value plan = parser.release();
  if (!is_plan_shape(plan)) {
    out.problems.push_back({path.string(), 1, "", std::string(k_plan_shape_message)});
    return std::nullopt;
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Tasks

enum class NameRule { free, must_match_default };

struct TaskOrigin {
  fs::path dir;              ///< absolute; the task's relative paths resolve here
  std::string prefix;        ///< dotted prefix of the task's keys: "" or "tasks.NAME"
  std::string default_name;  ///< the file stem, or the key under `tasks:`
  NameRule name_rule = NameRule::free;
  SourceLocation source;
  bool remote = false;  ///< sent over the network: no workspace, no plan file (nothing of the host's)
};

std::optional<std::string> read_task_text(const YAML::Node& value, const Place& at,
                                          Reporter& out) {
  if (!value.IsScalar()) {
    out.add(at.line, std::string(at.key), "expected a string, got " + describe(value));
    return std::nullopt;
  }
  return text_of(value);
}

struct TaskReading {
  Task task;
  bool plan_given = false;
};

void read_task_entry(TaskReading& reading, const std::string& name, const std::string& dotted,
                     const YAML::Node& key, const YAML::Node& value, const TaskOrigin& origin,
                     Reporter& out) {
  Task& task = reading.task;
  const Place at{dotted, value_line(key, value)};
  if (name == "name") {
    const auto text = read_task_text(value, at, out);
    if (!text) return;
    if (text->empty()) {
      out.add(at.line, dotted, "must not be empty");
    } else if (origin.name_rule == NameRule::must_match_default && *text != origin.default_name) {
      out.add(at.line, dotted,
              "must match the task's key '" + origin.default_name + "' (or be left out), got " +
                  shown(*text));
    } else {
      task.name = *text;
    }
  } else if (name == "goal") {
    if (value.IsNull()) return;
    if (const auto text = read_task_text(value, at, out)) task.goal = *text;
  } else if (name == "workspace") {
    if (value.IsNull()) return;
    if (origin.remote) {
      out.add(at.line, dotted, "is not accepted in a request: its tools run in the service's tools.workspace");
      return;
    }
    const auto text = read_task_text(value, at, out);
    if (!text) return;
    if (text->empty()) {
      out.add(at.line, dotted, "must not be empty");
      return;
    }
    task.workspace = normal_absolute(origin.dir / fs::path(*text));
  } else if (name == "inputs") {
    if (value.IsNull()) return;
    if (!value.IsMap()) {
      out.add(at.line, dotted, "expected a map of input names to values, got " + describe(value));
      return;
    }
    // The key's line: an aliased value's own mark is at its anchor.
    if (auto inputs = yaml_to_json(value, Place{dotted, line_of(key)}, out))
      task.inputs = std::move(inputs->as_object());
  } else if (name == "plan") {
    if (value.IsNull()) return;
    reading.plan_given = true;
    if (value.IsScalar()) {
      if (value.Scalar().empty()) {
        out.add(at.line, dotted, "must not be empty");
        return;
      }
      if (origin.remote) {
        out.add(at.line, dotted, "must be the steps themselves in a request, not a file name");
        return;
      }
      const fs::path file = normal_absolute(origin.dir / fs::path(value.Scalar()));
      if (auto plan = read_plan_file(file, at, out)) {
        task.plan = std::move(*plan);
        task.plan_file = file;
      }
      return;
    }
    std::optional<json::value> converted = yaml_to_json(value, Place{dotted, line_of(key)}, out);
    if (!converted) return;
    json::value plan = std::move(*converted);
    if (!is_plan_shape(plan)) {
      out.add(at.line, dotted, std::string(k_plan_shape_message));
      return;
    }
    task.plan = std::move(plan);
  } else {
    out.add(line_of(key), dotted, unknown_message("unknown key", name, k_task_keys));
  }
}

// Reads one task from a task file's root or a `tasks:` entry; nullopt when it has problems.
std::optional<Task> read_task(const YAML::Node& node, int line, const TaskOrigin& origin,
                              Reporter& out) {
  const std::size_t before = out.problems.size();
  TaskReading reading;
  reading.task.name = origin.default_name;
  // A task file's tools default to its own folder; a `tasks:` entry's to `tools.workspace`,
  // which the runtime resolves against the config file's folder.
  if (origin.name_rule != NameRule::must_match_default) reading.task.workspace = origin.dir;
  reading.task.source = origin.source;
  if (!node.IsNull() && !node.IsMap()) {
    out.add(line, origin.prefix,
            "expected a map with " + join_names(k_task_keys) + ", got " + describe(node));
    return std::nullopt;
  }
  if (node.IsMap()) {
    for_each_entry(node, origin.prefix, out,
                   [&](const std::string& name, const std::string& dotted, const YAML::Node& key,
                       const YAML::Node& value) {
                     read_task_entry(reading, name, dotted, key, value, origin, out);
                   });
  }
  if (reading.task.goal.empty() && !reading.plan_given &&
      !out.has_problem_with(join_key(origin.prefix, "goal"))) {
    out.add(line, origin.prefix, "a task needs a goal or a plan");
  }
  if (out.problems.size() != before) return std::nullopt;
  return std::move(reading.task);
}

// ---------------------------------------------------------------------------------------------
// The config document

struct ConfigReading {
  Config& cfg;
  Reporter& out;
  ChunkLines chunk_lines;
};

void read_tasks(const YAML::Node& key, const YAML::Node& value, ConfigReading& reading) {
  if (value.IsNull()) return;
  if (!value.IsMap()) {
    reading.out.add(value_line(key, value), std::string(k_tasks_key),
                    "expected a map of task names to tasks, got " + describe(value));
    return;
  }
  for_each_entry(value, k_tasks_key, reading.out,
                 [&](const std::string& name, const std::string& dotted,
                     const YAML::Node& task_key, const YAML::Node& task_value) {
                   const int line = line_of(task_key);
                   if (name.empty()) {
                     reading.out.add(line, dotted, "a task name must not be empty");
                     return;
                   }
                   const TaskOrigin origin{reading.cfg.base_dir, dotted, name,
                                          NameRule::must_match_default,
                                          {reading.out.file, line}};
                   if (auto task = read_task(task_value, line, origin, reading.out)) {
                     reading.cfg.tasks.insert_or_assign(name, std::move(*task));
                   }
                 });
}

// Reads a list of strings at `key`; nullopt (with problems) when it is not one.
std::optional<std::vector<std::string>> read_strings(const YAML::Node& value, int line, const std::string& key,
                                                     Reporter& out) {
  if (!value.IsSequence()) {
    out.add(line, key, "expected a list of strings, got " + describe(value));
    return std::nullopt;
  }
  std::vector<std::string> items;
  for (const YAML::Node& element : value) {
    if (!element.IsScalar() || element.Scalar().empty()) {
      out.add(line_of(element) > 0 ? line_of(element) : line, key,
              "expected a non-empty string, got " + describe(element));
      return std::nullopt;
    }
    items.push_back(element.Scalar());
  }
  return items;
}

void read_routes(const YAML::Node& key, const YAML::Node& value, ConfigReading& reading) {
  const std::string routes_key(k_routes_key);
  if (value.IsNull()) return;
  if (!value.IsSequence()) {
    reading.out.add(value_line(key, value), routes_key,
                    "expected a list of routes ({name, keywords, tools}), got " + describe(value));
    return;
  }
  std::vector<Route> routes;
  std::size_t index = 0;
  for (const YAML::Node& element : value) {
    const std::string at = routes_key + "[" + std::to_string(index++) + "]";
    const int line = line_of(element);
    if (!element.IsMap()) {
      reading.out.add(line, at, "expected a map with name, keywords and tools, got " + describe(element));
      continue;
    }
    Route route;
    route.line = line;
    bool has_keywords = false;
    for_each_entry(element, at, reading.out,
                   [&](const std::string& name, const std::string& dotted, const YAML::Node& k,
                       const YAML::Node& v) {
                     const int vline = value_line(k, v);
                     if (name == "name") {
                       if (!v.IsScalar() || v.Scalar().empty()) {
                         reading.out.add(vline, dotted, "expected a non-empty name, got " + describe(v));
                       } else {
                         route.name = v.Scalar();
                       }
                     } else if (name == "keywords") {
                       if (auto items = read_strings(v, vline, dotted, reading.out)) {
                         route.keywords = std::move(*items);
                         has_keywords = !route.keywords.empty();
                         if (!has_keywords) reading.out.add(vline, dotted, "a route needs at least one keyword");
                       }
                     } else if (name == "tools") {
                       if (auto items = read_strings(v, vline, dotted, reading.out)) route.tools = std::move(*items);
                     } else {
                       const std::array<std::string_view, 3> known = {"name", "keywords", "tools"};
                       reading.out.add(line_of(k), dotted, unknown_message("unknown key", name, known));
                     }
                   });
    if (route.name.empty() && !reading.out.has_problem_with(at + ".name")) {
      reading.out.add(line, at, "a route needs a name");
    }
    if (!has_keywords && !reading.out.has_problem_with(at + ".keywords")) {
      reading.out.add(line, at + ".keywords", "a route needs at least one keyword");
    }
    routes.push_back(std::move(route));
  }
  reading.cfg.planner.routes = std::move(routes);
}

// ---------------------------------------------------------------------------------------------
// mcp.servers

bool is_server_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
  });
}

// Why `text` is not a valid `${VAR}` template: `$` must start `${NAME}` or `$$`.
std::optional<std::string> template_problem(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$') continue;
    if (i + 1 < text.size() && text[i + 1] == '$') {
      ++i;
      continue;
    }
    const auto close = text.find('}', i);
    if (i + 1 >= text.size() || text[i + 1] != '{' || close == std::string_view::npos || close == i + 2)
      return "a '$' must start ${NAME} (an environment variable) or be written $$, in " + shown(text);
    i = close;
  }
  return std::nullopt;
}

// A map of names to strings (env, headers), each value a valid template.
std::optional<std::vector<std::pair<std::string, std::string>>> read_string_map(const YAML::Node& value, int line,
                                                                                const std::string& key, Reporter& out) {
  if (value.IsNull()) return std::vector<std::pair<std::string, std::string>>{};
  if (!value.IsMap()) {
    out.add(line, key, "expected a map of names to strings, got " + describe(value));
    return std::nullopt;
  }
  std::vector<std::pair<std::string, std::string>> items;
  bool ok = true;
  for_each_entry(value, key, out, [&](const std::string& name, const std::string& dotted, const YAML::Node& k,
                                      const YAML::Node& v) {
    if (!v.IsScalar()) {
      out.add(value_line(k, v), dotted, "expected a string, got " + describe(v));
      ok = false;
    } else if (auto problem = template_problem(v.Scalar())) {
      out.add(value_line(k, v), dotted, *problem);
      ok = false;
    } else {
      items.emplace_back(name, v.Scalar());
    }
  });
  if (!ok) return std::nullopt;
  return items;
}

void read_mcp_server(const std::string& server, const std::string& at, const YAML::Node& key, const YAML::Node& value,
                     ConfigReading& reading) {
  auto& out = reading.out;
  if (!is_server_name(server)) {
    out.add(line_of(key), at, "a server name is 1 to 64 letters, digits, '_' or '-' (its tools are named SERVER.TOOL)");
    return;
  }
  if (!value.IsMap()) {
    out.add(value_line(key, value), at, "expected a map with command (or url), got " + describe(value));
    return;
  }
  McpServerConfig cfg;
  cfg.line = line_of(key);
  for_each_entry(value, at, out, [&](const std::string& name, const std::string& dotted, const YAML::Node& k,
                                     const YAML::Node& v) {
    const int vline = value_line(k, v);
    if (name == "command") {
      if (v.IsScalar() && !v.Scalar().empty()) {
        cfg.command = {v.Scalar()};
      } else if (auto items = read_strings(v, vline, dotted, out)) {
        cfg.command = std::move(*items);
        if (cfg.command.empty()) out.add(vline, dotted, "expected the program and its arguments, got an empty list");
      }
    } else if (name == "env") {
      if (auto items = read_string_map(v, vline, dotted, out)) cfg.env = std::move(*items);
    } else if (name == "headers") {
      if (auto items = read_string_map(v, vline, dotted, out)) cfg.headers = std::move(*items);
    } else if (name == "cwd") {
      if (!v.IsScalar() || v.Scalar().empty()) out.add(vline, dotted, "expected a folder, got " + describe(v));
      else cfg.cwd = v.Scalar();
    } else if (name == "url") {
      if (!v.IsScalar() || v.Scalar().empty()) {
        out.add(vline, dotted, "expected an http(s) URL, got " + describe(v));
      } else if (auto url = net::parse_base_url(v.Scalar()); !url) {
        out.add(vline, dotted, url.error());
      } else if (auto problem = net::plain_http_problem(*url)) {
        out.add(vline, dotted, *problem);
      } else {
        cfg.url = v.Scalar();
      }
    } else if (name == "timeout_ms") {
      std::int64_t ms = 0;
      if (!v.IsScalar() || parse_integer(v.Scalar(), ms) != IntegerText::fits || ms < 1 || ms > k_int_max) {
        out.add(vline, dotted, "expected an integer from 1 to " + std::to_string(k_int_max) + ", got " + describe(v));
      } else {
        cfg.timeout_ms = ms;
      }
    } else {
      const std::array<std::string_view, 6> known = {"command", "env", "cwd", "timeout_ms", "url", "headers"};
      out.add(line_of(k), dotted, unknown_message("unknown key", name, known));
    }
  });
  if (out.has_problem_with(at + ".command") || out.has_problem_with(at + ".url")) return;
  if (cfg.command.empty() == cfg.url.empty()) {
    out.add(cfg.line, at, cfg.command.empty() ? "needs a command (a stdio server) or a url (Streamable HTTP)"
                                              : "has both command and url; a server is one or the other");
    return;
  }
  if (!cfg.url.empty() && (!cfg.env.empty() || !cfg.cwd.empty()))
    out.add(cfg.line, at, "env and cwd apply to a command, not to a url");
  if (!cfg.command.empty() && !cfg.headers.empty()) out.add(cfg.line, at, "headers apply to a url, not to a command");
  reading.cfg.mcp.servers.insert_or_assign(server, std::move(cfg));
}

void read_mcp(const YAML::Node& key, const YAML::Node& value, ConfigReading& reading) {
  const std::string mcp_key(k_mcp_key);
  if (value.IsNull()) return;
  if (!value.IsMap()) {
    reading.out.add(value_line(key, value), mcp_key, "expected a map with servers, got " + describe(value));
    return;
  }
  reading.cfg.mcp.servers.clear();  // a recorded config replaces the file's servers
  for_each_entry(value, mcp_key, reading.out, [&](const std::string& name, const std::string& dotted,
                                                  const YAML::Node& k, const YAML::Node& v) {
    if (name != "servers") {
      const std::array<std::string_view, 1> known = {"servers"};
      reading.out.add(line_of(k), dotted, unknown_message("unknown key", name, known));
      return;
    }
    if (v.IsNull()) return;
    if (!v.IsMap()) {
      reading.out.add(value_line(k, v), dotted, "expected a map of server names to servers, got " + describe(v));
      return;
    }
    for_each_entry(v, dotted, reading.out, [&](const std::string& server, const std::string& at, const YAML::Node& sk,
                                               const YAML::Node& sv) { read_mcp_server(server, at, sk, sv, reading); });
  });
}

void read_section(const YAML::Node& map, std::string_view prefix, ConfigReading& reading) {
  for_each_entry(map, prefix, reading.out,
                 [&](const std::string& name, const std::string& dotted, const YAML::Node& key,
                     const YAML::Node& value) {
                   if (prefix.empty() && name == k_tasks_key) {
                     read_tasks(key, value, reading);
                     return;
                   }
                   if (prefix.empty() && name == k_mcp_key) {
                     read_mcp(key, value, reading);
                     return;
                   }
                   if (dotted == k_routes_key) {
                     read_routes(key, value, reading);
                     return;
                   }
                   if (const Field* field = find_field(dotted)) {
                     const int line = value_line(key, value);
                     if (dotted == "memory.chunk_chars") reading.chunk_lines.chars = line;
                     if (dotted == "memory.chunk_overlap") reading.chunk_lines.overlap = line;
                     if (dotted == "performance.rate_limiting.shared") reading.chunk_lines.shared = line;
                     if (dotted == "performance.caching.backend") reading.chunk_lines.cache_backend = line;
                     if (dotted == "execution.backend") reading.chunk_lines.backend = line;
                     assign(*field, value, line, reading.cfg, reading.out);
                     if (dotted.starts_with(k_prompts_prefix)) check_prompt_file(reading.cfg, dotted, line, reading.out);
                     if (dotted.starts_with("llm.")) check_llm_key(reading.cfg, dotted, line, reading.out);
                     if (dotted.starts_with("redis.")) check_redis_key(reading.cfg, dotted, line, reading.out);
                     return;
                   }
                   if (is_section(dotted)) {
                     if (value.IsMap()) {
                       read_section(value, dotted, reading);
                     } else if (!value.IsNull()) {
                       reading.out.add(value_line(key, value), dotted,
                                       "expected a map of settings, got " + describe(value));
                     }
                     return;
                   }
                   const std::vector<std::string_view> known = children_of(prefix);
                   reading.out.add(line_of(key), dotted,
                                   unknown_message("unknown key", name, known));
                 });
}

// Applies one KEY=VALUE to `cfg` without the cross-field rules.
void apply_one(Config& cfg, std::string_view given, Reporter& out) {
  // A command-line argument need not be UTF-8; problems quote the key, values enter the config.
  const std::string valid = text::valid_utf8(given);
  const std::string_view key_equals_value = valid;
  const std::size_t equals = key_equals_value.find('=');
  if (equals == std::string_view::npos) {
    out.add(0, "", "expected KEY=VALUE, got " + shown(key_equals_value));
    return;
  }
  const std::string_view key = key_equals_value.substr(0, equals);
  const std::string_view value_text = key_equals_value.substr(equals + 1);
  if (key.empty()) {
    out.add(0, "", "expected KEY=VALUE with a dotted key, got " + shown(key_equals_value));
    return;
  }
  const Field* field = find_field(key);
  if (field == nullptr) {
    if (key == k_tasks_key || key.starts_with(std::string(k_tasks_key) + ".")) {
      out.add(0, std::string(key), "tasks cannot be set with --set; define them in the config");
    } else if (key == k_mcp_key || key.starts_with(std::string(k_mcp_key) + ".")) {
      out.add(0, std::string(key), "MCP servers cannot be set with --set; define them in the config");
    } else if (key == k_routes_key || key.starts_with(std::string(k_routes_key) + "[")) {
      out.add(0, std::string(key), "routes cannot be set with --set; define them in the config");
    } else if (is_section(key)) {
      out.add(0, std::string(key),
              "is a section; set one of its keys: " + join_names(children_of(key)));
    } else {
      std::vector<std::string_view> keys;
      for (const Field& f : k_fields) keys.push_back(f.key);
      if (const auto suggestion = closest(key, keys)) {
        out.add(0, std::string(key), "unknown key; did you mean '" + std::string(*suggestion) + "'?");
      } else {
        out.add(0, std::string(key), "unknown key");
      }
    }
    return;
  }
  YAML::Node value;
  Reporter syntax{out.file, Lines::hidden, {}};
  if (!parse_yaml(value_text, value, syntax)) {
    for (Problem& problem : syntax.problems) {
      problem.key = std::string(key);
      out.problems.push_back(std::move(problem));
    }
    return;
  }
  assign(*field, value, 0, cfg, out);
  if (key.starts_with(k_prompts_prefix)) check_prompt_file(cfg, key, 0, out);
  if (key.starts_with("llm.")) check_llm_key(cfg, key, 0, out);
  if (key.starts_with("redis.")) check_redis_key(cfg, key, 0, out);
}

Problems as_problems(std::vector<Problem> items) { return Problems{std::move(items)}; }

}  // namespace

boost::system::result<Config, Problems> load_string(std::string_view yaml, std::string file_label,
                                                    std::filesystem::path base_dir) {
  Config cfg;
  cfg.source = file_label;
  cfg.base_dir = normal_absolute(base_dir);
  Reporter out{std::move(file_label), Lines::shown, {}};
  if (yaml.size() > k_max_file_bytes) {
    out.add(0, "", "config " + too_big_message());
    return as_problems(std::move(out.problems));
  }
  YAML::Node root;
  if (!parse_yaml(yaml, root, out)) return as_problems(std::move(out.problems));
  try {
    ConfigReading reading{cfg, out, {}};
    if (root.IsMap()) {
      read_section(root, "", reading);
    } else if (!root.IsNull()) {
      out.add(line_of(root), "",
              "expected a map of sections (" + join_names(children_of("")) + "), got " +
                  describe(root));
    }
    check_cross_fields(cfg, reading.chunk_lines, out);
  } catch (const YAML::Exception& e) {
    out.add(e.mark.line >= 0 ? e.mark.line + 1 : 0, "", std::string("YAML error: ") + e.msg);
  }
  if (!out.problems.empty()) return as_problems(std::move(out.problems));
  return cfg;
}

boost::system::result<Config, Problems> load_file(const std::filesystem::path& path) {
  std::string error;
  const std::optional<std::string> text = read_whole_file(path, error);
  if (!text) {
    return as_problems({{path.string(), 0, "", read_problem("config file", error)}});
  }
  return load_string(*text, path.string(), path.parent_path());
}

std::vector<Problem> apply_override(Config& cfg, std::string_view key_equals_value) {
  const std::string item(key_equals_value);
  return apply_overrides(cfg, std::span<const std::string>(&item, 1));
}

std::vector<Problem> apply_overrides(Config& cfg,
                                     std::span<const std::string> keys_equal_values) {
  Reporter out{std::string(k_override_label), Lines::hidden, {}};
  Config next = cfg;
  try {
    for (const std::string& item : keys_equal_values) apply_one(next, item, out);
  } catch (const YAML::Exception& e) {
    out.add(0, "", std::string("YAML error: ") + e.msg);
  }
  check_cross_fields(next, {}, out);
  if (out.problems.empty()) cfg = std::move(next);
  return std::move(out.problems);
}

boost::system::result<Task, Problems> load_task_file(const std::filesystem::path& path) {
  Reporter out{path.string(), Lines::shown, {}};
  std::string error;
  const std::optional<std::string> text = read_whole_file(path, error);
  if (!text) {
    out.add(0, "", read_problem("task file", error));
    return as_problems(std::move(out.problems));
  }
  YAML::Node root;
  if (!parse_yaml(*text, root, out)) return as_problems(std::move(out.problems));
  std::optional<Task> task;
  try {
    // The name goes into results and recordings; the file's name need not be UTF-8.
    const TaskOrigin origin{normal_absolute(path).parent_path(), "", text::valid_utf8(path.stem().string()),
                            NameRule::free, {path.string(), 0}};
    task = read_task(root, root.IsNull() ? 0 : line_of(root), origin, out);
  } catch (const YAML::Exception& e) {
    out.add(e.mark.line >= 0 ? e.mark.line + 1 : 0, "", std::string("YAML error: ") + e.msg);
  }
  if (!task || !out.problems.empty()) return as_problems(std::move(out.problems));
  return std::move(*task);
}

boost::system::result<Task, Problems> load_task_text(std::string_view text, std::string_view label,
                                                     std::string name, const std::filesystem::path& workspace) {
  Reporter out{std::string(label), Lines::shown, {}};
  if (text.size() > k_max_file_bytes) {
    out.add(0, "", too_big_message());
    return as_problems(std::move(out.problems));
  }
  YAML::Node root;
  if (!parse_yaml(text, root, out)) return as_problems(std::move(out.problems));
  std::optional<Task> task;
  try {
    TaskOrigin origin{workspace, "", text::valid_utf8(name), NameRule::free, {std::string(label), 0}};
    origin.remote = true;
    task = read_task(root, root.IsNull() ? 0 : line_of(root), origin, out);
  } catch (const YAML::Exception& e) {
    out.add(e.mark.line >= 0 ? e.mark.line + 1 : 0, "", std::string("YAML error: ") + e.msg);
  }
  if (!task || !out.problems.empty()) return as_problems(std::move(out.problems));
  task->workspace = workspace;
  return std::move(*task);
}

std::filesystem::path default_workspace(const Config& cfg) {
  return (cfg.base_dir / cfg.tools.workspace).lexically_normal();
}

boost::system::result<Task, Problems> find_task(std::string_view arg, const Config& cfg) {
  const std::filesystem::path path{std::string(arg)};
  std::error_code ec;
  if (!arg.empty() && std::filesystem::is_regular_file(path, ec)) return load_task_file(path);
  if (const auto it = cfg.tasks.find(std::string(arg)); it != cfg.tasks.end()) return it->second;
  std::vector<std::string_view> names;
  for (const auto& entry : cfg.tasks) names.push_back(entry.first);
  std::string message = "no task file or configured task named " + shown(arg);
  if (names.empty()) {
    message += " (" + cfg.source + " configures no tasks)";
  } else {
    if (const auto suggestion = closest(arg, names)) {
      message += "; did you mean '" + std::string(*suggestion) + "'?";
    }
    message += " (configured tasks: " + join_names(names) + ")";
  }
  return as_problems({{"", 0, "", std::move(message)}});
}

boost::json::object to_json(const Config& cfg) {
  json::object root;
  for (const Field& field : k_fields) {
    // Where runs are logged, not how they run: left out, so a recording's digest (which a resume
    // checks) and a replay's effective config do not depend on it.
    if (field.key.starts_with("history.") || field.key.starts_with("serve.")) continue;
    json::object* section = &root;
    std::string_view rest = field.key;
    for (std::size_t dot = rest.find('.'); dot != std::string_view::npos; dot = rest.find('.')) {
      json::value& child = (*section)[rest.substr(0, dot)];
      if (!child.is_object()) child = json::object();
      section = &child.get_object();
      rest.remove_prefix(dot + 1);
    }
    (*section)[rest] = field_json(field, cfg);
  }
  json::array routes;
  for (const Route& route : cfg.planner.routes) {
    json::array keywords(route.keywords.begin(), route.keywords.end());
    json::array tools(route.tools.begin(), route.tools.end());
    routes.push_back(json::object{{"name", route.name}, {"keywords", std::move(keywords)}, {"tools", std::move(tools)}});
  }
  root["planner"].as_object()["routes"] = std::move(routes);
  // As written (templates unexpanded): this is recorded, and read back by a replay.
  json::object servers;
  for (const auto& [name, server] : cfg.mcp.servers) {
    json::object s;
    if (!server.command.empty()) s["command"] = json::array(server.command.begin(), server.command.end());
    if (!server.url.empty()) s["url"] = server.url;
    auto map_of = [](const std::vector<std::pair<std::string, std::string>>& items) {
      json::object m;
      for (const auto& [k, v] : items) m[k] = v;
      return m;
    };
    if (!server.env.empty()) s["env"] = map_of(server.env);
    if (!server.headers.empty()) s["headers"] = map_of(server.headers);
    if (!server.cwd.empty()) s["cwd"] = server.cwd;
    s["timeout_ms"] = server.timeout_ms;
    servers[name] = std::move(s);
  }
  // Only when configured: the digests of recordings made without MCP servers stay as they were.
  if (!servers.empty()) root["mcp"] = json::object{{"servers", std::move(servers)}};
  return root;
}

std::string_view to_string(Scheduling scheduling) {
  return k_scheduling_names.at(static_cast<std::size_t>(scheduling));
}

std::string_view to_string(IndexKind index) {
  return k_index_names.at(static_cast<std::size_t>(index));
}

}  // namespace dagent::config
