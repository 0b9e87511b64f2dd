#!/usr/bin/env bash
# Runs the load tool's scenarios against socket-bridge and the Node reference server
# (benches/peer), each server pinned to core 0 and the tool to core 1, RUNS times each, with a
# fresh server (and for socket-bridge a fresh temp data dir) per run; then prints a markdown table
# of medians and ranges. docs/benchmarks.md ("Delivery at the limit") explains the figures.
#
#   benches/load/run.sh                      # every scenario, both servers, 3 runs each
#   SCENARIOS="fan-out idle" SERVERS=socket-bridge RUNS=1 benches/load/run.sh
#   PROFILE=1 benches/load/run.sh            # also `perf record -g` socket-bridge under (a), (b)
#   RUNS=0 SYSCALLS=0 PROFILE=1 benches/load/run.sh   # only the profiles
#
# Settings (environment): SCENARIOS (fan-out fan-out-1 idle paced storm), SERVERS (socket-bridge
# node), RUNS (3), SYSCALLS (1: one more fan-out run per server under `perf stat` counting system
# calls), PROFILE (0), OUT (a new directory under /tmp: every run's output, the summary, the
# profiles), SERVER_CPU (0) and TOOL_CPU (1), the cores; TOOL_ARGS: extra arguments for every
# tool run; HUB_BIN: another socket-bridge binary to measure (e.g. an experiment), reported as
# HUB_LABEL (default socket-bridge). Needs cargo, node >= 20 with npm, taskset; perf for SYSCALLS
# and PROFILE.
set -euo pipefail
cd "$(dirname "$0")/../.."

SCENARIOS=${SCENARIOS:-"fan-out fan-out-1 idle paced storm"}
SERVERS=${SERVERS:-"socket-bridge node"}
RUNS=${RUNS:-3}
SYSCALLS=${SYSCALLS:-1}
PROFILE=${PROFILE:-0}
SERVER_CPU=${SERVER_CPU:-0}
TOOL_CPU=${TOOL_CPU:-1}
TOOL_ARGS=${TOOL_ARGS:-}
OUT=${OUT:-$(mktemp -d /tmp/load-runs.XXXXXX)}
mkdir -p "$OUT"
export JWT_SECRET="load-secret-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# 5,100 clients need as many descriptors in the tool and in the server.
ulimit -n "$(ulimit -Hn)"

echo "building (release)..." >&2
cargo build --release --locked --bin socket-bridge >&2
tool=$(cargo bench --locked --bench load --no-run --message-format=json 2>/dev/null |
  grep -o '"executable":"[^"]*load-[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$tool" ] || { echo "error: could not find the load tool's executable" >&2; exit 1; }
target_dir=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
hub_bin=${HUB_BIN:-$target_dir/release/socket-bridge}
HUB_LABEL=${HUB_LABEL:-socket-bridge}
(cd benches/peer && npm ci --no-audit --no-fund --silent)

server_pid=""
server_dir=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
  if [ -n "$server_dir" ]; then
    rm -rf "$server_dir"
    server_dir=""
  fi
}
trap stop_server EXIT

# start_server NAME: starts it pinned to SERVER_CPU; sets server_pid and url.
start_server() {
  server_dir=$(mktemp -d "$OUT/server.XXXXXX")
  local log="$server_dir/log"
  case $1 in
    socket-bridge)
      LOG_FORMAT=json taskset -c "$SERVER_CPU" "$hub_bin" serve \
        --listen 127.0.0.1:0 --data-dir "$server_dir/data" >"$log" 2>&1 &
      ;;
    node)
      (cd benches/peer && NODE_ENV=production PORT=0 exec taskset -c "$SERVER_CPU" node server.mjs) >"$log" 2>&1 &
      ;;
  esac
  server_pid=$!
  for _ in $(seq 100); do
    url=""
    if [ "$1" = socket-bridge ]; then
      addr=$(grep -o '"addr":"[^"]*"' "$log" | head -1 | cut -d'"' -f4 || true)
      [ -n "$addr" ] && url="http://$addr"
    else
      port=$(awk '/^listening/ {print $2; exit}' "$log")
      [ -n "$port" ] && url="http://127.0.0.1:$port"
    fi
    [ -n "$url" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "error: $1 did not start; its output:" >&2
  cat "$log" >&2
  exit 1
}

# tool ARGS...: the tool pinned to TOOL_CPU against the running server.
tool() {
  # shellcheck disable=SC2086
  local name=$server
  [ "$server" = socket-bridge ] && name=$HUB_LABEL
  taskset -c "$TOOL_CPU" "$tool" --url "$url" --server-pid "$server_pid" --server-name "$name" \
    $TOOL_ARGS "$@"
}

results="$OUT/results.txt"
touch "$results"
for scenario in $SCENARIOS; do
  for server in $SERVERS; do
    for run in $(seq "$RUNS"); do
      start_server "$server"
      echo "== $scenario, $server, run $run ($(uptime | sed 's/.*load/load/'))" >&2
      # A failed run (a broken exactly-once check, a wait that ran out) is kept in the results.
      if ! tool "$scenario" 2>&1 | tee -a "$results" >&2; then
        echo "FAILED $scenario against $server, run $run" | tee -a "$results" >&2
      fi
      stop_server
    done
  done
done

if [ "$SYSCALLS" = 1 ] && [[ " $SCENARIOS " == *" fan-out "* ]]; then
  for server in $SERVERS; do
    start_server "$server"
    echo "== fan-out with perf stat, $server" >&2
    tool fan-out --count-syscalls 2>&1 | tee -a "$results" >&2 || true
    stop_server
  done
fi

if [ "$PROFILE" = 1 ]; then
  for scenario in fan-out fan-out-1; do
    start_server socket-bridge
    server=socket-bridge
    echo "== $scenario under perf record, socket-bridge" >&2
    perf record -F 999 --call-graph dwarf,16384 -o "$OUT/perf-$scenario.data" -p "$server_pid" \
      2>/dev/null &
    perf_pid=$!
    tool "$scenario" >>"$OUT/profiled-runs.txt" 2>&1 || true
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    # Self time per function, then time including callees.
    perf report -i "$OUT/perf-$scenario.data" --no-children --percent-limit 0.5 --stdio \
      --sort symbol -g none >"$OUT/profile-$scenario.txt" 2>/dev/null || true
    perf report -i "$OUT/perf-$scenario.data" --children --percent-limit 2 --stdio \
      --sort symbol -g none >"$OUT/profile-$scenario-children.txt" 2>/dev/null || true
    stop_server
  done
fi

{
  echo "# Load runs: $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD), $(nproc) cores"
  echo "server on core $SERVER_CPU, tool on core $TOOL_CPU; $RUNS runs each"
  "$tool" summarize "$results"
} | tee "$OUT/summary.md"
echo "outputs in $OUT" >&2
