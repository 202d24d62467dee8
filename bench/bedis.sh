#!/usr/bin/env bash
# BEDIS vs Redis, side by side in one run: Debian's redis-server (persistence off) and a
# one-node AiSQL (`aisql start`, RF=1, every write fsynced) on the same machine.
# For each of SET GET INCR LPUSH HSET ZADD it runs
#   redis-benchmark -c 50 -n $N -r 100000 -t <cmd>      and the same with -P 16
# against both and prints ops/s and the ratio BEDIS/Redis.
# Usage: bench/bedis.sh [N=200000]   (needs redis-server and redis-benchmark: apt-get install redis)
# RUNS=k (default 1) measures each test k times, Redis and BEDIS alternating, and prints the
# medians (the ratio is the median of the k side-by-side ratios): on a VM whose speed drifts,
# one run's ratio moves by ±10 %. TESTS=set,get picks tests.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
TESTS=${TESTS:-set,get,incr,lpush,hset,zadd}
RUNS=${RUNS:-1}
# AISQL_BIN: use this binary as it is (default: build the release binary first).
if [ -z "${AISQL_BIN:-}" ]; then
  cargo build --release --bin aisql >/dev/null
fi
BIN=${AISQL_BIN:-${CARGO_TARGET_DIR:-target}/release/aisql}
work=$(mktemp -d)
. scripts/one-node.sh
RP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --daemonize no --logfile "$work/redis.log" &
RPID=$!
start_one_node "$BIN" "$work"
APID=$ONE_NODE_PID; BP=$REDIS_PORT
trap 'kill $RPID $APID 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
wait_redis_ready "$BP"
rate() { # port test pipeline -> ops/s
  redis-benchmark -p "$1" -c 50 -n "$N" -r 100000 -t "$2" -P "$3" -q 2>/dev/null | tr '\r' '\n' | grep -i "requests per second" | tail -1 | sed -E 's/.*: ([0-9.]+) requests per second.*/\1/'
}
printf "%-8s %-4s %14s %14s %8s\n" test P redis_ops/s bedis_ops/s ratio
median() { sort -g | awk '{v[NR]=$1} END {if (NR) print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
for t in ${TESTS//,/ }; do
  for p in 1 16; do
    rs=(); bs=(); qs=()
    for _ in $(seq "$RUNS"); do
      r=$(rate "$RP" "$t" "$p"); b=$(rate "$BP" "$t" "$p")
      rs+=("$r"); bs+=("$b")
      if [ -n "$r" ] && [ -n "$b" ]; then qs+=("$(echo "$b / $r" | bc -l)"); fi
    done
    r=$(printf '%s\n' "${rs[@]}" | grep . | median || true)
    b=$(printf '%s\n' "${bs[@]}" | grep . | median || true)
    q=$(printf '%s\n' "${qs[@]}" | grep . | median || true)
    if [ -n "$q" ]; then
      printf "%-8s %-4s %14s %14s %8.2f\n" "$t" "$p" "$r" "$b" "$q"
    else
      printf "%-8s %-4s %14s %14s %8s\n" "$t" "$p" "${r:--}" "${b:-unsupported}" "-"
    fi
  done
done
