#!/usr/bin/env bash
# Compares two socket-bridge binaries under the load tool, in ABBA order (A B, B A, A B, ...):
# with a few pairs, a fixed order can show a difference that is not there (docs/benchmarks.md,
# "Delivery's packet from the data text"). Each run gets a fresh hub and data dir, the hub on core
# 0 and the tool on core 1 (benches/load/run.sh does the runs); then prints a markdown table of
# medians and ranges per binary.
#
#   benches/load/compare.sh OLD_BINARY NEW_BINARY                # fan-out-1, 3 pairs
#   SCENARIOS="fan-out fan-out-1" PAIRS=4 benches/load/compare.sh old/socket-bridge new/socket-bridge
#
# Settings (environment): SCENARIOS (fan-out-1), PAIRS (3), OUT (a new directory under /tmp),
# LABEL_A and LABEL_B (the binaries' parent directories' names). Keep the binaries outside the
# build's target directory (copy them): the runs build the current tree first.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ $# -ne 2 ] || [ ! -x "$1" ] || [ ! -x "$2" ]; then
  echo "usage: benches/load/compare.sh BINARY_A BINARY_B (two executable socket-bridge binaries)" >&2
  exit 2
fi
a=$1
b=$2
label_a=${LABEL_A:-$(basename "$(dirname "$(realpath "$a")")")}
label_b=${LABEL_B:-$(basename "$(dirname "$(realpath "$b")")")}
if [ "$label_a" = "$label_b" ]; then
  label_a="$label_a (A)"
  label_b="$label_b (B)"
fi
export SCENARIOS=${SCENARIOS:-fan-out-1}
PAIRS=${PAIRS:-3}
export OUT=${OUT:-$(mktemp -d /tmp/load-compare.XXXXXX)}

one() {
  SERVERS=socket-bridge RUNS=1 SYSCALLS=0 PROFILE=0 HUB_BIN=$1 HUB_LABEL=$2 \
    benches/load/run.sh >"$OUT/last-summary.md"
}

for pair in $(seq "$PAIRS"); do
  if [ $((pair % 2)) = 1 ]; then
    one "$a" "$label_a"
    one "$b" "$label_b"
  else
    one "$b" "$label_b"
    one "$a" "$label_a"
  fi
done
mv "$OUT/last-summary.md" "$OUT/summary.md"
cat "$OUT/summary.md"
echo "outputs in $OUT ($PAIRS pairs in ABBA order)" >&2
