#include "text/redact.hpp"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <utility>

#include <boost/json/object.hpp>
#include <boost/json/string.hpp>

namespace dagent::text {

namespace json = boost::json;

Redactor::Redactor(std::vector<std::string> secrets) {
  for (auto& s : secrets) {
    if (s.size() < k_min_secret_size) continue;
    if (std::find(secrets_.begin(), secrets_.end(), s) != secrets_.end()) continue;
    longest_ = std::max(longest_, s.size());
    secrets_.push_back(std::move(s));
  }
  // Longer first: a secret that contains another is masked whole.
  std::sort(secrets_.begin(), secrets_.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
}

bool Redactor::mask(std::string& text) const {
  bool changed = false;
  for (const auto& secret : secrets_) {
    for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at + k_redacted.size())) {
      text.replace(at, secret.size(), k_redacted);
      changed = true;
    }
  }
  return changed;
}

std::string Redactor::masked(std::string_view text) const {
  std::string out(text);
  mask(out);
  return out;
}

namespace {

bool contains_secret(std::string_view text, const std::vector<std::string>& secrets) {
  for (const auto& s : secrets)
    if (text.find(s) != std::string_view::npos) return true;
  return false;
}

}  // namespace

bool Redactor::mask(json::value& value) const {
  if (secrets_.empty()) return false;
  bool changed = false;
  std::vector<json::value*> pending{&value};
  std::string buffer;
  while (!pending.empty()) {
    json::value* v = pending.back();
    pending.pop_back();
    if (auto* s = v->if_string()) {
      if (!contains_secret(*s, secrets_)) continue;
      buffer.assign(s->data(), s->size());
      mask(buffer);
      *s = buffer;
      changed = true;
    } else if (auto* a = v->if_array()) {
      for (auto& item : *a)
        if (item.is_structured() || item.is_string()) pending.push_back(&item);
    } else if (auto* o = v->if_object()) {
      bool keys_clean = true;
      for (const auto& entry : *o) keys_clean = keys_clean && !contains_secret(entry.key(), secrets_);
      if (!keys_clean) {  // keys are immutable: rebuild (rare)
        json::object out(o->storage());
        out.reserve(o->size());
        for (auto& entry : *o) out.emplace(masked(entry.key()), std::move(entry.value()));
        *o = std::move(out);
        changed = true;
      }
      for (auto& entry : *o)
        if (entry.value().is_structured() || entry.value().is_string()) pending.push_back(&entry.value());
    }
  }
  return changed;
}

std::size_t Redactor::pending_prefix(std::string_view text) const noexcept {
  std::size_t best = 0;
  for (const auto& secret : secrets_) {
    const std::size_t most = std::min(text.size(), secret.size() - 1);
    for (std::size_t n = most; n > best; --n) {
      if (text.substr(text.size() - n) == std::string_view(secret).substr(0, n)) {
        best = n;
        break;
      }
    }
  }
  return best;
}

std::string_view StreamRedactor::feed(std::string_view piece) {
  if (!redactor_ || redactor_->empty()) return piece;
  pending_.append(piece);
  redactor_->mask(pending_);
  const std::size_t keep = redactor_->pending_prefix(pending_);
  out_.assign(pending_, 0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out_;
}

std::string_view StreamRedactor::finish() {
  out_ = std::move(pending_);
  pending_.clear();
  if (redactor_) redactor_->mask(out_);
  return out_;
}

namespace {

std::mutex g_secrets_mutex;
std::shared_ptr<const Redactor> g_secrets = std::make_shared<const Redactor>();

}  // namespace

void register_secret(std::string secret) {
  if (secret.size() < k_min_secret_size) return;
  std::lock_guard lock(g_secrets_mutex);
  auto all = g_secrets->secrets();
  if (std::find(all.begin(), all.end(), secret) != all.end()) return;
  all.push_back(std::move(secret));
  g_secrets = std::make_shared<const Redactor>(std::move(all));
}

std::shared_ptr<const Redactor> secrets() {
  std::lock_guard lock(g_secrets_mutex);
  return g_secrets;
}

}  // namespace dagent::text
