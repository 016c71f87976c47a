#include "serve/service.hpp"

#include <algorithm>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>

#include "config/config.hpp"
#include "config/loader.hpp"
#include "dagent/runtime.hpp"
#include "runtime/runtime_access.hpp"
#include "history/history_store.hpp"
#include "observe/metrics.hpp"
#include "text/json_utf8.hpp"
#include "text/utf8.hpp"

namespace dagent::serve {

namespace asio = boost::asio;
namespace json = boost::json;

enum class RunPhase { queued, running, finished };

/// One run of the service. Owned by the registry and, while it runs, by its coroutine.
struct ServiceRun {
  std::string id;
  std::string runtime_id;  // the runtime's run_id, once started
  std::string task_name;
  RunPhase phase = RunPhase::queued;
  config::Task task;
  RunOptions options;      // outlives run_task_async: the coroutine holds this run
  std::shared_ptr<RunEvents> events;
  json::object snapshot;   // running: the validated run with step statuses; finished: the result
  int exit_code = -1;
};

namespace {

constexpr std::size_t k_detail_chars = 2000;

std::string_view phase_name(RunPhase p) {
  switch (p) {
    case RunPhase::queued: return "queued";
    case RunPhase::running: return "running";
    case RunPhase::finished: return "finished";
  }
  return "finished";
}

std::string random_prefix() {
  std::random_device rd;
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out(8, '0');
  auto v = rd();
  for (auto& c : out) c = k_hex[v & 15], v >>= 4;
  return out;
}

Reply json_reply(unsigned status, const json::value& body) {
  Reply r;
  r.status = status;
  r.body = text::serialize_valid(body) + "\n";
  return r;
}

// The steps of a validated plan (an array, or {"steps": [...]}) as `pending`, for a running run's
// JSON until its result replaces them; step events update their status.
json::array pending_steps(const json::value& plan) {
  const json::value* steps = &plan;
  if (plan.is_object()) steps = plan.get_object().if_contains("steps");
  json::array out;
  if (!steps || !steps->is_array()) return out;
  for (const auto& step : steps->get_array()) {
    if (!step.is_object()) continue;
    json::object entry{{"status", "pending"}};
    if (const auto* id = step.get_object().if_contains("id")) entry["id"] = *id;
    if (const auto* action = step.get_object().if_contains("action")) entry["action"] = *action;
    out.push_back(std::move(entry));
  }
  return out;
}

// The runtime's callbacks: named types (not capturing lambdas), each holding the run it feeds.
struct StartHook {
  ServiceRun* run;
  std::map<std::string, std::string, std::less<>>* aliases;
  void operator()(const RunResult& r) const {
    run->runtime_id = r.run_id;
    (*aliases)[r.run_id] = run->id;
    run->snapshot = to_json(r);
    run->snapshot["status"] = "running";
    run->snapshot["id"] = run->id;
    if (r.steps.empty()) run->snapshot["steps"] = pending_steps(r.plan);
    json::array levels;
    std::size_t steps = 0;
    for (const auto& level : r.levels) {
      levels.emplace_back(json::value_from(level));
      steps += level.size();
    }
    run->events->add("start", json::object{{"id", run->id}, {"run_id", r.run_id}, {"task", r.task},
                                           {"steps", steps}, {"levels", std::move(levels)}});
  }
};

struct EventHook {
  ServiceRun* run;
  void operator()(const StepEvent& e) const {
    json::object data{{"step", e.step_id},
                      {"action", text::valid_utf8(e.action)},
                      {"status", to_string(e.status)},
                      {"verification", to_string(e.verification)},
                      {"attempt", e.attempt},
                      {"at_ms", e.at_ms}};
    if (!e.message.empty()) data["message"] = text::excerpt(e.message, k_detail_chars);
    if (e.item >= 0) data["item"] = e.item;
    if (e.items >= 0) {
      data["items"] = e.items;
      data["items_done"] = e.items_done;
      data["items_failed"] = e.items_failed;
    }
    if (auto* steps = run->snapshot.if_contains("steps"); steps && steps->is_array() && e.item < 0) {
      for (auto& s : steps->get_array()) {
        auto* id = s.is_object() ? s.get_object().if_contains("id") : nullptr;
        if (id && id->is_int64() && id->get_int64() == e.step_id) {
          s.get_object()["status"] = to_string(e.status);
          break;
        }
      }
    }
    run->events->add("step", std::move(data));
  }
};

struct PlanningHook {
  ServiceRun* run;
  void operator()(const PlanningEvent& e) const {
    json::object data{{"phase", to_string(e.phase)}, {"finished", e.finished}, {"at_ms", e.at_ms}};
    if (!e.detail.empty()) data["detail"] = text::excerpt(e.detail, k_detail_chars);
    run->events->add("planning", std::move(data));
  }
};

struct AnswerHook {
  ServiceRun* run;
  void operator()(std::string_view delta) const { run->events->add("answer", json::object{{"delta", std::string(delta)}}); }
};

struct RunDone {
  Service* service;
  std::shared_ptr<ServiceRun> run;
  void operator()(std::exception_ptr error, runtime::Outcome outcome) const { service->finish(run, error, std::move(outcome)); }
};

// One run, as the coroutine the service owns until RunDone.
asio::awaitable<runtime::Outcome> execute_run(Runtime* runtime, std::shared_ptr<ServiceRun> run) {
  co_return co_await runtime::run_task_async(*runtime, run->task, run->options);
}

// The service's own counters, beside dagent's metrics in the process's registry.
struct ServeMetrics {
  explicit ServeMetrics(observe::Registry& r)
      : submitted(r.counter("dagent_serve_runs_submitted_total", "Runs accepted by POST /v1/runs (201)").counter()),
        rejected(r.counter("dagent_serve_runs_rejected_total",
                           "POST /v1/runs refused: an invalid body or task (400), or no room (503)", {"reason"})),
        started(r.counter("dagent_serve_runs_started_total", "Runs started on the runtime").counter()),
        finished(r.counter("dagent_serve_runs_finished_total",
                           "Runs of the service ended, by outcome (interrupted: cancelled or drained)", {"outcome"})),
        cancel_requests(r.counter("dagent_serve_cancel_requests_total", "DELETE /v1/runs/{id} of a known run").counter()) {
    for (const char* reason : {"invalid", "unavailable"}) (void)rejected.counter({reason});
    for (const char* outcome : {"succeeded", "failed", "interrupted"}) (void)finished.counter({outcome});
  }
  observe::Counter submitted;
  observe::Family& rejected;
  observe::Counter started;
  observe::Family& finished;
  observe::Counter cancel_requests;
};

const ServeMetrics& serve_metrics() {
  static const ServeMetrics* m = new ServeMetrics(observe::registry());  // never destroyed, as the registry
  return *m;
}

void count_rejected(const char* reason) { serve_metrics().rejected.counter({reason}).inc(); }
void count_finished(const char* outcome) { serve_metrics().finished.counter({outcome}).inc(); }

struct DrainDeadline {
  Service* service;
  void operator()(const boost::system::error_code& ec) const {
    if (!ec) service->cancel_running();
  }
};

}  // namespace

Service::Service(Runtime& runtime)
    : runtime_(runtime), drain_timer_(runtime.executor()), id_prefix_(random_prefix()) {}

Service::~Service() = default;

Reply Service::submit(std::string_view body) {
  const auto& cfg = runtime::config_of(runtime_);
  if (draining_) {
    count_rejected("unavailable");
    return error_reply(503, "the service is shutting down and takes no new runs");
  }
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (ec) {
    count_rejected("invalid");
    return error_reply(400, "the request body is not JSON", {"request: " + ec.message()});
  }
  if (!parsed.is_object()) {
    count_rejected("invalid");
    return error_reply(400, "the request body must be a JSON object (a task's fields, or {\"task\": NAME})");
  }
  const std::filesystem::path workspace = config::default_workspace(cfg);
  config::Task task;
  const auto& object = parsed.get_object();
  if (object.size() == 1 && object.contains("task")) {
    const auto& name = object.at("task");
    const auto it = name.is_string() ? cfg.tasks.find(std::string(name.get_string())) : cfg.tasks.end();
    if (it == cfg.tasks.end()) {  // configured names only: a request never names a host file
      count_rejected("invalid");
      std::string shown = name.is_string() ? text::excerpt(name.get_string(), 100) : json::serialize(name).substr(0, 100);
      return error_reply(400, "invalid task", {"request: task: no configured task named '" + shown + "'"});
    }
    task = it->second;
  } else {
    auto loaded = config::load_task_text(body, "request", "request", std::filesystem::absolute(workspace));
    if (!loaded) {
      count_rejected("invalid");
      return error_reply(400, "invalid task", loaded.error().lines());
    }
    task = std::move(*loaded);
  }
  if (static_cast<int>(queue_.size()) >= cfg.serve.max_queued_runs && running_ >= cfg.serve.max_concurrent_runs) {
    count_rejected("unavailable");
    Reply r = error_reply(503, "too many runs waiting (serve.max_queued_runs); try again later");
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }

  auto run = std::make_shared<ServiceRun>();
  run->id = id_prefix_ + std::to_string(next_id_++);
  run->task_name = task.name;
  run->task = std::move(task);
  run->events = std::make_shared<RunEvents>(static_cast<std::size_t>(cfg.serve.event_bytes));
  run->options.cancel = std::make_shared<RunCancel>();
  run->options.on_start = StartHook{run.get(), &aliases_};
  run->options.on_event = EventHook{run.get()};
  run->options.on_planning = PlanningHook{run.get()};
  run->options.on_answer = AnswerHook{run.get()};
  run->snapshot = json::object{{"id", run->id}, {"task", run->task_name}, {"status", "queued"}};
  run->events->add("queued", json::object{{"id", run->id}, {"task", text::valid_utf8(run->task_name)}});
  runs_.emplace(run->id, run);
  serve_metrics().submitted.inc();
  if (running_ < cfg.serve.max_concurrent_runs) {
    start(run);
  } else {
    queue_.push_back(run);
  }
  const std::string base = "/v1/runs/" + run->id;
  return json_reply(201, json::object{{"id", run->id}, {"status", phase_name(run->phase)}, {"url", base},
                                      {"events", base + "/events"}});
}

void Service::start(const std::shared_ptr<ServiceRun>& run) {
  run->phase = RunPhase::running;
  run->snapshot["status"] = "running";
  ++running_;
  serve_metrics().started.inc();
  // Owned: RunDone releases the slot whatever ends the coroutine (result, problems or exception).
  asio::co_spawn(runtime_.executor(), execute_run(&runtime_, run), RunDone{this, run});
}

void Service::start_queued() {
  const int limit = runtime::config_of(runtime_).serve.max_concurrent_runs;
  while (!draining_ && running_ < limit && !queue_.empty()) {
    auto next = queue_.front();
    queue_.pop_front();
    start(next);
  }
}

void Service::finish(const std::shared_ptr<ServiceRun>& run, std::exception_ptr error, runtime::Outcome outcome) {
  --running_;
  json::object end;
  if (error) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = std::string("internal error: ") + e.what();
    } catch (...) {
    }
    run->exit_code = 1;
    run->snapshot = json::object{{"id", run->id}, {"task", run->task_name}, {"status", "failed"}, {"error", what}};
    count_finished("failed");
  } else if (!outcome.problems.empty()) {
    run->exit_code = outcome.exit_code();
    json::array problems;
    for (const auto& p : outcome.problems) problems.emplace_back(p);
    run->snapshot = json::object{{"id", run->id},           {"run_id", run->runtime_id}, {"task", run->task_name},
                                 {"status", "failed"},      {"error", "nothing was run"},
                                 {"problems", problems},    {"unreachable", outcome.unreachable}};
    end["problems"] = std::move(problems);
    count_finished("failed");
  } else {
    const auto& r = outcome.result;
    run->exit_code = outcome.exit_code();
    run->runtime_id = r.run_id;
    if (!r.run_id.empty()) aliases_[r.run_id] = run->id;
    run->snapshot = to_json(r);
    if (r.interrupted) {
      count_finished("interrupted");
    } else if (r.status == RunStatus::succeeded) {
      count_finished("succeeded");
    } else {
      count_finished("failed");
    }
    end["interrupted"] = r.interrupted;
    if (!r.error.empty()) end["error"] = text::excerpt(r.error, k_detail_chars);
  }
  run->snapshot["id"] = run->id;
  run->snapshot["exit_code"] = run->exit_code;
  const auto* status = run->snapshot.if_contains("status");
  end["id"] = run->id;
  end["run_id"] = run->runtime_id;
  end["status"] = status ? *status : json::value("failed");
  end["exit_code"] = run->exit_code;
  run->events->close(std::move(end));
  retire(run);
  start_queued();
  check_drained();
}

void Service::end_unstarted(const std::shared_ptr<ServiceRun>& run) {
  executor::RunResult r;
  r.task = run->task_name;
  r.error = "interrupted";
  r.interrupted = true;
  run->exit_code = 1;
  run->snapshot = to_json(r);
  run->snapshot["id"] = run->id;
  run->snapshot["exit_code"] = 1;
  count_finished("interrupted");
  observe::record_run(r);  // a run the service took: in dagent_runs_total as the runtime's are
  run->events->close(json::object{{"id", run->id}, {"run_id", ""}, {"status", "failed"}, {"interrupted", true},
                                  {"error", "interrupted before it started"}, {"exit_code", 1}});
  retire(run);
}

void Service::retire(const std::shared_ptr<ServiceRun>& run) {
  run->phase = RunPhase::finished;
  finished_order_.push_back(run->id);
  const auto kept = static_cast<std::size_t>(runtime::config_of(runtime_).serve.runs_kept);
  while (finished_order_.size() > kept) {
    auto it = runs_.find(finished_order_.front());
    if (it != runs_.end()) {
      aliases_.erase(it->second->runtime_id);
      runs_.erase(it);
    }
    finished_order_.pop_front();
  }
}

std::shared_ptr<ServiceRun> Service::find(std::string_view id) const {
  if (auto it = runs_.find(id); it != runs_.end()) return it->second;
  if (auto alias = aliases_.find(id); alias != aliases_.end())
    if (auto it = runs_.find(alias->second); it != runs_.end()) return it->second;
  return nullptr;
}

Reply Service::get(std::string_view id) {
  if (auto run = find(id)) return json_reply(200, run->snapshot);
  // A run of an earlier process, or evicted from memory: its whole result from the run history.
  const auto& cfg = runtime::config_of(runtime_);
  if (cfg.history.enabled) {
    const auto path = history::database_path(cfg.history.path, cfg.base_dir);
    std::error_code fs_ec;
    if (!path.empty() && std::filesystem::exists(path, fs_ec)) {
      // On the loop, but short: WAL readers never wait for the writer, and a lock is waited for 100 ms at most.
      if (auto store = history::HistoryStore::open(path, 100)) {
        if (auto record = store->show(id)) {
          boost::system::error_code ec;
          auto value = json::parse(record->result_json, ec);
          if (!ec && value.is_object()) return json_reply(200, value);
        }
      }
    }
  }
  return error_reply(404, "no run with id '" + std::string(id) + "'");
}

Reply Service::list() const {
  json::array out;
  for (auto it = runs_.rbegin(); it != runs_.rend(); ++it) {
    const auto& run = *it->second;
    const auto* status = run.snapshot.if_contains("status");
    out.emplace_back(json::object{{"id", run.id}, {"run_id", run.runtime_id}, {"task", run.task_name},
                                  {"status", status ? *status : json::value(phase_name(run.phase))}});
  }
  return json_reply(200, json::object{{"runs", std::move(out)}});
}

Reply Service::cancel(std::string_view id) {
  auto run = find(id);
  if (!run) return error_reply(404, "no run with id '" + std::string(id) + "' in this service");
  serve_metrics().cancel_requests.inc();
  switch (run->phase) {
    case RunPhase::finished:
      return error_reply(409, "run '" + run->id + "' has already ended");
    case RunPhase::queued: {
      queue_.erase(std::remove(queue_.begin(), queue_.end(), run), queue_.end());
      end_unstarted(run);
      return json_reply(200, run->snapshot);
    }
    case RunPhase::running:
      run->options.cancel->cancel();
      return json_reply(202, json::object{{"id", run->id}, {"status", "cancelling"}});
  }
  return error_reply(500, "unknown run phase");
}

std::shared_ptr<RunEvents> Service::events(std::string_view id) const {
  auto run = find(id);
  return run ? run->events : nullptr;
}

Reply Service::metrics() const {
  const auto& m = observe::metrics();
  m.runs_in_flight.set(running_);
  m.runs_queued.set(static_cast<std::int64_t>(queue_.size()));
  Reply r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = observe::render();
  return r;
}

void Service::drain(std::function<void()> drained) {
  if (draining_) return;
  draining_ = true;
  drained_ = std::move(drained);
  while (!queue_.empty()) {
    auto run = queue_.front();
    queue_.pop_front();
    end_unstarted(run);
  }
  if (running_ > 0) {
    drain_timer_.expires_after(std::chrono::milliseconds(runtime::config_of(runtime_).serve.drain_ms));
    drain_timer_.async_wait(DrainDeadline{this});
  }
  check_drained();
}

void Service::cancel_running() {
  for (auto& [id, run] : runs_)
    if (run->phase == RunPhase::running) run->options.cancel->cancel();
}

void Service::check_drained() {
  if (!draining_ || running_ > 0 || !drained_) return;
  drain_timer_.cancel();
  auto done = std::move(drained_);
  drained_ = nullptr;
  done();
}

}  // namespace dagent::serve
