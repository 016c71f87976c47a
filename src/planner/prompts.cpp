#include "planner/prompts.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "text/utf8.hpp"

namespace dagent::planner {

std::string_view to_string(PromptKind kind) noexcept {
  switch (kind) {
    case PromptKind::intent: return "intent";
    case PromptKind::plan: return "plan";
    case PromptKind::repair: return "repair";
    case PromptKind::replan: return "replan";
    case PromptKind::answer: return "answer";
  }
  return "?";
}

std::string render_template(std::string_view text, PromptVars vars) {
  std::string out;
  out.reserve(text.size() + 256);
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto open = text.find("{{", pos);
    if (open == std::string_view::npos) break;
    const auto close = text.find("}}", open + 2);
    if (close == std::string_view::npos) break;
    out.append(text, pos, open - pos);
    const auto name = text.substr(open + 2, close - open - 2);
    const std::pair<std::string_view, std::string_view>* hit = nullptr;
    for (const auto& var : vars)
      if (var.first == name) hit = &var;
    if (hit) {
      out += hit->second;
    } else {
      out.append(text, open, close + 2 - open);
    }
    pos = close + 2;
  }
  out.append(text, pos);
  return out;
}

std::string quote_within(std::string_view text, int budget_tokens) {
  constexpr std::size_t k_bytes_per_token = 4;
  const std::size_t cap = static_cast<std::size_t>(std::max(budget_tokens, 0)) * k_bytes_per_token;
  if (text.size() <= cap) return std::string(text);
  const std::size_t cut = text::utf8_cut(text, cap);
  std::string out(text.substr(0, cut));
  out += "…[cut: " + std::to_string(text.size() - cut) + " more bytes]";
  return out;
}

Prompt split_prompt(std::string text) {
  constexpr std::string_view k_marker = "@@user";
  std::size_t at = std::string::npos;
  for (std::size_t pos = text.find(k_marker); pos != std::string::npos; pos = text.find(k_marker, pos + 1)) {
    const bool line_start = pos == 0 || text[pos - 1] == '\n';
    const auto end = pos + k_marker.size();
    const bool line_end = end == text.size() || text[end] == '\n' || text[end] == '\r';
    if (line_start && line_end) {
      at = pos;
      break;
    }
  }
  Prompt p;
  if (at == std::string::npos) {
    p.user = std::move(text);
    return p;
  }
  auto user_start = text.find('\n', at);
  p.user = user_start == std::string::npos ? std::string() : text.substr(user_start + 1);
  p.system = text.substr(0, at);
  while (!p.system.empty() && (p.system.back() == '\n' || p.system.back() == '\r')) p.system.pop_back();
  while (!p.user.empty() && (p.user.back() == '\n' || p.user.back() == '\r')) p.user.pop_back();
  return p;
}

PromptLibrary::PromptLibrary(config::PromptFiles files, std::filesystem::path base_dir, bool cache)
    : files_(std::move(files)), base_dir_(std::move(base_dir)), cache_(cache) {}

const std::string& PromptLibrary::file_of(PromptKind kind) const {
  switch (kind) {
    case PromptKind::intent: return files_.intent;
    case PromptKind::plan: return files_.plan;
    case PromptKind::repair: return files_.repair;
    case PromptKind::replan: return files_.replan;
    case PromptKind::answer: return files_.answer;
  }
  return files_.plan;
}

boost::system::result<std::string, std::string> PromptLibrary::text(PromptKind kind) {
  const auto& file = file_of(kind);
  if (file.empty()) return {boost::system::in_place_value, std::string(builtin_prompt(kind))};
  if (cache_)
    if (auto it = loaded_.find(kind); it != loaded_.end()) return {boost::system::in_place_value, it->second};
  const auto path = (base_dir_ / file).lexically_normal();
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return {boost::system::in_place_error,
            "planner.prompts." + std::string(to_string(kind)) + ": cannot read template " + path.string()};
  std::ostringstream body;
  body << in.rdbuf();
  ++file_reads_;
  std::string loaded = std::move(body).str();
  if (cache_) loaded_[kind] = loaded;
  return {boost::system::in_place_value, std::move(loaded)};
}

boost::system::result<Prompt, std::string> PromptLibrary::render(PromptKind kind, PromptVars vars) {
  auto tmpl = text(kind);
  if (!tmpl) return {boost::system::in_place_error, tmpl.error()};
  // Split before the values go in: a value holding a line "@@user" (a tool's output, a memory)
  // must not move the boundary between the system and the user part.
  Prompt parts = split_prompt(std::move(*tmpl));
  parts.system = render_template(parts.system, vars);
  parts.user = render_template(parts.user, vars);
  return parts;
}

}  // namespace dagent::planner
