// The values of the shared response cache (src/net/cached_reply), as read back from Redis where
// anyone with access may have written them: any bytes decode to a reply of the kind asked for or
// to an error, never a crash, a leak or an inflate past the bound; a reply that decodes encodes
// again, plain and compressed, to bytes that decode to the same reply.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "check.hpp"
#include "net/cached_reply.hpp"

namespace {

using namespace dagent::net;
using dagent::fuzz::check;

// The key the seeds were stored under; any other makes every input an error.
constexpr std::string_view k_key = "k";

bool same(const CachedReply& a, const CachedReply& b) {
  if (a.index() != b.index()) return false;
  if (const auto* x = std::get_if<ChatResponse>(&a)) {
    const auto& y = std::get<ChatResponse>(b);
    return x->id == y.id && x->model == y.model && x->content == y.content && x->finish_reason == y.finish_reason &&
           x->usage.prompt_tokens == y.usage.prompt_tokens && x->usage.completion_tokens == y.usage.completion_tokens;
  }
  const auto& x = std::get<EmbedResponse>(a);
  const auto& y = std::get<EmbedResponse>(b);
  return x.dimension == y.dimension && x.vectors == y.vectors && x.usage.prompt_tokens == y.usage.prompt_tokens &&
         x.usage.completion_tokens == y.usage.completion_tokens;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (const ReplyKind kind : {ReplyKind::chat, ReplyKind::embed}) {
    auto reply = decode_reply(bytes, k_key, kind);
    if (!reply) {
      check(!reply.error().empty(), "a refused value says why");
      continue;
    }
    check(kind_of(*reply) == kind, "a value decodes only to the kind asked for");
    check(!decode_reply(bytes, "another key", kind), "a value decodes only under its own key");
    // Why the size bound: a body near k_max_reply_body may re-encode longer (1 as 1E0) and past it.
    if (size > k_max_reply_body / 8) continue;
    for (const std::size_t threshold : {std::size_t{0}, std::numeric_limits<std::size_t>::max()}) {
      const std::string again = encode_reply(*reply, k_key, threshold);
      check(!again.empty(), "a decoded reply can be stored again");
      auto back = decode_reply(again, k_key, kind);
      check(back.has_value() && same(*back, *reply), "a decoded reply round-trips, plain and compressed");
    }
  }
  return 0;
}
