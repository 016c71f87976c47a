#include "runtime/memory_recall.hpp"

#include "memory/memory.hpp"
#include "text/redact.hpp"
#include "text/utf8.hpp"

namespace dagent::runtime {

namespace {

constexpr std::size_t k_recalled_bytes = 800;

}  // namespace

boost::asio::awaitable<std::vector<std::string>> MemoryRecall::recall(std::string goal, int k) {
  std::vector<std::string> out;
  auto hits = co_await memory_.search(std::move(goal), k, meter_);
  if (!hits) co_return out;
  const auto secrets = text::secrets();  // an ingested file may hold the API key: masked before the cut
  for (const auto& hit : *hits)
    out.push_back((hit.source.empty() ? "" : "[" + hit.source + "] ") + text::clipped(secrets->masked(hit.text), k_recalled_bytes));
  co_return out;
}

}  // namespace dagent::runtime
