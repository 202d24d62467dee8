#!/usr/bin/env bash
# Server CPU per BEDIS command: starts a one-node AiSQL (`aisql start`, RF=1) on free ports,
# warms it up with 100k requests, then runs
#   redis-benchmark -c CLIENTS -n N -r 100000 -t TEST -P P
# and prints the rate and the server's CPU time (user + system, from /proc) per request.
# On a VM whose speed drifts, CPU per request moves less than the rate: for an A/B test,
# alternate the two binaries and compare both figures.
# Usage: bench/bedis-cpu.sh BIN [TEST=set] [P=1] [N=200000] [CLIENTS=50]
set -euo pipefail
BIN=${1:?usage: bench/bedis-cpu.sh BIN [TEST] [P] [N] [CLIENTS]}
T=${2:-set}; P=${3:-1}; N=${4:-200000}; C=${5:-50}
work=$(mktemp -d)
. "$(dirname "$0")/../scripts/one-node.sh"
start_one_node "$BIN" "$work"
APID=$ONE_NODE_PID; BP=$REDIS_PORT
trap 'kill $APID 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
wait_redis_ready "$BP"
redis-benchmark -p "$BP" -c 50 -n 100000 -r 100000 -t "$T" -P "$P" -q >/dev/null 2>&1
cpu() { awk '{print $14+$15}' "/proc/$APID/stat"; }
c0=$(cpu)
rate=$(redis-benchmark -p "$BP" -c "$C" -n "$N" -r 100000 -t "$T" -P "$P" -q 2>/dev/null | tr '\r' '\n' |
  grep -i "requests per second" | tail -1 | sed -E 's/.*: ([0-9.]+) requests per second.*/\1/')
c1=$(cpu)
printf "%s P%s ops/s=%s server_cpu_us_per_op=%.1f\n" "$T" "$P" "$rate" \
  "$(echo "($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / $N" | bc -l)"
