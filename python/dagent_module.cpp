// The Python extension `_dagent` (README "Embedding in Python"): dagent's public API for Python
// programs, re-exported by the `dagent` package (python/dagent/__init__.py).
//
// The GIL is released for the whole of each blocking call (a run, an ingest, a search) and taken
// again only around Python code: a tool, an observer, the conversion of a result. Sync tools run
// on dagent's worker pool (BlockingTool); `async def` tools on the asyncio loop of the package's
// own thread, their completion posted back to the runtime's loop by the future's done callback.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "dagent/dagent.hpp"

namespace py = pybind11;
namespace asio = boost::asio;
namespace json = boost::json;

namespace {

// Values nested deeper than this are refused (a cyclic structure would otherwise recurse forever).
constexpr int k_max_depth = 100;

// ---- JSON <-> Python ----------------------------------------------------------------------------

/// A Python value that has no JSON form; the message names what and where.
struct NotJson : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Text from the runtime may come from files, models or servers: bytes that are not UTF-8 become
// U+FFFD rather than an exception.
py::str to_py_str(std::string_view s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

py::object to_py(const json::value& v);

py::dict to_py(const json::object& o) {
  py::dict out;
  for (const auto& [k, x] : o) out[to_py_str(k)] = to_py(x);
  return out;
}

py::object to_py(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return py::none();
    case json::kind::bool_:
      return py::bool_(v.get_bool());
    case json::kind::int64:
      return py::int_(v.get_int64());
    case json::kind::uint64:
      return py::int_(v.get_uint64());
    case json::kind::double_:
      return py::float_(v.get_double());
    case json::kind::string:
      return to_py_str(v.get_string());
    case json::kind::array: {
      const auto& a = v.get_array();
      py::list out(a.size());
      for (std::size_t i = 0; i < a.size(); ++i) out[i] = to_py(a[i]);
      return out;
    }
    case json::kind::object:
      return to_py(v.get_object());
  }
  return py::none();
}

std::string type_name(py::handle h) { return py::str(py::type::handle_of(h).attr("__name__")); }

std::string utf8_of(py::handle s, const std::string& where) {
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(s.ptr(), &size);
  if (!data) {
    PyErr_Clear();
    throw NotJson(where + ": a string that is not valid Unicode (a lone surrogate)");
  }
  return std::string(data, static_cast<std::size_t>(size));
}

json::value from_py(py::handle h, const std::string& where, int depth = 0) {
  if (depth > k_max_depth) throw NotJson(where + ": nested deeper than " + std::to_string(k_max_depth) + " levels");
  if (h.is_none()) return nullptr;
  if (PyBool_Check(h.ptr())) return h.ptr() == Py_True;
  if (PyLong_Check(h.ptr())) {
    int overflow = 0;
    const long long n = PyLong_AsLongLongAndOverflow(h.ptr(), &overflow);
    if (overflow == 0 && !(n == -1 && PyErr_Occurred())) return static_cast<std::int64_t>(n);
    PyErr_Clear();
    const unsigned long long u = PyLong_AsUnsignedLongLong(h.ptr());
    if (!(u == static_cast<unsigned long long>(-1) && PyErr_Occurred())) return static_cast<std::uint64_t>(u);
    PyErr_Clear();
    throw NotJson(where + ": an integer outside the 64-bit range");
  }
  if (PyFloat_Check(h.ptr())) {
    const double d = PyFloat_AsDouble(h.ptr());
    if (!std::isfinite(d)) throw NotJson(where + ": a float that is not finite (JSON has no NaN or Infinity)");
    return d;
  }
  if (PyUnicode_Check(h.ptr())) return json::string(utf8_of(h, where));
  if (PyDict_Check(h.ptr())) {
    json::object out;
    for (auto [k, x] : py::reinterpret_borrow<py::dict>(h)) {
      if (!PyUnicode_Check(k.ptr())) throw NotJson(where + ": a dict key of type " + type_name(k) + " (JSON keys are strings)");
      std::string key = utf8_of(k, where);
      json::value value = from_py(x, where + "." + key, depth + 1);
      out[key] = std::move(value);
    }
    return out;
  }
  if (PyList_Check(h.ptr()) || PyTuple_Check(h.ptr())) {
    json::array out;
    std::size_t i = 0;
    for (auto x : py::reinterpret_borrow<py::sequence>(h)) {
      out.push_back(from_py(x, where + "[" + std::to_string(i) + "]", depth + 1));
      ++i;
    }
    return out;
  }
  throw NotJson(where + ": a value of type " + type_name(h) + " has no JSON form");
}

// ---- Exceptions -----------------------------------------------------------------------------------

/// dagent.errors, imported once; never released (it lives as long as the interpreter).
py::handle errors_module() {
  static py::handle module = py::module_::import("dagent.errors").release();
  return module;
}

py::list py_list(const std::vector<std::string>& items) {
  py::list out;
  for (const auto& s : items) out.append(to_py_str(s));
  return out;
}

/// Raises dagent.errors.<cls>(message, problems) with the current GIL held.
[[noreturn]] void raise_error(const char* cls, const std::string& message, const std::vector<std::string>& problems = {}) {
  py::object type = errors_module().attr(cls);
  py::object exc = type(to_py_str(message), py_list(problems));
  PyErr_SetObject(type.ptr(), exc.ptr());
  throw py::error_already_set();
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += (out.empty() ? "" : "\n") + l;
  return out;
}

/// "ValueError: the message" of the Python exception being handled (GIL held).
std::string describe(py::error_already_set& e) {
  std::string what = py::str(e.type().attr("__name__"));
  const std::string text = py::str(e.value());
  return text.empty() ? what : what + ": " + text;
}

// ---- Python objects held by C++ ------------------------------------------------------------------

/// A Python object that may be copied and dropped on threads that do not hold the GIL (the
/// runtime's loop, the worker pool): the last owner takes the GIL to release it.
struct PyRef {
  explicit PyRef(py::object o) : obj(std::move(o)) {}
  PyRef(const PyRef&) = delete;
  PyRef& operator=(const PyRef&) = delete;
  ~PyRef() {
    if (!Py_IsInitialized()) {
      (void)obj.release();  // the interpreter is gone: leak rather than touch it
      return;
    }
    py::gil_scoped_acquire gil;
    obj = py::object();
  }
  py::object obj;
};

using SharedPy = std::shared_ptr<PyRef>;

SharedPy share(py::object o) { return o.is_none() ? nullptr : std::make_shared<PyRef>(std::move(o)); }

/// The first exception raised by an observer (on_event, on_progress...) during a call; it is
/// raised again once the call has returned. Touched only with the GIL held.
struct ObserverError {
  std::optional<py::error_already_set> error;
};

// ---- Tools ----------------------------------------------------------------------------------------

/// What a Python tool is: a name, a description, a schema and the callable.
struct PyToolSpec {
  std::string name;
  std::string description;
  json::object schema;
  SharedPy fn;
};

/// The result of a Python tool's return value, or a failed step naming what went wrong (GIL held).
dagent::ToolResult tool_result_of(const PyToolSpec& spec, py::handle out) {
  try {
    return from_py(out, "result");
  } catch (const NotJson& e) {
    return dagent::tool_error(dagent::ToolErrc::failed, spec.name + ": " + e.what());
  }
}

/// A plain callable: run on the worker pool, the GIL taken only around the call.
class PySyncTool final : public dagent::BlockingTool {
 public:
  explicit PySyncTool(PyToolSpec spec) : spec_(std::move(spec)) {}
  std::string_view name() const override { return spec_.name; }
  std::string_view description() const override { return spec_.description; }
  const json::object& parameters_schema() const override { return spec_.schema; }

  dagent::ToolResult run(const json::object& params, const dagent::ToolContext&) override {
    py::gil_scoped_acquire gil;
    try {
      py::object out = spec_.fn->obj(to_py(params));
      return tool_result_of(spec_, out);
    } catch (py::error_already_set& e) {
      return dagent::tool_error(dagent::ToolErrc::failed, describe(e));
    }
  }

 private:
  PyToolSpec spec_;
};

/// What an async tool's calls share: its spec, the asyncio loop and run_coroutine_threadsafe.
/// Shared with each call, so a callback arriving late never sees a destroyed tool.
struct AsyncToolShared {
  PyToolSpec spec;
  SharedPy event_loop;
  SharedPy submit;  // asyncio.run_coroutine_threadsafe
};

// Shared by the done callback (asyncio's thread), the cancellation handler and the loop; `done`
// is only touched on the loop (every completion is posted there), so it needs no lock.
template <class Handler>
struct AsyncCall {
  explicit AsyncCall(Handler h) : handler(std::move(h)) {}
  Handler handler;
  bool done = false;
};

template <class Handler>
void complete(const std::shared_ptr<AsyncCall<Handler>>& call, dagent::ToolResult result) {
  if (call->done) return;  // cancelled first, or the future finished first
  call->done = true;
  asio::get_associated_cancellation_slot(call->handler).clear();
  std::move(call->handler)(std::move(result));
}

/// The outcome of a finished concurrent.futures.Future (GIL held).
dagent::ToolResult future_result(const PyToolSpec& spec, py::handle future) {
  try {
    if (future.attr("cancelled")().cast<bool>()) return dagent::tool_error(dagent::ToolErrc::cancelled, "cancelled");
    py::object exc = future.attr("exception")();
    if (!exc.is_none()) {
      std::string what = type_name(exc);
      const std::string text = py::str(exc);
      return dagent::tool_error(dagent::ToolErrc::failed, text.empty() ? what : what + ": " + text);
    }
    return tool_result_of(spec, future.attr("result")());
  } catch (py::error_already_set& e) {
    return dagent::tool_error(dagent::ToolErrc::failed, describe(e));
  }
}

template <class Handler, class Loop>
struct OnFutureDone {
  std::shared_ptr<AsyncCall<Handler>> call;
  Loop loop;
  std::shared_ptr<const AsyncToolShared> tool;
  void operator()(py::object future) const {
    auto result = future_result(tool->spec, future);
    asio::post(loop, [call = call, result = std::move(result)]() mutable { complete(call, std::move(result)); });
  }
};

struct InitiateAsyncCall {
  template <class Handler>
  void operator()(Handler handler, std::shared_ptr<const AsyncToolShared> tool, json::object params) const {
    auto loop = asio::prefer(asio::get_associated_executor(handler), asio::execution::outstanding_work.tracked);
    auto slot = asio::get_associated_cancellation_slot(handler);
    auto call = std::make_shared<AsyncCall<Handler>>(std::move(handler));
    py::gil_scoped_acquire gil;
    try {
      py::object coro = tool->spec.fn->obj(to_py(params));
      py::object future = tool->submit->obj(coro, tool->event_loop->obj);
      if (slot.is_connected()) {
        // A timed-out or interrupted step completes at once; the coroutine is cancelled on its loop.
        auto pending = std::make_shared<PyRef>(future);
        slot.assign([call, loop, pending](asio::cancellation_type) {
          {
            py::gil_scoped_acquire gil;
            try {
              pending->obj.attr("cancel")();
            } catch (py::error_already_set&) {  // nothing to do: the step completes cancelled anyway
            }
          }
          asio::post(loop, [call] { complete(call, dagent::tool_error(dagent::ToolErrc::cancelled, "cancelled")); });
        });
      }
      future.attr("add_done_callback")(py::cpp_function(OnFutureDone<Handler, decltype(loop)>{call, loop, tool}));
    } catch (py::error_already_set& e) {
      auto result = dagent::tool_error(dagent::ToolErrc::failed, describe(e));
      asio::post(loop, [call, result = std::move(result)]() mutable { complete(call, std::move(result)); });
    }
  }
};

/// An `async def`: awaited on the package's asyncio loop; the step waits on dagent's loop for the
/// future's done callback (no polling) or its own cancellation.
class PyAsyncTool final : public dagent::Tool {
 public:
  explicit PyAsyncTool(std::shared_ptr<const AsyncToolShared> tool) : tool_(std::move(tool)) {}
  std::string_view name() const override { return tool_->spec.name; }
  std::string_view description() const override { return tool_->spec.description; }
  const json::object& parameters_schema() const override { return tool_->spec.schema; }

  asio::awaitable<dagent::ToolResult> invoke(json::object params, dagent::ToolContext) override {
    // Named parts: g++ 12 mishandles temporaries inside a co_await expression.
    InitiateAsyncCall initiation;
    auto started = asio::async_initiate<const asio::use_awaitable_t<>&, void(dagent::ToolResult)>(
        initiation, asio::use_awaitable, tool_, std::move(params));
    co_return co_await std::move(started);
  }

 private:
  std::shared_ptr<const AsyncToolShared> tool_;
};

// ---- Observers ------------------------------------------------------------------------------------

py::dict event_dict(const dagent::StepEvent& ev) {
  py::dict d;
  d["step_id"] = ev.step_id;
  d["action"] = to_py_str(ev.action);
  d["status"] = to_py_str(to_string(ev.status));
  d["verification"] = to_py_str(to_string(ev.verification));
  d["attempt"] = ev.attempt;
  d["at_ms"] = ev.at_ms;
  d["message"] = to_py_str(ev.message);
  d["item"] = ev.item;
  d["items"] = ev.items;
  d["items_done"] = ev.items_done;
  d["items_failed"] = ev.items_failed;
  return d;
}

py::dict planning_dict(const dagent::PlanningEvent& ev) {
  py::dict d;
  d["phase"] = to_py_str(to_string(ev.phase));
  d["finished"] = ev.finished;
  d["at_ms"] = ev.at_ms;
  d["detail"] = to_py_str(ev.detail);
  return d;
}

py::dict progress_dict(const dagent::IngestProgress& p) {
  py::dict d;
  d["files_done"] = p.files_done;
  d["files_total"] = p.files_total;
  d["chunks_done"] = p.chunks_done;
  d["chunks_total"] = p.chunks_total;
  return d;
}

/// Calls a Python observer with the GIL; its first exception is kept (and the run cancelled, when
/// there is one) to be raised once the call returns.
template <class Arg, auto ToPy>
struct Observer {
  SharedPy fn;
  std::shared_ptr<ObserverError> error;
  std::shared_ptr<dagent::RunCancel> cancel;  // may be null (ingest)
  void operator()(const Arg& arg) const {
    py::gil_scoped_acquire gil;
    if (error->error) return;  // one exception is enough; the run is stopping
    try {
      fn->obj(ToPy(arg));
    } catch (py::error_already_set& e) {
      error->error = std::move(e);
      if (cancel) cancel->cancel();  // on the loop: observers are called there
    }
  }
};

py::str answer_str(const std::string_view& s) { return to_py_str(s); }

// ---- Ctrl-C ---------------------------------------------------------------------------------------

/// Python's own SIGINT handler could only act once a blocking call returned, so a call made from
/// the main thread asks the runtime to take SIGINT for the run (RunOptions::stop_on_sigint): the
/// first cancels the run, a second exits 130 as the CLI does, and Python's handler is put back
/// with one sigaction() afterwards (a Ctrl-C that came after the run ended goes to it).
bool on_main_thread() {
  py::module_ threading = py::module_::import("threading");
  py::object main_ident = threading.attr("main_thread")().attr("ident");
  py::object this_ident = threading.attr("get_ident")();
  return main_ident.equal(this_ident);
}

// ---- The runtime ---------------------------------------------------------------------------------

/// Marks the runtime busy for one call: Runtime is not thread-safe and the GIL is released while
/// it runs, so another Python thread (or a tool calling back into it) is refused.
class BusyGuard {
 public:
  explicit BusyGuard(std::atomic<bool>& busy) : busy_(busy) {
    if (busy_.exchange(true)) raise_error("DagentError", "the runtime is busy: one call at a time (a tool or another thread called it during a run)");
  }
  BusyGuard(const BusyGuard&) = delete;
  BusyGuard& operator=(const BusyGuard&) = delete;
  ~BusyGuard() { busy_ = false; }

 private:
  std::atomic<bool>& busy_;
};

/// A task given as a name or a path (str or os.PathLike).
std::string task_of(py::handle task) {
  py::object text = py::module_::import("os").attr("fspath")(task);
  if (!PyUnicode_Check(text.ptr())) throw py::type_error("task must be a str or an os.PathLike of str");
  return utf8_of(text, "task");
}

json::value plan_from_py(py::handle plan) {
  if (PyUnicode_Check(plan.ptr())) {
    boost::system::error_code ec;
    json::value v = json::parse(utf8_of(plan, "plan"), ec);
    if (ec) raise_error("PlanError", "plan: not JSON: " + ec.message(), {"plan: not JSON: " + ec.message()});
    return v;
  }
  try {
    return from_py(plan, "plan");
  } catch (const NotJson& e) {
    raise_error("PlanError", e.what(), {e.what()});
  }
}

json::object object_from_py(py::handle h, const char* what) {
  if (h.is_none()) return {};
  json::value v;
  try {
    v = from_py(h, what);
  } catch (const NotJson& e) {
    throw py::type_error(e.what());
  }
  if (!v.is_object()) throw py::type_error(std::string(what) + " must be a dict");
  return std::move(v.as_object());
}

/// Options of run_plan / run_task given from Python.
struct PyRunOptions {
  py::object on_event = py::none();
  py::object on_planning = py::none();
  py::object on_answer = py::none();
  bool approve_all = false;
  std::vector<std::string> approve_tools;
  std::optional<std::filesystem::path> trace_file;
  bool handle_sigint = true;
};

class PyRuntime {
 public:
  explicit PyRuntime(dagent::Runtime rt) : rt_(std::make_unique<dagent::Runtime>(std::move(rt))) {}
  PyRuntime(const PyRuntime&) = delete;
  PyRuntime& operator=(const PyRuntime&) = delete;
  ~PyRuntime() {
    if (!rt_) return;
    std::unique_ptr<dagent::Runtime> rt = std::move(rt_);
    py::gil_scoped_release nogil;  // tools still running need the GIL to finish
    rt.reset();
  }

  static std::unique_ptr<PyRuntime> load(std::optional<std::filesystem::path> path, std::vector<std::string> overrides) {
    auto loaded = [&] {
      py::gil_scoped_release nogil;
      return dagent::Runtime::load(path.value_or(std::filesystem::path()), overrides);
    }();
    if (auto* problems = std::get_if<std::vector<std::string>>(&loaded)) raise_error("ConfigError", join_lines(*problems), *problems);
    return std::make_unique<PyRuntime>(std::move(std::get<dagent::Runtime>(loaded)));
  }

  /// Stores pending background work and stops the worker pool; waits for Python tools still
  /// running (the GIL released meanwhile).
  void close() {
    if (!rt_) return;
    if (busy_) raise_error("DagentError", "the runtime is busy: close() during a run");
    std::unique_ptr<dagent::Runtime> rt = std::move(rt_);
    py::gil_scoped_release nogil;
    rt.reset();
  }

  void register_tool(std::string name, std::string description, py::handle schema, py::object fn) {
    auto& rt = runtime();
    if (!PyCallable_Check(fn.ptr())) throw py::type_error("register_tool: fn must be callable");
    PyToolSpec spec{std::move(name), std::move(description), object_from_py(schema, "schema"), share(fn)};
    const bool is_async = py::module_::import("inspect").attr("iscoroutinefunction")(fn).cast<bool>();
    std::shared_ptr<dagent::Tool> tool;
    if (is_async) {
      auto shared = std::make_shared<AsyncToolShared>(AsyncToolShared{
          std::move(spec), share(py::module_::import("dagent._loop").attr("event_loop")()),
          share(py::module_::import("asyncio").attr("run_coroutine_threadsafe"))});
      tool = std::make_shared<PyAsyncTool>(std::move(shared));
    } else {
      tool = std::make_shared<PySyncTool>(std::move(spec));
    }
    if (auto added = rt.register_tool(std::move(tool)); !added) raise_error("DagentError", added.error().message);
  }

  py::object run_plan(py::handle plan, py::handle inputs, std::filesystem::path workspace, std::string task_name,
                      const PyRunOptions& py_options) {
    auto& rt = runtime();
    BusyGuard busy(busy_);
    json::value plan_json = plan_from_py(plan);
    json::object inputs_json = object_from_py(inputs, "inputs");
    return run(py_options, [&](const dagent::RunOptions& options) {
      return rt.run_plan(plan_json, inputs_json, workspace, options, task_name);
    });
  }

  py::object run_task(const std::string& task, const PyRunOptions& py_options) {
    auto& rt = runtime();
    BusyGuard busy(busy_);
    return run(py_options, [&](const dagent::RunOptions& options) { return rt.run_task(task, options); });
  }

  py::dict plan_json(py::handle plan, py::handle inputs) {
    auto& rt = runtime();
    BusyGuard busy(busy_);
    json::value plan_value = plan_from_py(plan);
    std::optional<json::object> inputs_json;
    if (!inputs.is_none()) inputs_json = object_from_py(inputs, "inputs");
    dagent::PlanReport report = [&] {
      py::gil_scoped_release nogil;
      return rt.plan_json(plan_value, inputs_json ? &*inputs_json : nullptr);
    }();
    return report_dict(report);
  }

  py::dict plan_task(py::handle task_name, py::object on_planning) {
    auto& rt = runtime();
    const std::string task = task_of(task_name);
    BusyGuard busy(busy_);
    auto error = std::make_shared<ObserverError>();
    dagent::RunOptions options;
    if (!on_planning.is_none())
      options.on_planning = Observer<dagent::PlanningEvent, planning_dict>{share(on_planning), error, nullptr};
    dagent::PlanReport report = [&] {
      py::gil_scoped_release nogil;
      return rt.plan_task(task, options);
    }();
    if (error->error) throw std::move(*error->error);
    return report_dict(report);
  }

  py::dict ingest(const std::vector<std::filesystem::path>& paths, py::object on_progress) {
    auto& rt = runtime();
    BusyGuard busy(busy_);
    auto error = std::make_shared<ObserverError>();
    std::function<void(const dagent::IngestProgress&)> progress;
    if (!on_progress.is_none()) progress = Observer<dagent::IngestProgress, progress_dict>{share(on_progress), error, nullptr};
    dagent::MemoryOutcome out = [&] {
      py::gil_scoped_release nogil;
      return rt.ingest(paths, progress);
    }();
    if (error->error) throw std::move(*error->error);
    raise_memory_error(out);
    const auto& r = out.ingest;
    py::dict d;
    d["files_seen"] = r.files_seen;
    d["files_ingested"] = r.files_ingested;
    d["files_unchanged"] = r.files_unchanged;
    d["files_skipped"] = r.files_skipped;
    d["chunks_added"] = r.chunks_added;
    d["chunks_replaced"] = r.chunks_replaced;
    d["warnings"] = py_list(r.warnings);
    return d;
  }

  py::list search_memory(const std::string& query, int k) {
    auto& rt = runtime();
    BusyGuard busy(busy_);
    if (k < 0) throw py::value_error("search_memory: k must be >= 0 (0: memory.recall_k)");
    dagent::MemoryOutcome out = [&] {
      py::gil_scoped_release nogil;
      return rt.search_memory(query, k);
    }();
    raise_memory_error(out);
    py::list hits;
    for (const auto& h : out.hits) {
      py::dict d;
      d["id"] = h.id;
      d["score"] = h.score;
      d["text"] = to_py_str(h.text);
      d["metadata"] = to_py(h.metadata);
      d["source"] = to_py_str(h.source);
      d["begin"] = h.begin;
      d["end"] = h.end;
      hits.append(std::move(d));
    }
    return hits;
  }

  py::list finish_background() {
    auto& rt = runtime();
    BusyGuard busy(busy_);
    std::vector<std::string> warnings = [&] {
      py::gil_scoped_release nogil;
      return rt.finish_background();
    }();
    return py_list(warnings);
  }

  bool closed() const { return !rt_; }

 private:
  dagent::Runtime& runtime() {
    if (!rt_) raise_error("DagentError", "the runtime is closed");
    return *rt_;
  }

  static void raise_memory_error(const dagent::MemoryOutcome& out) {
    if (out.error.empty()) return;
    raise_error(out.exit_code == 3 ? "ProviderUnreachable" : "MemoryStoreError", out.error, {out.error});
  }

  static py::dict report_dict(const dagent::PlanReport& report) {
    if (!report.problems.empty())
      raise_error(report.unreachable ? "ProviderUnreachable" : "PlanError", join_lines(report.problems), report.problems);
    py::dict d;
    d["task"] = to_py_str(report.task);
    d["plan"] = to_py(report.plan);
    py::list levels;
    for (const auto& level : report.levels) levels.append(py::cast(level));
    d["levels"] = levels;
    d["critical_path"] = py::cast(report.critical_path);
    return d;
  }

  /// The part every run shares: options from Python, the GIL released, Ctrl-C, the outcome.
  template <class Start>
  py::object run(const PyRunOptions& py_options, Start start) {
    auto cancel = std::make_shared<dagent::RunCancel>();
    auto error = std::make_shared<ObserverError>();
    dagent::RunOptions options;
    options.cancel = cancel;
    options.approve_all = py_options.approve_all;
    options.approve_tools = py_options.approve_tools;
    if (py_options.trace_file) options.trace_file = *py_options.trace_file;
    if (!py_options.on_event.is_none())
      options.on_event = Observer<dagent::StepEvent, event_dict>{share(py_options.on_event), error, cancel};
    if (!py_options.on_planning.is_none())
      options.on_planning = Observer<dagent::PlanningEvent, planning_dict>{share(py_options.on_planning), error, cancel};
    if (!py_options.on_answer.is_none())
      options.on_answer = Observer<std::string_view, answer_str>{share(py_options.on_answer), error, cancel};

    options.stop_on_sigint = py_options.handle_sigint && on_main_thread();
    std::optional<dagent::RunOutcome> outcome;
    {
      py::gil_scoped_release nogil;
      outcome.emplace(start(options));
    }
    // Cancelled by Ctrl-C: the only other canceller, an observer's exception, was raised above.
    const bool stop_on_sigint = options.stop_on_sigint;
    bool interrupted = stop_on_sigint && outcome->result.interrupted;
    options = {};  // drops the observers while the GIL is held
    // A Ctrl-C the run no longer heard went to Python's handler: it is this call's too.
    if (stop_on_sigint && PyErr_CheckSignals() != 0) {
      if (!PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) throw py::error_already_set();
      PyErr_Clear();
      interrupted = true;
    }
    if (error->error) throw std::move(*error->error);
    if (!outcome->problems.empty()) {
      raise_error(outcome->unreachable ? "ProviderUnreachable" : "PlanError", join_lines(outcome->problems),
                  outcome->problems);
    }
    py::object result = to_py(dagent::to_json(outcome->result));
    if (interrupted) {
      // KeyboardInterrupt itself, not a subclass: uncaught, only that makes Python end as killed
      // by SIGINT (exit status 130 in a shell), as it does on any Ctrl-C.
      py::object type = py::reinterpret_borrow<py::object>(PyExc_KeyboardInterrupt);
      py::object exc = type(py::str("run interrupted"));
      exc.attr("result") = result;
      PyErr_SetObject(type.ptr(), exc.ptr());
      throw py::error_already_set();
    }
    return result;
  }

  std::unique_ptr<dagent::Runtime> rt_;
  std::atomic<bool> busy_ = false;
};

}  // namespace

PYBIND11_MODULE(_dagent, m) {
  m.doc() = "dagent's runtime (use the `dagent` package, which re-exports this module)";
  m.attr("__version__") = DAGENT_PYTHON_VERSION;

  py::class_<PyRuntime>(m, "Runtime")
      .def_static("load", &PyRuntime::load, py::arg("path") = py::none(), py::arg("overrides") = std::vector<std::string>{},
                  "Loads a config file (None or '': built-in defaults) with --set style overrides; "
                  "raises ConfigError with .problems")
      .def("register_tool", &PyRuntime::register_tool, py::arg("name"), py::arg("description"), py::arg("schema"),
           py::arg("fn"), "Makes fn(params: dict) -> JSON-able value callable from plans; fn may be an async def")
      .def(
          "run_plan",
          [](PyRuntime& self, py::handle plan, py::handle inputs, std::filesystem::path workspace, std::string task_name,
             py::object on_event, bool approve_all, std::vector<std::string> approve_tools,
             std::optional<std::filesystem::path> trace_file, bool handle_sigint) {
            PyRunOptions o;
            o.on_event = std::move(on_event);
            o.approve_all = approve_all;
            o.approve_tools = std::move(approve_tools);
            o.trace_file = std::move(trace_file);
            o.handle_sigint = handle_sigint;
            return self.run_plan(plan, inputs, std::move(workspace), std::move(task_name), o);
          },
          py::arg("plan"), py::arg("inputs") = py::none(), py::arg("workspace") = std::filesystem::path("."),
          py::kw_only(), py::arg("task_name") = "plan", py::arg("on_event") = py::none(), py::arg("approve_all") = false,
          py::arg("approve_tools") = std::vector<std::string>{}, py::arg("trace_file") = py::none(),
          py::arg("handle_sigint") = true,
          "Runs a plan (SPEC §3: a list or dict, or its JSON text); returns the SPEC §5 result as a dict")
      .def(
          "run_task",
          [](PyRuntime& self, py::handle task, py::object on_event, py::object on_planning, py::object on_answer,
             bool approve_all, std::vector<std::string> approve_tools, std::optional<std::filesystem::path> trace_file,
             bool handle_sigint) {
            PyRunOptions o;
            o.on_event = std::move(on_event);
            o.on_planning = std::move(on_planning);
            o.on_answer = std::move(on_answer);
            o.approve_all = approve_all;
            o.approve_tools = std::move(approve_tools);
            o.trace_file = std::move(trace_file);
            o.handle_sigint = handle_sigint;
            return self.run_task(task_of(task), o);
          },
          py::arg("task"), py::kw_only(), py::arg("on_event") = py::none(), py::arg("on_planning") = py::none(),
          py::arg("on_answer") = py::none(), py::arg("approve_all") = false,
          py::arg("approve_tools") = std::vector<std::string>{}, py::arg("trace_file") = py::none(),
          py::arg("handle_sigint") = true,
          "Runs a task (a task file or a name under tasks:); returns the SPEC §5 result as a dict")
      .def("plan_json", &PyRuntime::plan_json, py::arg("plan"), py::arg("inputs") = py::none(),
           "Validates a plan and derives its DAG: {task, plan, levels, critical_path}; raises PlanError")
      .def("plan_task", &PyRuntime::plan_task, py::arg("task"), py::kw_only(), py::arg("on_planning") = py::none(),
           "Validates (and for a goal, plans) a task without running it")
      .def("ingest", &PyRuntime::ingest, py::arg("paths"), py::kw_only(), py::arg("on_progress") = py::none(),
           "Ingests text files into the memory index; returns the ingest report as a dict")
      .def("search_memory", &PyRuntime::search_memory, py::arg("query"), py::arg("k") = 0,
           "The k (0: memory.recall_k) memory entries closest to query, best first, as dicts")
      .def("finish_background", &PyRuntime::finish_background,
           "Stores pending background memory updates and history; returns warnings")
      .def("close", &PyRuntime::close, "Finishes background work and releases the runtime (idempotent)")
      .def_property_readonly("closed", &PyRuntime::closed)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyRuntime& self, py::args) { self.close(); });
}
