-- wrk script for bench/run_net.sh: POSTs the same chat request body as bench_http (the body
-- comes from the environment, as printed by `bench_http --print-body`) with the same headers
-- an OpenAI client sends, and prints one machine-readable summary line.
-- Usage: BODY="$(bench_http --print-body)" wrk -t1 -c C -d 10s -s bench/wrk_chat.lua http://127.0.0.1:PORT/v1/chat/completions

wrk.method = "POST"
wrk.body = os.getenv("BODY") or '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"

-- No response() callback: wrk would then buffer every reply for Lua, which slows it down;
-- summary.errors.status already counts the replies that were not 2xx/3xx.

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "wrkjson {\"requests\":%d,\"seconds\":%.3f,\"rps\":%.1f,\"p50_us\":%d,\"p99_us\":%d,\"non2xx\":%d,\"socket_errors\":%d}\n",
    summary.requests, seconds, summary.requests / seconds, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
