#!/usr/bin/env bash
# BCQL vs BEDIS, side by side in one run on one one-node AiSQL (`aisql start`, RF=1, every
# write fsynced): bench/apiload keeps $INFLIGHT requests in flight over $CONNS connections
# and measures, for $SECS seconds each,
#   prepared CQL  INSERT INTO bench.kv (k, v) VALUES (?, ?)   vs  Redis SET key:k v
#   prepared CQL  SELECT v FROM bench.kv WHERE k = ?          vs  Redis GET key:k
# (100-byte values, 100,000 keys) and prints ops/s and the ratio BCQL/BEDIS
# (issue 6 target: >= 0.7). Also runs against a real redis-server for reference.
# Usage: bench/bcql.sh [SECS=10] [CONNS=4] [INFLIGHT=64] [ROUNDS=3]   (needs redis-cli)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-4}
INFLIGHT=${3:-64}
ROUNDS=${4:-3}
cargo build --release -p bins -p apiload --bin aisql --bin apiload >/dev/null
BIN=${CARGO_TARGET_DIR:-target}/release/aisql
LOAD=${CARGO_TARGET_DIR:-target}/release/apiload
work=$(mktemp -d)
. scripts/one-node.sh
start_one_node "$BIN" "$work"
APID=$ONE_NODE_PID; CP=$CQL_PORT; BP=$REDIS_PORT; RP=$(free_port)
RPID=
if command -v redis-server >/dev/null; then
  redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no --logfile "$work/redis.log" &
  RPID=$!
fi
trap 'kill $APID $RPID 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
# Ready once the dbserver has registered and writes go through (not merely once the ports
# are open): then the CQL listener, bound in the same start, is up too.
wait_redis_ready "$BP"
# BCQL and BEDIS take turns, $ROUNDS rounds each (a VM's disk and compactions drift over a
# run: alternating keeps either side from getting only the good or the bad minutes); each
# figure is the median of its rounds.
declare -A S
for round in $(seq "$ROUNDS"); do
  while read -r op v; do S[cql_$op]+="$v "; done < <("$LOAD" cql "127.0.0.1:$CP" "$SECS" "$CONNS" "$INFLIGHT")
  while read -r op v; do S[bedis_$op]+="$v "; done < <("$LOAD" redis "127.0.0.1:$BP" "$SECS" "$CONNS" "$INFLIGHT")
done
if [ -n "$RPID" ]; then
  while read -r op v; do S[redis_$op]+="$v "; done < <("$LOAD" redis "127.0.0.1:$RP" "$SECS" "$CONNS" "$INFLIGHT")
fi
median() { python3 -c "import sys,statistics; print(round(statistics.median(map(float, sys.argv[1:]))))" $1; }
declare -A R
for k in "${!S[@]}"; do R[$k]=$(median "${S[$k]}"); echo "# $k rounds: ${S[$k]}"; done
printf "%-22s %12s %12s %8s %12s\n" "operation ($INFLIGHT in flight)" "BCQL ops/s" "BEDIS ops/s" "ratio" "Redis ops/s"
for pair in "insert set" "select get"; do
  set -- $pair
  printf "%-22s %12s %12s %8s %12s\n" "$1 / $2" "${R[cql_$1]}" "${R[bedis_$2]}" \
    "$(python3 -c "print(f'{${R[cql_$1]}/${R[bedis_$2]}:.2f}x')")" "${R[redis_$2]:--}"
done
