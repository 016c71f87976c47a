#pragma once
// Prompt templates: built-in texts (prompts/*.txt, compiled in) or files named in config, loaded
// once when caching.prompt_templates is on, rendered with {{name}} placeholders.

#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <boost/system/result.hpp>

#include "config/config.hpp"

namespace dagent::planner {

enum class PromptKind { intent, plan, repair, replan, answer };

std::string_view to_string(PromptKind kind) noexcept;

/// The compiled-in template of `kind` (generated from prompts/KIND.txt).
std::string_view builtin_prompt(PromptKind kind) noexcept;

/// A rendered prompt: the system part (before a line "@@user") and the user part.
struct Prompt {
  std::string system;
  std::string user;
};

using PromptVars = std::span<const std::pair<std::string_view, std::string_view>>;

/// Replaces each {{name}} in `text` by its value in `vars`; unknown names are left as written.
std::string render_template(std::string_view text, PromptVars vars);

/// `text` as it may be quoted in a prompt: at most `budget_tokens` estimated tokens (4 bytes a
/// token), cut at a UTF-8 boundary and marked "…[cut: N more bytes]" when longer.
std::string quote_within(std::string_view text, int budget_tokens);

/// Splits a rendered template at its "@@user" line into system and user parts; without one,
/// everything is the user part.
Prompt split_prompt(std::string text);

/// The templates of one runtime.
class PromptLibrary {
 public:
  /// `files`: replacement template paths (empty: built-in), relative to `base_dir`.
  /// `cache`: read each file once (caching.prompt_templates); otherwise re-read on every use.
  PromptLibrary(config::PromptFiles files, std::filesystem::path base_dir, bool cache);

  /// The template text of `kind`; an error names the file that could not be read.
  boost::system::result<std::string, std::string> text(PromptKind kind);

  /// text(kind) split into system and user parts, each then rendered with `vars` (so no value
  /// can move the split).
  boost::system::result<Prompt, std::string> render(PromptKind kind, PromptVars vars);

  /// Template files read from disk so far (cache effectiveness, for tests).
  int file_reads() const noexcept { return file_reads_; }

 private:
  const std::string& file_of(PromptKind kind) const;

  config::PromptFiles files_;
  std::filesystem::path base_dir_;
  bool cache_;
  std::map<PromptKind, std::string> loaded_;
  int file_reads_ = 0;
};

}  // namespace dagent::planner
