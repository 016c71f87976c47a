# Sourced by bench scripts. start_server NAME ARGS...: starts $build/openai_test_server on a free
# loopback port with --threads ${SERVER_THREADS:-2} and ARGS, logging to $out/NAME.server; adds it
# to the caller's pids array and sets PORT and PID. Exits when it does not start. A caller may set
# the array server_launch to a command that runs it (e.g. taskset -c 0).
start_server() {
  local name="$1"
  shift
  ${server_launch[@]+"${server_launch[@]}"} "$build/openai_test_server" --port 0 --threads "${SERVER_THREADS:-2}" "$@" \
    >"$out/$name.server" 2>&1 &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 100); do
    PORT="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out/$name.server" 2>/dev/null || true)"
    [[ -n "$PORT" ]] && return 0
    sleep 0.05
  done
  echo "server $name did not start: $(cat "$out/$name.server")" >&2
  exit 1
}
