#include "redis/redis_budget.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include <openssl/evp.h>

namespace dagent::redis {

namespace asio = boost::asio;

namespace {

// KEYS: 1 the bucket (hash r, t, ts, hold), 2 the waiting processes (zset: member -> first
// refused, µs), 3 when each waiting process last asked (hash).
// ARGV: 1 request capacity, 2 token capacity, 3 period µs, 4 tokens wanted, 5 take (0/1),
// 6 token debt, 7 request returns, 8 hold µs, 9 request upper (-1: none), 10 token upper,
// 11 member, 12 µs after which a waiting process that stopped asking loses its place, 13 the
// server's lag in µs.
// Returns {granted, wait µs}.
// Why TIME: the processes' clocks disagree; the server's is the one clock they all see.
// Why the levels are stored as of `ts`, possibly in the future: after a 429 the bucket restarts
// empty when the hold ends, as the local limiter does.
// Why the lag: the provider's bucket starts refilling when a request reaches it, a little after
// we granted it, so at the tightest moment it holds a little less than ours; a grant waits until
// ours holds that little more (a request's arrival `lag` later). It delays the grants at the
// limit by `lag` once, and costs no throughput.
const std::string k_script = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rcap, tcap, period = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local want, take = tonumber(ARGV[4]), tonumber(ARGV[5])
local h = redis.call('HMGET', KEYS[1], 'r', 't', 'ts', 'hold')
local r = tonumber(h[1]) or rcap
local tk = tonumber(h[2]) or tcap
local ts = tonumber(h[3]) or now
local hold = tonumber(h[4]) or 0
if now > ts then
  r = r + (now - ts) * rcap / period
  tk = tk + (now - ts) * tcap / period
  ts = now
end
r = math.min(rcap, r + tonumber(ARGV[7]))
tk = math.min(tcap, tk - tonumber(ARGV[6]))
local hold_us = tonumber(ARGV[8])
if hold_us > 0 and now + hold_us > hold then
  hold = now + hold_us
  r = 0
  tk = 0
  ts = hold
end
local ru, tu = tonumber(ARGV[9]), tonumber(ARGV[10])
if ru >= 0 and r > ru then r = ru end
if tu >= 0 and tk > tu then tk = tu end
local granted, wait = 0, 0
if take == 1 then
  local member, stale = ARGV[11], tonumber(ARGV[12])
  local lag = tonumber(ARGV[13])
  local rneed = math.min(1 + lag * rcap / period, math.max(rcap, 1))
  local tneed = math.min(math.min(want, tcap) + lag * tcap / period, tcap)
  local wr, wt = 0, 0
  if r < rneed then wr = (rneed - r) * period / rcap end
  if tk < tneed then wt = (tneed - tk) * period / tcap end
  wait = math.max(wr, wt) + math.max(ts - now, 0)
  for i = 1, 16 do
    local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
    if not head or head == member then break end
    local seen = tonumber(redis.call('HGET', KEYS[3], head))
    if seen and seen >= now - stale then break end
    redis.call('ZREM', KEYS[2], head)
    redis.call('HDEL', KEYS[3], head)
  end
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if wait <= 0 and (not head or head == member) then
    granted = 1
    r = r - 1
    tk = tk - want
    redis.call('ZREM', KEYS[2], member)
    redis.call('HDEL', KEYS[3], member)
  else
    redis.call('ZADD', KEYS[2], 'NX', now, member)
    redis.call('HSET', KEYS[3], member, now)
    if wait <= 0 then wait = period / rcap end
  end
end
redis.call('HSET', KEYS[1], 'r', string.format('%.17g', r), 't', string.format('%.17g', tk),
           'ts', string.format('%d', ts), 'hold', string.format('%d', hold))
local ttl = math.ceil((math.max(ts, hold) - now + 2 * period) / 1000)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return {granted, math.ceil(wait)}
)lua";

std::string sha1_hex(const std::string& text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha1(), nullptr);
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(k_hex[digest[i] >> 4]);
    out.push_back(k_hex[digest[i] & 0xf]);
  }
  return out;
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::int64_t micros(std::chrono::nanoseconds d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

}  // namespace

const std::string& RedisBudget::script() { return k_script; }

std::string RedisBudget::process_member() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  std::random_device rd;
  return std::string(host) + ":" + std::to_string(::getpid()) + ":" + std::to_string(rd());
}

RedisBudget::RedisBudget(RedisClient client, std::string name, std::string member, std::chrono::microseconds lag)
    : client_(std::move(client)),
      bucket_key_("dagent:ratelimit:{" + name + "}:bucket"),
      waiters_key_("dagent:ratelimit:{" + name + "}:waiters"),
      seen_key_("dagent:ratelimit:{" + name + "}:seen"),
      member_(std::move(member)),
      lag_(lag) {}

asio::awaitable<boost::system::result<net::SharedAnswer, std::string>> RedisBudget::ask(net::SharedAsk ask) {
  static const std::string sha = sha1_hex(k_script);
  const std::int64_t period_us = std::max<std::int64_t>(micros(ask.period), 1);
  // A waiting process asks again at least once per refill of what it wants: twice the period
  // (and a second) without a word, and it has gone.
  const std::int64_t stale_us = 2 * period_us + 1000000;
  Command cmd{"EVALSHA", sha, "3", bucket_key_, waiters_key_, seen_key_,
              number(std::max(ask.request_capacity, 1.0)), number(std::max(ask.token_capacity, 1.0)),
              std::to_string(period_us), std::to_string(ask.tokens), ask.take ? "1" : "0",
              std::to_string(ask.token_debt), std::to_string(ask.request_returns),
              std::to_string(ask.hold.count() * 1000), ask.request_upper ? number(*ask.request_upper) : "-1",
              ask.token_upper ? number(*ask.token_upper) : "-1", member_, std::to_string(stale_us),
              std::to_string(lag_.count())};
  auto reply = co_await client_.command(cmd);
  // Why: a restarted or flushed server has forgotten the script; EVAL sends it (and caches it).
  if (reply && reply->is_error() && reply->str.starts_with("NOSCRIPT")) {
    cmd[0] = "EVAL";
    cmd[1] = k_script;
    reply = co_await client_.command(std::move(cmd));
  }
  if (!reply) co_return reply.error().message;
  if (reply->is_error()) {
    // The server's text is not echoed whole: it is bounded, and holds no secret of ours.
    co_return "the shared rate budget's script failed on " + client_.endpoint().key() + ": " + reply->str.substr(0, 200);
  }
  if (reply->type != Reply::Type::array || reply->elements.size() != 2 ||
      reply->elements[0].type != Reply::Type::integer || reply->elements[1].type != Reply::Type::integer)
    co_return "the shared rate budget's script on " + client_.endpoint().key() + " answered something unexpected";
  net::SharedAnswer answer;
  answer.granted = reply->elements[0].integer == 1;
  answer.wait = std::chrono::microseconds(std::max<std::int64_t>(reply->elements[1].integer, 0));
  co_return answer;
}

}  // namespace dagent::redis
