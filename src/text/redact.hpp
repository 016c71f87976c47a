#pragma once
// Masking of secrets (the API key) in text that came from outside: a server's error messages,
// replies and stream deltas, and every tool's output, before any of it reaches a result, a log,
// the trace, a recording or a prompt.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>

namespace dagent::text {

/// What a masked secret becomes.
inline constexpr std::string_view k_redacted = "[redacted API key]";

/// Secrets shorter than this are never masked: masking a 3-byte key would mangle ordinary text,
/// and such a key is no secret worth the name.
inline constexpr std::size_t k_min_secret_size = 8;

/// An immutable set of secrets and the masking with them.
class Redactor {
 public:
  Redactor() = default;
  /// Keeps each secret of at least k_min_secret_size bytes; the others are ignored.
  explicit Redactor(std::vector<std::string> secrets);

  bool empty() const noexcept { return secrets_.empty(); }
  const std::vector<std::string>& secrets() const noexcept { return secrets_; }
  /// The longest secret's size (0 when empty).
  std::size_t longest() const noexcept { return longest_; }

  /// Replaces every occurrence of a secret in `text` by k_redacted; true when it changed.
  /// Allocates nothing when no secret occurs.
  bool mask(std::string& text) const;
  /// `text` masked.
  std::string masked(std::string_view text) const;
  /// Masks every string and object key in `value` (iteratively: any depth is safe).
  bool mask(boost::json::value& value) const;

  /// The size of the longest suffix of `text` that is a proper prefix of a secret: the bytes a
  /// stream must hold back, since the next piece may complete a secret.
  std::size_t pending_prefix(std::string_view text) const noexcept;

 private:
  std::vector<std::string> secrets_;
  std::size_t longest_ = 0;
};

/// Masks a text that arrives in pieces (a streamed reply's deltas): a secret split across pieces
/// is masked too. Bytes that could start a secret are held back until the next piece or finish().
class StreamRedactor {
 public:
  explicit StreamRedactor(std::shared_ptr<const Redactor> redactor) : redactor_(std::move(redactor)) {}

  /// The masked text that can be released after `piece`; may be empty (held back). The view is
  /// valid until the next call.
  std::string_view feed(std::string_view piece);
  /// What is still held back, masked (never a whole secret by then).
  std::string_view finish();

 private:
  std::shared_ptr<const Redactor> redactor_;
  std::string pending_;
  std::string out_;
};

/// The process's secrets: every API key dagent has read (masking more text than needed is
/// harmless, missing one is not). Safe to call from any thread.
void register_secret(std::string secret);
/// A snapshot of the registered secrets (never null).
std::shared_ptr<const Redactor> secrets();

}  // namespace dagent::text
