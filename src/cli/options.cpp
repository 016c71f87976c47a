#include "cli/options.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string_view>

// The only file that includes CLI11 (header-only and slow to compile): keep it out of headers.
#include <CLI/CLI.hpp>

#include "history/history_store.hpp"

namespace dagent::cli {

namespace {

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Validators check an option's text before CLI11 converts or stores it; an empty description
// keeps the type name (FILE, N, ...) as the help and the completion show it.
CLI::Validator number_in(long low, long high) {
  return CLI::Validator(
      [low, high](std::string& text) -> std::string {
        char* end = nullptr;
        errno = 0;
        const long n = std::strtol(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0' || errno != 0 || n < low || n > high)
          return "needs a number from " + std::to_string(low) + " to " + std::to_string(high) + ", got '" + text + "'";
        return {};
      },
      "");
}

CLI::Validator one_of(std::string_view first, std::string_view second) {
  return CLI::Validator(
      [first, second](std::string& text) -> std::string {
        if (text == first || text == second) return {};
        return "is " + std::string(first) + " or " + std::string(second) + ", got '" + text + "'";
      },
      "");
}

CLI::Validator not_empty(std::string what) {
  return CLI::Validator([what](std::string& text) -> std::string { return text.empty() ? "needs " + what : ""; }, "");
}

CLI::Validator since_value() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (history::parse_since(text, now_ms())) return {};
        return "needs a date (2026-12-01) or a duration (7d, 12h, 30m), got '" + text + "'";
      },
      "");
}

// One repeatable option (or one value of it): the callback runs at each occurrence, so the
// values keep their command-line order (--set and --distributed both append overrides).
CLI::Option* add_each(CLI::App& cmd, const std::string& name, std::function<void(const std::string&)> each,
                      const std::string& help) {
  return cmd.add_option_function<std::string>(name, std::move(each), help)->trigger_on_parse();
}

// The options several commands share, each declared once and attached to the commands that take it.

void add_config_options(CLI::App& cmd, Options& o) {
  cmd.add_option_function<std::string>("--config", [&o](const std::string& v) { o.config = v; },
                                       "config file (default ./config.yaml if present, else built-in defaults)")
      ->type_name("FILE")
      ->check(not_empty("a file"));
  add_each(cmd, "--set", [&o](const std::string& v) { o.overrides.push_back(v); },
           "override a config key by dotted path; repeatable")
      ->type_name("KEY=VALUE");
  cmd.add_flag_callback("-q,--quiet", [&o] { o.verbosity = -1; }, "quieter progress on stderr");
  cmd.add_flag_callback("-v,--verbose", [&o] { o.verbosity = 1; }, "more verbose progress on stderr");
}

void add_json(CLI::App& cmd, Options& o, const std::string& help) { cmd.add_flag("--json", o.json, help); }

// run and replay: the outputs of a run and consent for tools.approval.
void add_run_options(CLI::App& cmd, Options& o) {
  add_json(cmd, o, "print the result JSON on stdout; progress stays on stderr");
  cmd.add_option_function<std::string>("--trace", [&o](const std::string& v) { o.trace_file = v; },
                                       "write a Chrome trace-event JSON of the run")
      ->type_name("FILE")
      ->check(not_empty("a file"));
  cmd.add_option_function<std::string>("--metrics-file", [&o](const std::string& v) { o.metrics_file = v; },
                                       "write the Prometheus metrics (text exposition) after the run")
      ->type_name("FILE")
      ->check(not_empty("a file"));
  cmd.add_option_function<std::string>("--record", [&o](const std::string& v) { o.record_file = v; },
                                       "write the run's recording (JSON Lines, one event per line)")
      ->type_name("FILE")
      ->check(not_empty("a file"));
  cmd.add_flag("--force", o.force, "with --record: replace an existing file");
  cmd.add_flag("--replay-tools", o.replay_tools, "with a replay: tool results from the recording too");
  cmd.add_option_function<std::string>("--replay-timing", [&o](const std::string& v) { o.replay_instant = v == "instant"; },
                                       "with a replay: streamed replies at their recorded pace (default) or at once")
      ->type_name("recorded|instant")
      ->check(one_of("recorded", "instant"));
  add_each(cmd, "--approve", [&o](const std::string& v) { o.approve.push_back(v); },
           "approve every call of TOOL (a name or a glob) that tools.approval names; repeatable")
      ->type_name("TOOL")
      ->check(not_empty("a tool name (or a glob such as write_*)"));
  cmd.add_flag("--yes", o.yes, "approve every call that tools.approval names (no question asked)");
}

struct Parser {
  CLI::App app{"dagent: plans a task as a graph of tool calls and runs it", "dagent"};
  Options o;
  std::vector<std::string> words;  // the chosen command's positional arguments, in order
  std::string since;               // runs list --since, turned into o.since_ms once parsed
  std::vector<std::string> help_topic;
  std::string shell;

  // Positionals are shown by name alone (TASK, not TASK TEXT): ->type_name("").
  Parser() {
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a repeated option: the last wins
    app.set_version_flag("--version", std::string("dagent ") + DAGENT_VERSION);
    app.allow_extras();  // leftovers are reported by check_leftovers(), naming the command
    app.require_subcommand(0, 1);  // one command: `dagent run task.yaml plan` is an extra argument
    app.footer(
        "Run 'dagent COMMAND --help' for a command's options; '--' ends the options.\n"
        "Exit codes: 0 succeeded, 1 a step or verification failed, 2 invalid input (nothing ran),\n"
        "            3 the provider could not be reached");
    auto word = [this](const std::string& v) { words.push_back(v); };

    auto* run = command(app, "run", "run a task (a YAML file, or a name under `tasks:` in config.yaml)");
    run->add_option_function<std::string>("TASK", word, "a task file or a task name (optional with --resume)")->type_name("");
    add_run_options(*run, o);
    run->add_option_function<std::string>("--replay", [this](const std::string& v) { o.replay_file = v; },
                                          "answer model and embedding calls from a recording; no network")
        ->type_name("FILE")
        ->check(not_empty("a file"));
    run->add_option_function<std::string>("--resume", [this](const std::string& v) { o.resume_file = v; },
                                          "finish an interrupted recorded run; finished steps are not run again")
        ->type_name("FILE")
        ->check(not_empty("a file"));
    run->add_flag_callback("--distributed", [this] { o.overrides.push_back("execution.backend=redis"); },
                           "send steps to dagent workers through Redis (--set execution.backend=redis)")
        ->trigger_on_parse();

    auto* plan = command(app, "plan", "print the validated plan, its levels and critical path; run nothing");
    plan->add_option_function<std::string>("TASK", word, "a task file or a task name")->type_name("")->required();
    add_json(*plan, o, "print the plan, levels and critical path as JSON");

    auto* validate = command(app, "validate", "check config.yaml (and a task or plan) and print every problem");
    validate->add_option_function<std::string>("TASK", word, "a task file or name, or a plan file ending in .json")->type_name("");

    auto* replay = command(app, "replay", "re-run a recorded run offline: model answers come from the recording");
    replay->add_option_function<std::string>("RECORDING", word, "a file written with --record")->type_name("")->required();
    add_run_options(*replay, o);

    auto* ingest = command(app, "ingest", "chunk text files (folders recursively) into the memory index");
    ingest->add_option_function<std::vector<std::string>>(
              "PATH", [this](const std::vector<std::string>& v) { words.insert(words.end(), v.begin(), v.end()); },
              "files or folders")
        ->type_name("")
        ->required();
    add_json(*ingest, o, "print the ingest report as JSON");

    auto* memory = group(app, "memory", "the memory index");
    auto* search = command(*memory, "search", "print the memories closest in meaning to QUERY");
    search->add_option_function<std::string>("QUERY", word, "the text to search for")->type_name("")->required();
    search->add_option("-k", o.k, "number of hits (default memory.recall_k)")->type_name("N")->check(number_in(1, 1000));
    add_json(*search, o, "print the hits as JSON");

    auto* mcp = group(app, "mcp", "MCP servers (mcp.servers)");
    auto* list_tools = command(*mcp, "list", "start the MCP servers and print their tools and parameters");
    list_tools->add_option_function<std::string>("SERVER", word, "only this server's tools")->type_name("");
    add_json(*list_tools, o, "print the tools as JSON");

    auto* worker = command(app, "worker", "take steps of distributed runs from Redis (redis.url) until SIGTERM");
    worker->add_option_function<std::string>("--name", [this](const std::string& v) { o.worker_name = v; },
                                             "its name among the workers (default host-pid)")
        ->type_name("NAME")
        ->check(not_empty("a name"));
    worker->add_option("--concurrency", o.concurrency, "jobs run at once (default execution.worker_concurrency)")
        ->type_name("N")
        ->check(number_in(1, 1024));
    add_each(*worker, "--workspace-root", [this](const std::string& v) { o.workspace_roots.emplace_back(v); },
             "run jobs whose workspace is inside DIR; repeatable (default .)")
        ->type_name("DIR")
        ->check(not_empty("a folder"));

    auto* runs = group(app, "runs", "the run history");
    auto* list = command(*runs, "list", "the run history, newest first");
    list->add_option_function<std::string>("--status", [this](const std::string& v) { o.status = v; }, "only these runs")
        ->type_name("succeeded|failed")
        ->check(one_of("succeeded", "failed"));
    list->add_option_function<std::string>("--task", [this](const std::string& v) { o.task = v; }, "runs of task T")
        ->type_name("T")
        ->check(not_empty("a task name"));
    list->add_option("--since", since, "started since a date (2026-12-01, UTC) or for a time (7d, 12h, 30m)")
        ->type_name("D")
        ->check(since_value());
    list->add_option("--limit", o.limit, "at most N runs (default 50)")->type_name("N")->check(number_in(1, 1000000));
    add_json(*list, o, "print the runs as JSON");
    auto* show = command(*runs, "show", "one stored run: summary and steps");
    show->add_option_function<std::string>("ID", word, "a run id (dagent runs list)")->type_name("")->required();
    add_json(*show, o, "print the run's whole result JSON");

    auto* serve = command(app, "serve", "an HTTP service that takes runs (serve.* keys; until SIGTERM)");
    serve->add_option_function<std::string>("--listen", [this](const std::string& v) { o.listen = v; },
                                            "the address to listen on (default serve.listen, 127.0.0.1:8080)")
        ->type_name("HOST:PORT")
        ->check(not_empty("HOST:PORT"));

    auto* report = command(app, "report", "a run as one self-contained HTML page: plan graph, timeline, steps");
    report->add_option_function<std::string>("RUN", word, "a run id or a result JSON file")->type_name("")->required();
    report->add_option_function<std::string>("-o,--output", [this](const std::string& v) { o.output = v; },
                                             "write the page to FILE (default, or -: stdout)")
        ->type_name("FILE")
        ->check(not_empty("a file (or - for stdout)"));

    auto* help = app.add_subcommand("help", "print the help of a command (dagent help runs list)");
    help->add_option("COMMAND", help_topic, "a command")->type_name("");
    auto* completion = app.add_subcommand("completion", "print a bash completion script");
    completion->add_option("SHELL", shell, "bash")->required()->check(CLI::IsMember({"bash"}));
    completion->group("");  // hidden: the installed script is generated by it
    app.add_subcommand("version", "print the version")->group("");
  }

  // A command that runs: its own options, the config options, leftovers reported by us.
  CLI::App* command(CLI::App& parent, const std::string& name, const std::string& help) {
    auto* cmd = parent.add_subcommand(name, help);
    cmd->allow_extras();
    add_config_options(*cmd, o);
    return cmd;
  }

  // A command made of subcommands (runs list, runs show).
  CLI::App* group(CLI::App& parent, const std::string& name, const std::string& help) {
    auto* cmd = parent.add_subcommand(name, help);
    cmd->allow_extras();
    cmd->require_subcommand(0, 1);
    return cmd;
  }
};

// The commands given, from the root: {app, runs, list}.
std::vector<CLI::App*> chosen(CLI::App& app) {
  std::vector<CLI::App*> path{&app};
  for (auto subs = app.get_subcommands(); !subs.empty(); subs = path.back()->get_subcommands())
    path.push_back(subs.front());
  return path;
}

// "runs list" (empty for the root).
std::string name_of(const CLI::App& cmd) {
  std::string name;
  for (const auto* a = &cmd; a->get_parent() != nullptr; a = a->get_parent())
    name = a->get_name() + (name.empty() ? "" : " " + name);
  return name;
}

// Every command below `app` (visible ones), depth first.
void commands_below(CLI::App& app, std::vector<CLI::App*>& out) {
  for (auto* sub : app.get_subcommands([](CLI::App* a) { return !a->get_group().empty(); })) {
    out.push_back(sub);
    commands_below(*sub, out);
  }
}

std::string subcommand_names(CLI::App& cmd) {
  std::string names;
  for (auto* sub : cmd.get_subcommands([](CLI::App* a) { return !a->get_group().empty(); }))
    names += (names.empty() ? "" : ", ") + sub->get_name();
  return names;
}

std::string see_help(const std::string& command) {
  return "\n(see 'dagent " + (command.empty() ? std::string() : command + " ") + "--help')";
}

bool is_option(const std::string& arg) { return arg.size() > 1 && arg[0] == '-'; }

// `--status=x` -> `--status`, `-k3` -> `-k`.
std::string option_name(const std::string& arg) {
  if (arg.starts_with("--")) return arg.substr(0, arg.find('='));
  return arg.substr(0, 2);
}

// An option the command does not take: the commands that do, so the message can point there.
std::string option_error(CLI::App& root, const CLI::App& cmd, const std::string& arg) {
  const std::string option = option_name(arg);
  std::vector<CLI::App*> all;
  commands_below(root, all);
  std::string owners;
  for (auto* other : all) {
    if (other == &cmd || other->get_option_no_throw(option) == nullptr) continue;
    owners += (owners.empty() ? "" : ", ") + name_of(*other);
  }
  const std::string command = name_of(cmd);
  if (command.empty()) {
    if (owners.empty()) return "dagent: unknown option " + option + see_help("");
    return "dagent: " + option + " goes after a command that takes it (" + owners + ")" + see_help("");
  }
  if (owners.empty()) return "dagent: unknown option " + option + " for '" + command + "'" + see_help(command);
  return "dagent: '" + command + "' does not take " + option + " (an option of: " + owners + ")" + see_help(command);
}

// What was left over on the chosen commands: an option they do not take (named with the commands
// that do), an unknown command, an extra argument; nothing when all was taken.
std::optional<std::string> check_leftovers(CLI::App& root, const std::vector<CLI::App*>& path) {
  // CLI11 keeps a `--` among the leftovers: what follows it is an argument even if it starts with -.
  std::vector<std::pair<CLI::App*, std::string>> options, arguments;
  for (auto* cmd : path) {
    bool ended = false;
    for (const auto& arg : cmd->remaining()) {
      if (arg == "--" && !ended) ended = true;
      else if (!ended && is_option(arg)) options.emplace_back(cmd, arg);
      else arguments.emplace_back(cmd, arg);
    }
  }
  if (!options.empty()) return option_error(root, *options.front().first, options.front().second);
  if (arguments.empty()) return std::nullopt;
  auto& [cmd, arg] = arguments.front();
  const std::string command = name_of(*cmd);
  if (cmd == &root) return "dagent: unknown command '" + arg + "'" + see_help("");
  if (cmd == path.back() && !subcommand_names(*cmd).empty())
    return "dagent: unknown command '" + command + " " + arg + "' (" + command + " takes: " + subcommand_names(*cmd) +
           ")" + see_help(command);
  return "dagent: unexpected argument '" + arg + "' for '" + command + "'" + see_help(command);
}

// A command made of subcommands given without one (`dagent`, `dagent runs`).
std::optional<std::string> check_complete(CLI::App& root, const std::vector<CLI::App*>& path) {
  auto* last = path.back();
  if (last == &root) return "dagent: no command given" + see_help("");
  if (subcommand_names(*last).empty()) return std::nullopt;
  const std::string command = name_of(*last);
  return "dagent: '" + command + "' needs a command: " + subcommand_names(*last) + see_help(command);
}

// A shell word for the generated script: the names here are ours, but quote them anyway.
std::string shell_word(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Walks the commands: their subcommands, their options, and what each option's value is.
void describe(CLI::App& cmd, const std::string& key, std::string& subs, std::string& opts, std::string& values) {
  std::string sub_words;
  for (auto* sub : cmd.get_subcommands([](CLI::App* a) { return !a->get_group().empty(); })) {
    sub_words += (sub_words.empty() ? "" : " ") + sub->get_name();
    describe(*sub, key + " " + sub->get_name(), subs, opts, values);
  }
  if (!sub_words.empty()) subs += "    [" + shell_word(key) + "]=" + shell_word(sub_words) + "\n";
  std::string option_words;
  for (const auto* option : cmd.get_options([](const CLI::Option* op) { return !op->get_positional() && !op->get_group().empty(); })) {
    std::vector<std::string> names;
    for (const auto& s : option->get_snames()) names.push_back("-" + s);
    for (const auto& l : option->get_lnames()) names.push_back("--" + l);
    for (const auto& name : names) {
      option_words += (option_words.empty() ? "" : " ") + name;
      if (option->get_type_size_max() == 0) continue;  // a flag
      // FILE and DIR complete paths, a|b completes its words, anything else (N, KEY=VALUE) nothing.
      std::string type = option->get_type_name();
      if (type.find('|') != std::string::npos) std::replace(type.begin(), type.end(), '|', ' ');
      else if (type != "FILE" && type != "DIR") type = "-";
      values += "    [" + shell_word(key + " " + name) + "]=" + shell_word(type) + "\n";
    }
  }
  opts += "    [" + shell_word(key) + "]=" + shell_word(option_words) + "\n";
}

std::string bash_completion(CLI::App& app) {
  std::string subs, opts, values;
  describe(app, "dagent", subs, opts, values);
  return "# bash completion for dagent, generated by `dagent completion bash` from its own command line.\n"
         "# Install: copy to /usr/share/bash-completion/completions/dagent, or: source <(dagent completion bash)\n"
         "_dagent() {\n"
         "  local -A subs=(\n" + subs + "  )\n"
         "  local -A opts=(\n" + opts + "  )\n"
         "  local -A values=(\n" + values + "  )\n"
         "  local cur=${COMP_WORDS[COMP_CWORD]} cmd=dagent word i ended=0\n"
         "  COMPREPLY=()\n"
         "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
         "    word=${COMP_WORDS[i]}\n"
         "    if ((ended)); then continue; fi\n"
         "    if [[ $word == -- ]]; then ended=1; continue; fi\n"
         "    if [[ $word == -* ]]; then\n"
         "      [[ $word != *=* && -n ${values[\"$cmd $word\"]+set} ]] && ((i++))  # its value\n"
         "      continue\n"
         "    fi\n"
         "    [[ -n ${subs[$cmd]+set} && \" ${subs[$cmd]} \" == *\" $word \"* ]] && cmd=\"$cmd $word\"\n"
         "  done\n"
         "  if ((!ended && COMP_CWORD > 1)); then\n"
         "    local prev=${COMP_WORDS[COMP_CWORD-1]}\n"
         "    if [[ $prev == -* && -n ${values[\"$cmd $prev\"]+set} ]]; then\n"
         "      case ${values[\"$cmd $prev\"]} in\n"
         "        FILE) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n"
         "        DIR) COMPREPLY=($(compgen -d -- \"$cur\")) ;;\n"
         "        -) ;;\n"
         "        *) COMPREPLY=($(compgen -W \"${values[\"$cmd $prev\"]}\" -- \"$cur\")) ;;\n"
         "      esac\n"
         "      return 0\n"
         "    fi\n"
         "  fi\n"
         "  if ((!ended)) && [[ $cur == -* ]]; then\n"
         "    COMPREPLY=($(compgen -W \"${opts[$cmd]}\" -- \"$cur\"))\n"
         "  elif ((!ended)) && [[ -n ${subs[$cmd]+set} ]]; then\n"
         "    COMPREPLY=($(compgen -W \"${subs[$cmd]}\" -- \"$cur\"))\n"
         "  else\n"
         "    COMPREPLY=($(compgen -f -- \"$cur\"))\n"
         "  fi\n"
         "  return 0\n"
         "}\n"
         "complete -o filenames -F _dagent dagent\n";
}

// A command's --help text, its usage line naming the whole command (`dagent runs list`). Not
// App::help(), which shows the help of the subcommand parsed (`help` itself for `dagent help`).
std::string help_text(const CLI::App& cmd) {
  const std::string name = name_of(cmd);
  return cmd.get_formatter()->make_help(&cmd, name.empty() ? "dagent" : "dagent " + name, CLI::AppFormatMode::Normal);
}

// The help of `dagent help WORDS...`: the command they name.
std::variant<Options, Printout, UsageError> help_of(CLI::App& app, const std::vector<std::string>& topic) {
  CLI::App* cmd = &app;
  std::string name;
  for (const auto& word : topic) {
    name += (name.empty() ? "" : " ") + word;
    auto found = cmd->get_subcommands([&word](CLI::App* a) { return a->get_name() == word && !a->get_group().empty(); });
    if (found.empty()) return UsageError{"dagent: unknown command '" + name + "'" + see_help("")};
    cmd = found.front();
  }
  return Printout{help_text(*cmd)};
}

}  // namespace

std::variant<Options, Printout, UsageError> parse_options(int argc, const char* const* argv) {
  Parser parser;
  auto& app = parser.app;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return Printout{help_text(*chosen(app).back())};
  } catch (const CLI::CallForVersion&) {
    return Printout{std::string("dagent ") + DAGENT_VERSION + "\n"};
  } catch (const CLI::ParseError& e) {
    // An option of another command explains a missing value or argument better than CLI11 can.
    const auto path = chosen(app);
    if (auto leftover = check_leftovers(app, path)) return UsageError{*leftover};
    const std::string command = name_of(*path.back());
    return UsageError{"dagent" + (command.empty() ? "" : " " + command) + ": " + e.what() + see_help(command)};
  }
  const auto path = chosen(app);
  if (auto leftover = check_leftovers(app, path)) return UsageError{*leftover};
  if (auto incomplete = check_complete(app, path)) return UsageError{*incomplete};
  const std::string top = path[1]->get_name();
  if (top == "help") return help_of(app, parser.help_topic);
  if (top == "completion") return Printout{bash_completion(app)};
  if (top == "version") return Printout{std::string("dagent ") + DAGENT_VERSION + "\n"};

  Options o = std::move(parser.o);
  o.command = top;
  for (std::size_t i = 2; i < path.size(); ++i) o.args.push_back(path[i]->get_name());  // runs show ID: {show, ID}
  o.args.insert(o.args.end(), parser.words.begin(), parser.words.end());
  if (!parser.since.empty()) o.since_ms = history::parse_since(parser.since, now_ms());
  return o;
}

std::variant<std::filesystem::path, std::string> config_path(const Options& options) {
  if (options.config) {
    std::error_code ec;
    // A folder or an unreadable file is passed on: the loader says what is wrong with it.
    if (!std::filesystem::exists(*options.config, ec))
      return "config file '" + options.config->string() + "' does not exist";
    return *options.config;
  }
  std::error_code ec;
  if (std::filesystem::is_regular_file("config.yaml", ec)) return std::filesystem::path("config.yaml");
  return std::filesystem::path();
}

}  // namespace dagent::cli
