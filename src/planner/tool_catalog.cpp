#include "planner/tool_catalog.hpp"

#include <algorithm>

#include <boost/json/serialize.hpp>

#include "dagent/tool.hpp"
#include "tools/registry.hpp"

namespace dagent::planner {
namespace {

// FNV-1a, 64 bits: the cache key only has to change when a tool does.
void mix(std::uint64_t& h, std::string_view bytes) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= 0xff;  // field separator
  h *= 0x100000001b3ULL;
}

}  // namespace

const std::vector<CatalogEntry>& ToolCatalog::entries(const tools::Registry& registry) {
  const auto tools = registry.tools();
  std::vector<std::string> schemas;
  schemas.reserve(tools.size());
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const Tool* tool : tools) {
    schemas.push_back(boost::json::serialize(tool->parameters_schema()));
    mix(h, tool->name());
    mix(h, tool->description());
    mix(h, schemas.back());
  }
  if (cache_ && valid_ && h == hash_) return entries_;
  ++builds_;
  entries_.clear();
  entries_.reserve(tools.size());
  for (std::size_t i = 0; i < tools.size(); ++i) {
    CatalogEntry e;
    e.name = std::string(tools[i]->name());
    e.summary = e.name + ": " + std::string(tools[i]->description());
    e.full = e.summary + "\n  parameters: " + schemas[i];
    entries_.push_back(std::move(e));
  }
  hash_ = h;
  valid_ = true;
  return entries_;
}

std::string ToolCatalog::summaries(const std::vector<CatalogEntry>& entries) {
  std::string out;
  for (const auto& e : entries) {
    out += "- ";
    out += e.summary;
    out += '\n';
  }
  if (!out.empty()) out.pop_back();
  return out;
}

std::string ToolCatalog::full(const std::vector<CatalogEntry>& entries, std::span<const std::string> only) {
  std::string out;
  for (const auto& e : entries) {
    if (!only.empty() && std::find(only.begin(), only.end(), e.name) == only.end()) continue;
    if (!out.empty()) out += "\n\n";
    out += "- ";
    out += e.full;
  }
  return out;
}

}  // namespace dagent::planner
