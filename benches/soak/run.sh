#!/usr/bin/env bash
# Soak with faults (docs/reliability.md, "Soak with faults"): mixed traffic from
# benches/soak/driver.mjs (official socket.io-client sockets subscribing, dropping and resuming;
# producers over HTTP and NATS JetStream) against the hub, while this script, once per cycle,
#   - restarts nats-server (SIGTERM, down for a few seconds, started again on its store);
#   - SIGKILLs the hub (its supervisor loop here starts it again on the same data dir);
#   - fills the hub's data dir (a small tmpfs) to the last byte, holds it full until a write of the
#     hub's fails on it (the hub then exits non-zero; at most FULL_HOLD_S), then frees it.
# At the end the driver checks that every acknowledged event is stored exactly once and that every
# client was gap-free and duplicate-free per room; this script checks that the hub's RSS (sampled
# from /proc every 2 s) stayed under RSS_LIMIT_MB. Not a CI test.
#
#   benches/soak/run.sh                 # 20 minutes
#   benches/soak/run.sh --minutes 5     # shorter
#
# Settings (environment): CLIENTS (16), CYCLE_S (60: seconds between the starts of two fault
# cycles), FULL_HOLD_S (90: the longest the disk stays full; it is freed BITE_GRACE_S (5) after the
# hub's first non-zero exit in the window: sled writes into space its files already hold, so a short
# fixed hold often passes without a failed write), TMPFS_MB (128), RSS_LIMIT_MB (512),
# HUB_BIN (default: the debug build, built first), OUT (a new directory under /tmp: logs, RSS
# samples, the summary). Needs root for the tmpfs mount (without it, the data dir is a plain
# directory and the disk-full fault is skipped, which the summary says), nats-server, node >= 20
# with npm.
set -euo pipefail
cd "$(dirname "$0")/../.."

MINUTES=20
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) MINUTES=$2; shift 2 ;;
    *) echo "usage: $0 [--minutes N]" >&2; exit 2 ;;
  esac
done
CLIENTS=${CLIENTS:-16}
CYCLE_S=${CYCLE_S:-60}
FULL_HOLD_S=${FULL_HOLD_S:-90}
BITE_GRACE_S=${BITE_GRACE_S:-5}
TMPFS_MB=${TMPFS_MB:-128}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-512}
OUT=${OUT:-$(mktemp -d /tmp/soak-run.XXXXXX)}
mkdir -p "$OUT"
export JWT_SECRET="soak-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"

if [ -z "${HUB_BIN:-}" ]; then
  cargo build --locked --bin socket-bridge >&2
  target_dir=$(cargo metadata --format-version 1 --no-deps | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
  HUB_BIN=$target_dir/debug/socket-bridge
fi
(cd benches/soak && npm ci --no-audit --no-fund --silent)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HUB_PORT=$(free_port)
NATS_PORT=$(free_port)

data=$OUT/data
mkdir -p "$data" "$OUT/nats"
tmpfs=0
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size="${TMPFS_MB}m" soak-tmpfs "$data"; then
  tmpfs=1
else
  echo "warning: not root (or mount failed): the data dir is not a tmpfs and the disk-full fault is skipped" >&2
fi

nats_pid=""
sup_pid=""
rss_pid=""
driver_pid=""
cleanup() {
  touch "$OUT/stop"
  for p in $driver_pid $rss_pid $sup_pid; do kill "$p" 2>/dev/null || true; done
  if [ -s "$OUT/hub.pid" ]; then kill -KILL "$(cat "$OUT/hub.pid")" 2>/dev/null || true; fi
  [ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -f "$data/fill"
  [ "$tmpfs" = 1 ] && umount "$data" 2>/dev/null || true
}
trap cleanup EXIT

start_nats() {
  nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$OUT/nats" >>"$OUT/nats.log" 2>&1 &
  nats_pid=$!
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "error: nats-server did not start (see $OUT/nats.log)" >&2
  exit 1
}
start_nats

# The hub's supervisor: starts it again whenever it exits (SIGKILL below, or a crash), as systemd
# would; each exit is logged with its status.
(
  while [ ! -e "$OUT/stop" ]; do
    "$HUB_BIN" --listen "127.0.0.1:$HUB_PORT" --data-dir "$data/hub" --jwt-secret "$JWT_SECRET" \
      --nats-url "nats://127.0.0.1:$NATS_PORT" >>"$OUT/hub.log" 2>&1 &
    echo $! >"$OUT/hub.pid"
    status=0
    wait $! || status=$?
    echo "$(date -u +%T) hub exited with status $status" >>"$OUT/hub-exits.log"
    sleep 1
  done
) &
sup_pid=$!

# RSS samples: unix time, pid, VmRSS in kB.
(
  while [ ! -e "$OUT/stop" ]; do
    pid=$(cat "$OUT/hub.pid" 2>/dev/null || true)
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$rss" ] && echo "$(date +%s) $pid $rss" >>"$OUT/rss.log"
    sleep 2
  done
) &
rss_pid=$!

node benches/soak/driver.mjs --url="http://127.0.0.1:$HUB_PORT" --nats="127.0.0.1:$NATS_PORT" \
  --secret="$JWT_SECRET" --minutes="$MINUTES" --clients="$CLIENTS" \
  >"$OUT/driver.out" 2>"$OUT/driver.log" &
driver_pid=$!

fault() { echo "$(date -u +%T) $*" | tee -a "$OUT/faults.log" >&2; }

# Hub exits with a status other than SIGKILL's (137) so far: a disk-full window "bites" when this
# grows during it (a write failed and the hub exited, or a start was refused on the full disk).
failed_exits() {
  local n
  n=$(grep -vc 'status 137$' "$OUT/hub-exits.log" 2>/dev/null || true)
  echo "${n:-0}"
}

# Fault cycles while a whole cycle (at its longest) still ends a cycle before the end, so the last
# minute (and the checks) run fault-free.
cycle_max=$((3 * (CYCLE_S / 4) + 3 + (tmpfs == 1 ? FULL_HOLD_S : 0) + (CYCLE_S / 4 > FULL_HOLD_S ? CYCLE_S / 4 - FULL_HOLD_S : 0)))
end=$(( $(date +%s) + MINUTES * 60 - CYCLE_S ))
cycles=0
bites=0
while [ $(( $(date +%s) + cycle_max )) -le "$end" ] && kill -0 "$driver_pid" 2>/dev/null; do
  sleep $((CYCLE_S / 4))
  fault "nats-server: restart"
  kill "$nats_pid"; wait "$nats_pid" 2>/dev/null || true
  sleep 3
  start_nats
  sleep $((CYCLE_S / 4))
  fault "hub: SIGKILL (pid $(cat "$OUT/hub.pid"))"
  kill -KILL "$(cat "$OUT/hub.pid")" 2>/dev/null || true
  sleep $((CYCLE_S / 4))
  if [ "$tmpfs" = 1 ]; then
    before=$(failed_exits)
    health=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$HUB_PORT/health" || true)
    dd if=/dev/zero of="$data/fill" bs=1M 2>/dev/null || true
    fault "disk: full ($(df -m --output=avail "$data" | tail -1 | tr -d ' ') MiB left; the hub's /health answered $health just before), holding until a write fails (at most ${FULL_HOLD_S}s)"
    full_at=$(date +%s)
    bit_at=""
    while [ $(( $(date +%s) - full_at )) -lt "$FULL_HOLD_S" ]; do
      if [ -z "$bit_at" ] && [ "$(failed_exits)" -gt "$before" ]; then bit_at=$(date +%s); fi
      if [ -n "$bit_at" ] && [ $(( $(date +%s) - bit_at )) -ge "$BITE_GRACE_S" ]; then break; fi
      sleep 1
    done
    rm -f "$data/fill"
    if [ -n "$bit_at" ]; then
      bites=$((bites + 1))
      fault "disk: freed after $(( $(date +%s) - full_at ))s; bit after $((bit_at - full_at))s ($(( $(failed_exits) - before )) failed hub exits in the window)"
    else
      fault "disk: freed after $(( $(date +%s) - full_at ))s; did not bite (no failed write)"
    fi
  fi
  cycles=$((cycles + 1))
  sleep $((CYCLE_S / 4 > FULL_HOLD_S ? CYCLE_S / 4 - FULL_HOLD_S : 0))
done
fault "faults stopped after $cycles cycles ($bites disk-full windows bit)"

driver_status=0
wait "$driver_pid" || driver_status=$?
driver_pid=""

# RSS: the highest sample, and per hub lifetime the first and the highest.
max_kb=$(awk 'm < $3 {m = $3} END {print m + 0}' "$OUT/rss.log")
awk '{ if (!($2 in first)) { first[$2] = $3; order[n++] = $2 } if (max[$2] < $3) max[$2] = $3; cnt[$2]++ }
     END { for (i = 0; i < n; i++) { p = order[i]; printf "pid %s: %d samples, first %d MiB, max %d MiB\n", p, cnt[p], first[p] / 1024, max[p] / 1024 } }' \
  "$OUT/rss.log" >"$OUT/rss-summary.txt"
rss_ok=1
[ "$max_kb" -le $((RSS_LIMIT_MB * 1024)) ] || rss_ok=0

{
  echo "soak: $MINUTES min, $cycles fault cycles (nats restart, hub SIGKILL, disk full: tmpfs=$tmpfs), $CLIENTS clients"
  echo "disk-full windows that bit: $bites of $([ "$tmpfs" = 1 ] && echo "$cycles" || echo 0)"
  echo "hub exits: $(wc -l <"$OUT/hub-exits.log" 2>/dev/null || echo 0) ($(sort -k5 "$OUT/hub-exits.log" | awk '{print $NF}' | uniq -c | tr '\n' ' '))"
  echo "hub RSS: max $((max_kb / 1024)) MiB (limit $RSS_LIMIT_MB MiB)"
  cat "$OUT/rss-summary.txt"
  grep '^SOAK ' "$OUT/driver.out" || echo "driver: no summary (status $driver_status; see $OUT/driver.log)"
} | tee "$OUT/summary.txt"
echo "output: $OUT" >&2
[ "$driver_status" = 0 ] && [ "$rss_ok" = 1 ]
