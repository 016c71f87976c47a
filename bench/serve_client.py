#!/usr/bin/env python3
"""Load for `dagent serve` (bench/run_serve.sh): CLIENTS threads each submit a run, follow its
event stream to the end, and submit the next, until RUNS runs have ended. Prints runs/s (first
POST to last `end`) and the latency of step events: the client's receive time minus the event's
`at` (Unix ms when the service added it, i.e. when the step finished), so both clocks are this
machine's; resolution 1 ms."""
import argparse
import http.client
import json
import threading
import time


ends = []
spans = []  # per run: (whole, POST, POST->start event, start->end), seconds


def follow(port, token, body, latencies, outcomes, lock):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/v1/runs", body=body, headers=headers)
    reply = conn.getresponse()
    data = reply.read()
    t_posted = time.monotonic()
    t_start = None
    if reply.status != 201:
        with lock:
            outcomes["refused %d" % reply.status] = outcomes.get("refused %d" % reply.status, 0) + 1
        return
    run = json.loads(data)["id"]
    conn.request("GET", "/v1/runs/%s/events" % run, headers=headers)
    stream = conn.getresponse()
    kind, mine = None, []
    while True:
        line = stream.fp.readline()
        if not line:
            break
        now = time.time() * 1000.0
        line = line.decode("utf-8").rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
            if kind == "start" and t_start is None:
                t_start = time.monotonic()
        elif line.startswith("data: "):
            event = json.loads(line[6:])
            if kind == "step" and event.get("status") in ("succeeded", "failed"):
                mine.append(now - event["at"])
            if kind == "end":
                with lock:
                    outcomes[event["status"]] = outcomes.get(event["status"], 0) + 1
                    latencies.extend(mine)
                    ends.append(time.monotonic())
                    spans.append((ends[-1] - t0, t_posted - t0, (t_start or t_posted) - t_posted, ends[-1] - (t_start or t_posted)))
                break
    conn.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--task", required=True, help="the task JSON file to submit")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--token", default="")
    args = parser.parse_args()
    body = open(args.task, "rb").read()
    latencies, outcomes, lock = [], {}, threading.Lock()
    left = [args.runs]

    def worker():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            follow(args.port, args.token, body, latencies, outcomes, lock)

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")

    tenths = [round(ends[min(len(ends) - 1, len(ends) * k // 10)] - start, 2) for k in range(1, 11)] if ends else []
    slowest = [[round(x * 1000, 1) for x in span] for span in sorted(spans, reverse=True)[:3]]
    print(json.dumps({"runs": args.runs, "slowest_ms_whole_post_tostart_run": slowest, "clients": args.clients, "wall_s": round(wall, 3),
                      "runs_per_s": round(args.runs / wall, 1), "outcomes": outcomes,
                      "ended_by_tenth_s": tenths, "step_events": len(latencies), "event_latency_ms": {
                          "p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": latencies[-1] if latencies else None}}))


if __name__ == "__main__":
    main()
