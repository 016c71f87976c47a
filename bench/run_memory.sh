#!/usr/bin/env bash
# Memory benchmark (bench/README.md, "Memory").
#   A. ingest throughput (chunks/s) of `dagent ingest` against the scripted test server on
#      loopback, batch_embeddings on (batch_size 100) and off, LATENCY_MS per embedding request;
#   B. search latency p50/p99 of MemoryIndex against raw FAISS (bench_memory), 10 k and 100 k
#      vectors, flat and hnsw, 384 and 1 536 dimensions.
# Environment: FILES (200), ROUNDS (3), LATENCY_MS (20), SIZES ("10000 100000"), SKIP_SEARCH.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-$root/build}"
files="${FILES:-200}"; rounds="${ROUNDS:-3}"; latency="${LATENCY_MS:-20}"
work="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
[[ -x "$build/dagent" && -x "$build/openai_test_server" && -x "$build/bench_memory" ]] ||
  { echo "build first: cmake --build $build" >&2; exit 1; }

# A corpus of FILES files of about 20 KB of prose each: about 11 chunks per file at 2 000 chars.
python3 - "$work" "$files" <<'PY'
import os, random, sys
work, files = sys.argv[1], int(sys.argv[2])
random.seed(1)
vocab = [w.strip() for w in "alpha river stone market ledger harbor winter signal copper garden archive \
  thunder quiet lantern border meadow engine violet summit crystal orchard canyon".split()]
os.makedirs(f"{work}/corpus", exist_ok=True)
for f in range(files):
    paras = []
    while sum(len(p) for p in paras) < 20000:
        sentences = [" ".join(random.choice(vocab) for _ in range(random.randint(6, 14))).capitalize() + "."
                     for _ in range(random.randint(3, 7))]
        paras.append(" ".join(sentences))
    open(f"{work}/corpus/doc{f:04}.md", "w").write("\n\n".join(paras))
open(f"{work}/script.json", "w").write('{"rules": [{"path": "/v1/embeddings", "latency_ms": %s}]}' % os.environ.get("LATENCY_MS", "20"))
PY

"$build/openai_test_server" --port 0 --script "$work/script.json" > "$work/port" 2>&1 & pids+=($!)
for _ in $(seq 50); do grep -q listening "$work/port" 2>/dev/null && break; sleep 0.1; done
port=$(sed 's/.*://' "$work/port" | head -1)

ingest() {  # $1 batching true|false → "chunks seconds requests"
  rm -rf "$work/.dagent"
  local before after
  before=$(curl -s "http://127.0.0.1:$port/_stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"]["by_path"].get("/v1/embeddings", 0))')
  (cd "$work" && OPENAI_BASE_URL="http://127.0.0.1:$port/v1" OPENAI_API_KEY=bench "$build/dagent" ingest corpus --json -q \
     --set performance.batch_embeddings.enabled="$1" --set performance.batch_embeddings.batch_size=100) > "$work/out.json"
  after=$(curl -s "http://127.0.0.1:$port/_stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"]["by_path"].get("/v1/embeddings", 0))')
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["chunks_added"], r["seconds"], int(sys.argv[3]) - int(sys.argv[2]))' "$work/out.json" "$before" "$after"
}

echo "## Ingest ($files files, ${latency} ms per embedding request, median of $rounds)"
echo
echo "| batching | chunks | requests | seconds | chunks/s |"
echo "|---|---|---|---|---|"
for mode in true false; do
  rows=""
  for _ in $(seq "$rounds"); do rows+="$(ingest "$mode")"$'\n'; done
  printf '%s' "$rows" | python3 -c '
import sys, statistics
rows = [l.split() for l in sys.stdin if l.strip()]
secs = statistics.median(float(r[1]) for r in rows)
chunks, reqs = int(rows[0][0]), int(rows[0][2])
print(f"| {sys.argv[1]} | {chunks} | {reqs} | {secs:.2f} | {chunks / secs:.0f} |")' "$mode"
done

if [[ -z "${SKIP_SEARCH:-}" ]]; then
  echo
  echo "## Search latency (single queries, k = 10; build s = raw / ours)"
  echo
  "$build/bench_memory" ${SIZES:-10000 100000}
fi
