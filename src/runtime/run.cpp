#include "runtime/run.hpp"

#include <list>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include "config/loader.hpp"
#include "executor/llm_judge.hpp"
#include "executor/scheduler.hpp"
#include "mcp/mcp_tool.hpp"
#include "memory/memory.hpp"
#include "net/sha256.hpp"
#include "runtime/memory_recall.hpp"
#include "tools/llm_tool.hpp"
#include "tools/memory_add_tool.hpp"
#include "tools/memory_search_tool.hpp"

namespace dagent::runtime {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// The planner's recall for a recorded or replayed run: a replay answers with the memories the
// recording holds (so the planning prompt matches whatever memory the user has); a recording
// writes what the memory answered.
class RecallTap final : public planner::Recall {
 public:
  RecallTap(planner::Recall* inner, RunRecorder* recorder, std::optional<std::vector<std::string>> replayed)
      : inner_(inner), recorder_(recorder), replayed_(std::move(replayed)) {}
  asio::awaitable<std::vector<std::string>> recall(std::string goal, int k) override {
    std::vector<std::string> memories;
    if (replayed_) {
      memories = *replayed_;
    } else if (inner_) {
      memories = co_await inner_->recall(std::move(goal), k);
    }
    if (recorder_) recorder_->recall(memories);
    co_return memories;
  }

 private:
  planner::Recall* inner_;
  RunRecorder* recorder_;
  std::optional<std::vector<std::string>> replayed_;
};

// The memories of a recording's "recall" event, if it has one.
std::optional<std::vector<std::string>> recorded_recall(const record::Recording& recording) {
  for (const auto& event : recording.events) {
    const auto* type = event.if_contains("type");
    const auto* memories = event.if_contains("memories");
    if (!type || *type != "recall" || !memories || !memories->is_array()) continue;
    std::vector<std::string> out;
    for (const auto& m : memories->get_array())
      if (m.is_string()) out.emplace_back(m.get_string());
    return out;
  }
  return std::nullopt;
}

std::string shown(const json::value& v) {
  auto text = json::serialize(v);
  return text.size() <= 60 ? text : text.substr(0, 57) + "...";
}

// The dotted keys whose values differ between two configs as to_json() writes them.
void config_differences(const json::object& was, const json::object& now, const std::string& prefix,
                        std::vector<std::string>& out) {
  std::set<std::string> keys;
  for (const auto& kv : was) keys.emplace(kv.key());
  for (const auto& kv : now) keys.emplace(kv.key());
  for (const auto& key : keys) {
    const auto* a = was.if_contains(key);
    const auto* b = now.if_contains(key);
    const auto name = prefix + key;
    if (a && b && a->is_object() && b->is_object()) {
      config_differences(a->get_object(), b->get_object(), name + ".", out);
    } else if (!a || !b || *a != *b) {
      out.push_back(name + " (" + (a ? shown(*a) : "unset") + " -> " + (b ? shown(*b) : "unset") + ")");
    }
  }
}

// What differs between the recorded plan and the one given now, step by step.
std::vector<std::string> plan_differences(const json::value& was, const json::value& now) {
  std::vector<std::string> out;
  std::map<std::string, const json::object*> before, after;
  auto index = [](const json::value& plan, std::map<std::string, const json::object*>& into) {
    const json::array* steps = plan.if_array();
    if (const auto* obj = plan.if_object(); obj && obj->if_contains("steps")) steps = obj->at("steps").if_array();
    if (!steps) return;
    for (const auto& s : *steps)
      if (const auto* o = s.if_object(); o && o->if_contains("id")) into[json::serialize(o->at("id"))] = o;
  };
  index(was, before);
  index(now, after);
  for (const auto& [id, step] : before) {
    auto it = after.find(id);
    if (it == after.end()) {
      out.push_back("step " + id + " was removed");
      continue;
    }
    const auto* a = step->if_contains("action");
    const auto* b = it->second->if_contains("action");
    if (!a || !b || *a != *b) {
      out.push_back("step " + id + ": action " + (a ? shown(*a) : "none") + " -> " + (b ? shown(*b) : "none"));
    } else if (*step != *it->second) {
      out.push_back("step " + id + ": parameters, dependencies or criteria changed");
    }
  }
  for (const auto& [id, step] : after)
    if (!before.contains(id)) out.push_back("step " + id + " was added");
  if (out.empty() && was != now) out.push_back("the steps' order or form changed");
  return out;
}

}  // namespace

double ms_since(std::chrono::steady_clock::time_point epoch) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - epoch).count();
}

void add_error(executor::RunResult& result, const std::string& message) {
  result.error += (result.error.empty() ? "" : "; ") + message;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : "; ") + i;
  return out;
}

std::vector<int> ids_of(const executor::Plan& plan, const std::vector<std::size_t>& indices) {
  std::vector<int> ids;
  ids.reserve(indices.size());
  for (auto i : indices) ids.push_back(plan.steps[i].id);
  return ids;
}

Prepared prepare_plan(const json::value& plan_json, const json::object* inputs, const tools::Registry& registry,
                      const config::Config& cfg) {
  Prepared p;
  auto parsed = executor::parse_plan(plan_json);
  p.plan = std::move(parsed.plan);
  executor::AnalysisOptions options;
  options.dependency_analysis = cfg.performance.parallel_execution.dependency_analysis;
  options.max_steps = cfg.planner.max_steps;
  options.inputs = inputs;
  p.analysis = executor::analyze(p.plan, registry, options);
  for (const auto& problem : parsed.problems) p.problems.push_back(problem.to_string());
  for (const auto& problem : p.analysis.problems) p.problems.push_back(problem.to_string());
  return p;
}

std::string config_digest(const config::Config& cfg) {
  return net::sha256_hex(json::serialize(json::value(config::to_json(cfg)))).substr(0, 16);
}

json::object describe_run(const config::Task& task, const config::Config& cfg) {
  json::object fields{{"task", task.name},
                      {"goal", task.goal},
                      {"inputs", task.inputs},
                      {"config_digest", config_digest(cfg)},
                      {"model", cfg.llm.model},
                      // The effective config (after --set): a replay runs with it, a resume checks it.
                      {"effective_config", config::to_json(cfg)}};
  if (task.plan) fields["plan"] = *task.plan;
  return fields;
}

Run::Run(Shared shared, const RunOptions& options)
    : shared_(std::move(shared)),
      options_(&options),
      interrupt_timer_(shared_.loop, asio::steady_timer::time_point::max()) {
}

Run::~Run() {
  // The parts that use the replay's memory go first, then the memory, then its folder.
  planner_.reset();
  registry_ = tools::Registry{};
  replay_memory_.reset();
  if (!scratch_memory_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(scratch_memory_, ec);
  }
}

std::vector<std::string> Run::check_resumable(const record::Recording& recording, const config::Task& task) const {
  const auto& h = recording.header;
  const auto name = options_->resume_file.string();
  std::vector<std::string> out;
  auto text = [&](std::string_view key) -> std::string {
    const auto* v = h.if_contains(key);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
  };
  if (text("task") != task.name) {
    out.push_back("--resume: " + name + " records task '" + text("task") + "', not '" + task.name +
                  "': another task's outputs cannot be reused");
    return out;
  }
  if (text("goal") != task.goal) out.push_back("--resume: the goal changed since " + name + " was recorded");
  const auto* inputs = h.if_contains("inputs");
  if (!inputs || !inputs->is_object() || inputs->get_object() != task.inputs)
    out.push_back("--resume: the inputs changed since " + name + " was recorded");
  const auto* plan = h.if_contains("plan");
  if (plan || task.plan) {
    if (!plan || !task.plan) {
      out.push_back("--resume: " + name + (plan ? " records a fixed plan, the task now has a goal"
                                                : " records a goal run, the task now has a fixed plan"));
    } else if (*plan != *task.plan) {
      out.push_back("--resume: the plan changed since " + name + " was recorded: " +
                    joined(plan_differences(*plan, *task.plan)));
    }
  }
  if (text("config_digest") != config_digest(cfg())) {
    std::vector<std::string> keys;
    if (const auto* was = h.if_contains("effective_config"); was && was->is_object())
      config_differences(was->get_object(), config::to_json(cfg()), "", keys);
    out.push_back("--resume: the config changed since " + name + " was recorded" +
                  (keys.empty() ? std::string() : ": " + joined(keys)));
  }
  return out;
}

std::vector<std::string> Run::set_up(const config::Task& task) {
  const auto& cfg = *shared_.cfg;
  // A misspelt tools.approval entry would leave the tool it meant unguarded: an exact name must
  // name a tool (a glob may match tools registered later, or none).
  for (const auto& p : cfg.tools.approval)
    if (p.find_first_of("*?[") == std::string::npos && !tools::is_builtin_tool(p) && !shared_.registry->get(p) &&
        !cfg.mcp.servers.contains(p.substr(0, p.find('.'))))  // an MCP tool: listed when its server starts
      return {"tools.approval: '" + p + "' names no tool (write a glob to guard tools that may not be registered)"};
  header_task_ = task;
  std::filesystem::path record_to = options_->record_file;
  if (!options_->resume_file.empty()) {
    auto read = record::read_recording(options_->resume_file);
    if (!read) return {"--resume: " + read.error()};
    if (auto refused = check_resumable(*read, task); !refused.empty()) return refused;
    resume_ = resume_point(*read);
    if (resume_->finished)
      return {"--resume: " + options_->resume_file.string() + " records a run that succeeded; there is nothing to resume"};
    if (resume_->plan) {  // a goal run: its recorded plan is run again; a step's action must still match
      auto prepared = prepare_plan(json::value(*resume_->plan), &task.inputs, *shared_.registry, cfg);
      for (const auto& kept : resume_->kept) {
        const auto at = prepared.analysis.index_of.find(kept.id);
        if (at != prepared.analysis.index_of.end() && prepared.plan.steps[at->second].action != kept.action)
          return {"--resume: step " + std::to_string(kept.id) + " ran '" + kept.action + "' but the plan says '" +
                  prepared.plan.steps[at->second].action + "'"};
      }
    }
    if (read->torn_tail) {  // cut the torn line away, so the events appended next start a line of their own
      std::error_code ec;
      std::filesystem::resize_file(options_->resume_file, read->intact_bytes, ec);
      if (ec)
        return {"--resume: cannot cut the torn last line of " + options_->resume_file.string() + ": " + ec.message()};
    }
    if (record_to.empty()) record_to = options_->resume_file;
  }

  provider_ = shared_.live;
  if (!options_->replay_file.empty()) {
    auto read = record::read_recording(options_->replay_file);
    if (!read) return {"--replay: " + read.error()};
    source_ = std::move(*read);
    replay_ = std::make_unique<record::ReplayProvider>(
        shared_.loop, *source_,
        options_->replay_instant ? record::StreamTiming::instant : record::StreamTiming::recorded);
    provider_ = replay_.get();
    if (cfg.memory.enabled) {  // a replay never reads or writes the user's memory: it has a folder of its own
      // mkdtemp: mode 0700 and an unpredictable name, so no other user can plant or read it.
      std::error_code tmp_ec;
      std::string scratch = (std::filesystem::temp_directory_path(tmp_ec) / "dagent-replay-memory-XXXXXX").string();
      if (tmp_ec || ::mkdtemp(scratch.data()) == nullptr)
        return {"--replay: cannot create a scratch memory folder in " + std::filesystem::path(scratch).parent_path().string() +
                ": " + (tmp_ec ? tmp_ec.message() : std::string(std::strerror(errno)))};
      scratch_memory_ = scratch;
      replay_memory_ = std::make_unique<memory::Memory>(shared_.loop, shared_.pool, *provider_, cfg);
      replay_memory_->use_folder(scratch_memory_);
    }
  } else if (options_->replay_tools) {
    return {"--replay-tools needs --replay FILE"};
  }
  if (!record_to.empty()) {
    const bool append = !options_->resume_file.empty() && record_to == options_->resume_file;
    auto opened = record::RecordWriter::open(record_to, append, options_->record_replace);
    if (!opened) return {"--record: " + opened.error()};
    writer_.emplace(std::move(*opened));
    recording_ = std::make_unique<record::RecordingProvider>(*provider_, *writer_);
    provider_ = recording_.get();
    recorder_ = std::make_unique<RunRecorder>(*writer_);
    observer_ = recorder_.get();
  }
  budget_ = std::make_unique<Budget>(*provider_, cfg.limits);  // every chat call of the run passes it
  // llm.retry_budget counts the calls and retries of this run only, whatever else shares the client.
  budget_->meter()->retry_budget.emplace(cfg.llm.retry_budget, cfg.llm.retry_budget_min);
  provider_ = budget_.get();
  if (source_) {  // memory tools always come from the recording: the replay's memory is a scratch folder
    tool_replay_ = std::make_unique<ToolReplay>(*source_, recorder_.get(), !options_->replay_tools);
    observer_ = tool_replay_.get();
  }
  if (!cfg.tools.approval.empty()) {
    executor::ApprovalGateOptions gate;
    gate.patterns = cfg.tools.approval;
    gate.approved = options_->approve_tools;
    gate.approve_all = options_->approve_all;
    if (source_) {  // a replay: the recorded decisions answer, never the callback
      approval_replay_ = std::make_unique<ApprovalReplay>(*source_);
      gate.recorded = [replay = approval_replay_.get()](int step, std::string_view tool, const json::object& params) {
        return replay->find(step, tool, params);
      };
    } else {
      gate.ask = options_->approve;
    }
    if (recorder_)
      gate.on_decision = [recorder = recorder_.get()](const executor::ApprovalRecord& r) { recorder->approval(r); };
    approval_ = std::make_unique<executor::ApprovalGate>(std::move(gate));
  }
  planner::Recall* recall = nullptr;
  if (!replay_ && shared_.recall && shared_.memory) {  // the run's own: its embedding counts to the run's meter
    memory_recall_ = std::make_unique<MemoryRecall>(*shared_.memory, budget_->meter());
    recall = memory_recall_.get();
  }
  if (recorder_ || source_) {
    recall_tap_ = std::make_unique<RecallTap>(recall, recorder_.get(),
                                              source_ ? recorded_recall(*source_) : std::nullopt);
    recall = recall_tap_.get();
  }

  // The run's tools: the runtime's, with the built-in ones that call the model or the memory bound
  // to this run's provider chain, memory and meter.
  memory::Memory* memory = replay_memory_ ? replay_memory_.get() : shared_.memory;
  for (const Tool* tool : shared_.registry->tools()) {
    std::shared_ptr<Tool> mine;
    if (tool == shared_.llm_tool) {
      mine = std::make_shared<tools::LlmTool>(*provider_, tools::LlmTool::options_of(cfg));
    } else if (memory && tool == shared_.memory_add_tool) {
      mine = std::make_shared<tools::MemoryAddTool>(*memory, budget_->meter());
    } else if (memory && tool == shared_.memory_search_tool) {
      mine = std::make_shared<tools::MemorySearchTool>(*memory, cfg.memory.recall_k, budget_->meter());
    } else {
      mine = shared_.registry->get(tool->name());
    }
    (void)registry_.add(std::move(mine));
  }
  if (cfg.verification.llm_judge) {
    verifier_ = std::make_unique<executor::LlmJudge>(*provider_, cfg.llm.model);
  } else {
    verifier_ = std::make_unique<executor::RuleVerifier>("a text criterion needs the LLM judge, which is off "
                                                         "(verification.llm_judge)");
  }
  planner_ = std::make_unique<planner::Planner>(*provider_, registry_, cfg);
  planner_->set_recall(recall);
  return {};
}

std::optional<std::string> Run::record_header(std::string_view task_ref) {
  if (!recorder_) return std::nullopt;
  const auto& run_id = result->run_id;
  if (resume_) {
    writer_->write(json::object{{"type", "resume"}, {"run_id", run_id}, {"kept", resume_->kept.size()}});
  } else {
    write_header(task_ref);
  }
  if (writer_->error()) return "--record: " + *writer_->error();
  return std::nullopt;
}

std::vector<std::string> Run::add_recorded_mcp_tools() {
  if (!source_ || !options_->replay_tools) return {};
  const auto* listed = source_->header.if_contains("mcp_tools");
  if (!listed || !listed->is_array()) return {};
  std::vector<std::string> problems;
  for (const auto& entry : listed->get_array()) {
    auto tool = entry.is_object() ? mcp::McpTool::from_json(entry.get_object()) : nullptr;
    if (!tool) {
      problems.push_back("--replay: " + options_->replay_file.string() + ": an mcp_tools entry is not a tool");
      continue;
    }
    if (registry_.get(tool->name())) continue;
    if (auto added = registry_.add(std::move(tool)); !added) problems.push_back("--replay: " + added.error().message);
  }
  return problems;
}

void Run::write_header(std::string_view task_ref) {
  const auto& run_id = result->run_id;
  // Files are named relative to the recording's folder, so a recording replays from anywhere.
  std::error_code ec;
  const auto folder = std::filesystem::absolute(writer_->path(), ec).parent_path();
  auto beside_recording = [&](const std::filesystem::path& file) -> std::optional<std::string> {
    if (file.empty() || !std::filesystem::is_regular_file(file, ec)) return std::nullopt;
    return std::filesystem::absolute(file, ec).lexically_normal().lexically_relative(folder).generic_string();
  };
  json::object header{{"run_id", run_id},
                      {"task_ref", beside_recording(std::string(task_ref)).value_or(std::string(task_ref))}};
  for (auto& [key, value] : describe_run(header_task_, cfg())) header[key] = std::move(value);
  if (auto config = beside_recording(cfg().source)) header["config"] = *config;
  // The MCP tools as listed: a replay with --replay-tools plans and validates against them
  // without starting a server.
  json::array mcp_tools;
  for (const Tool* tool : registry_.tools())
    if (const auto* remote = dynamic_cast<const mcp::McpTool*>(tool)) mcp_tools.push_back(remote->to_json());
  if (!mcp_tools.empty()) header["mcp_tools"] = std::move(mcp_tools);
  recorder_->header(std::move(header));
}

void Run::interrupt() {
  if (interrupted) return;
  interrupted = true;
  interrupt_timer_.cancel();
  if (active) active->interrupt();
}

asio::awaitable<void> Run::interruption() {
  while (!interrupted) co_await interrupt_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
}

Prepared Run::prepare(const json::value& plan) const { return prepare_plan(plan, &task.inputs, registry_, cfg()); }

int Run::plan_width(const Prepared& prepared) const {
  const config::Config& c = cfg();
  const auto& pe = c.performance.parallel_execution;
  const int slots = pe.enabled ? std::max(1, std::min(pe.max_parallel_llm_calls, pe.max_parallel_steps)) : 1;
  const bool judges = c.verification.llm_judge && c.performance.background_tasks.verification;
  // Level by level: its llm steps, the judges of the level before (in the background a judge
  // starts as its step ends, on the connection the step gave back, and runs beside the next
  // level), and its memory steps' embedding requests (texts that arrive within the batch window
  // share one request, but steps that end apart each send their own).
  int width = 0;
  int judged_before = 0;
  for (const auto& level : prepared.analysis.levels) {
    int calls = 0;
    int judged = 0;
    int embeds = 0;
    for (const auto i : level) {
      const auto* tool = prepared.analysis.steps[i].tool;
      if (tool && tool->uses_llm()) calls += prepared.analysis.steps[i].fan_out ? slots : 1;  // items run side by side
      const auto& verify = prepared.plan.steps[i].verify;
      if (verify && verify->is_string()) ++judged;
      if (tool && (tool->name() == "memory_add" || tool->name() == "memory_search")) ++embeds;
    }
    width = std::max(width, std::min(calls, slots) + (judges ? std::min(judged_before, slots) : 0) +
                                (c.memory.enabled ? std::min(embeds, slots) : 0));
    judged_before = judged;
  }
  return std::min(width, c.performance.connection_pooling.max_connections);
}

int Run::warm_width() const {
  const config::Config& c = cfg();
  std::optional<json::value> plan = task.plan;
  if (!plan && resume_ && resume_->plan) plan = json::value(*resume_->plan);
  if (plan) {
    const Prepared prepared = prepare(*plan);
    return prepared.problems.empty() ? plan_width(prepared) : 0;  // an invalid plan will not run
  }
  // A goal: its first level can have the llm slots busy while a streamed plan call is still
  // open; warm_for() adds what the plan needs beyond that once it is known.
  const auto& pe = c.performance.parallel_execution;
  const int slots = pe.enabled ? std::max(1, std::min(pe.max_parallel_llm_calls, pe.max_parallel_steps)) : 1;
  const bool streamed = c.planner.stream_plan && pe.scheduling == config::Scheduling::eager;
  return std::min(slots + (streamed ? 1 : 0), c.performance.connection_pooling.max_connections);
}

// The warm-ups of one flow: each is cancelled once the flow ends, and the flow's end waits for
// all of them. Entries stay put (a list), so a completion can mark its own.
struct WarmUp {
  explicit WarmUp(const asio::any_io_executor& ex) : done(ex, asio::steady_timer::time_point::max()) {}
  struct Entry {
    asio::cancellation_signal cancel;
    bool finished = false;
  };
  std::list<Entry> entries;
  asio::steady_timer done;
  int running = 0;
  bool stopped = false;  ///< the flow ended: no new warm-up starts
};

namespace {

struct WarmDone {
  std::shared_ptr<WarmUp> warm;
  WarmUp::Entry* entry;
  void operator()(std::exception_ptr, int) const {  // a failed or cancelled warm-up changes nothing
    entry->finished = true;
    if (--warm->running == 0) warm->done.cancel();
  }
};

// Cancels the warm-ups when the flow ends, by returning or by throwing.
struct StopWarming {
  std::shared_ptr<WarmUp> warm;
  ~StopWarming() {
    warm->stopped = true;
    for (auto& entry : warm->entries)
      if (!entry.finished) entry.cancel.emit(asio::cancellation_type::terminal);
  }
};

// The connections it opens count to `meter`, the run's.
void start_warm_up(const asio::any_io_executor& loop, net::LlmProvider& provider, net::CallMeter* meter,
                   const std::shared_ptr<WarmUp>& warm, int k) {
  auto& entry = warm->entries.emplace_back();
  ++warm->running;
  asio::co_spawn(loop, provider.warm(k, meter), asio::bind_cancellation_slot(entry.cancel.slot(), WarmDone{warm, &entry}));
}

}  // namespace

asio::awaitable<void> Run::with_warm_connections(asio::awaitable<void> flow) {
  const auto& pooling = cfg().performance.connection_pooling;
  const int k = pooling.enabled && pooling.warm_connections && live() ? warm_width() : 0;
  if (k <= 0) {
    co_await std::move(flow);
    co_return;
  }
  auto warm = std::make_shared<WarmUp>(shared_.loop);
  warm_ = warm;
  warmed_ = k;
  // Started, not awaited: the connects run while the flow plans. Connections the planning calls
  // are already opening count towards k.
  start_warm_up(shared_.loop, provider(), budget_->meter().get(), warm, k);
  {
    StopWarming stop{warm};
    co_await std::move(flow);
  }
  // The warm-ups' frames use this run's provider chain: they end inside the run.
  while (warm->running > 0) co_await warm->done.async_wait(asio::as_tuple(asio::use_awaitable));
  warm_.reset();
}

void Run::warm_for(const Prepared& prepared) {
  if (!warm_ || warm_->stopped) return;
  const int k = plan_width(prepared);
  if (k <= warmed_) return;
  warmed_ = k;
  start_warm_up(shared_.loop, provider(), budget_->meter().get(), warm_, k);
}

ToolContext Run::tool_context() const {
  ToolContext base;
  base.workspace = workspace ? &*workspace : nullptr;
  base.worker = shared_.pool;
  return base;
}

}  // namespace dagent::runtime
