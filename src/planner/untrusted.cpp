#include "planner/untrusted.hpp"

#include "net/sha256.hpp"

namespace dagent::planner {
namespace {

constexpr std::string_view k_marker = "untrusted-data";
constexpr std::size_t k_id_digits = 16;

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Whether `text` holds k_marker at `at`, ASCII letters in any case.
bool marker_at(std::string_view text, std::size_t at) {
  if (text.size() - at < k_marker.size()) return false;
  for (std::size_t i = 0; i < k_marker.size(); ++i)
    if (lower(text[at + i]) != k_marker[i]) return false;
  return true;
}

// `data` with the hyphen of every k_marker occurrence made an underscore.
std::string defused(std::string_view data) {
  std::string out(data);
  constexpr std::size_t hyphen = k_marker.find('-');
  for (std::size_t at = 0; at + k_marker.size() <= out.size(); ++at) {
    if (lower(out[at]) != 'u' || !marker_at(out, at)) continue;
    out[at + hyphen] = '_';
    at += k_marker.size() - 1;
  }
  return out;
}

}  // namespace

std::string untrusted_block(std::string_view source, std::string_view data) {
  const std::string body = defused(data);
  const std::string id = net::sha256_hex(body).substr(0, k_id_digits);
  std::string out;
  out.reserve(body.size() + source.size() + 2 * k_id_digits + 64);
  out += "<untrusted-data id=\"";
  out += id;
  out += "\" source=\"";
  out += source;
  out += "\">\n";
  out += body;
  if (!body.empty() && body.back() != '\n') out += '\n';
  out += "</untrusted-data id=\"";
  out += id;
  out += "\">";
  return out;
}

std::string with_untrusted_rule(std::string system) {
  if (system.find(k_untrusted_rule) != std::string::npos) return system;
  if (!system.empty()) system += "\n\n";
  system += k_untrusted_rule;
  return system;
}

}  // namespace dagent::planner
