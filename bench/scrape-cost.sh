#!/usr/bin/env bash
# What Prometheus scraping costs an AiSQL server: a one-node cluster (`aisql start`, one
# process hosting the mserver, the dbserver and the three API metrics ports) with $TABLES
# BSQL tables of 4 tablets each plus BEDIS's db0 (8 tablets). The process's CPU time
# (utime + stime from /proc/<pid>/stat) is measured over $SECS seconds idle, then over $SECS
# seconds while all five /prometheus-metrics endpoints are fetched every 2 s (as a
# Prometheus with scrape_interval 2s would), then idle again. Prints CPU % of one core for
# each phase, the size and latency of one round of scrapes, and, from $ROUNDS rounds fetched
# back to back, the CPU time one round costs and what that is at one round every 2 s (the
# idle phases vary by more than scraping adds, so this is the precise figure).
# Usage: bench/scrape-cost.sh [SECS=60] [TABLES=4] [ROUNDS=500]   (needs curl, psql, redis-cli)
# AISQL_BIN=path/to/aisql skips the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
TABLES=${2:-4}
ROUNDS=${3:-500}
if [ -n "${AISQL_BIN:-}" ]; then
  BIN=$(realpath "$AISQL_BIN")
else
  cargo build --release --bin aisql >/dev/null
  BIN=$(realpath "${CARGO_TARGET_DIR:-target}/release/aisql")
fi
work=$(mktemp -d)
. scripts/one-node.sh
start_one_node "$BIN" "$work"
PID=$ONE_NODE_PID; PG=$PG_PORT; RD=$REDIS_PORT
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$work"' EXIT
URLS=(); for p in $MS_WEB_PORT $DB_WEB_PORT $PG_WEB_PORT $CQL_WEB_PORT $REDIS_WEB_PORT; do URLS+=("http://127.0.0.1:$p/prometheus-metrics"); done
for _ in $(seq 100); do curl -sf "${URLS[0]}" >/dev/null && break; sleep 0.2; done
for i in $(seq "$TABLES"); do
  psql -q -h 127.0.0.1 -p "$PG" -U yugabyte yugabyte -c "create table t$i (id int primary key, v text)" \
    -c "insert into t$i values (1, 'x')" >/dev/null
done
wait_redis_ready "$RD"
sleep 5
cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }   # clock ticks (USER_HZ = 100)
measure() { # $1: phase name, $2: scrape or idle
  local t0 c0 c1 t1 n=0
  t0=$(date +%s.%N); c0=$(cpu)
  local end=$(( $(date +%s) + SECS ))
  while [ "$(date +%s)" -lt "$end" ]; do
    if [ "$2" = scrape ]; then curl -sf "${URLS[@]}" -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null; n=$((n + 1)); fi
    sleep 2
  done
  c1=$(cpu); t1=$(date +%s.%N)
  awk -v c="$((c1 - c0))" -v t0="$t0" -v t1="$t1" -v name="$1" -v n="$n" \
    'BEGIN { printf "%-22s %6.3f %% of one core (%d ticks in %.1f s, %d scrape rounds)\n", name, c / (t1 - t0), c, t1 - t0, n }'
}
echo "aisql start: pid $PID, $(curl -s "http://127.0.0.1:$DW/api/v1/tablets" | grep -o tablet_id | wc -l) tablets"
for u in "${URLS[@]}"; do
  curl -s -o /dev/null -w "  %{size_download} bytes in %{time_total} s  $u\n" "$u"
done
measure "idle" idle
measure "scraping every 2 s" scrape
measure "idle again" idle
c0=$(cpu); t0=$(date +%s.%N)
for _ in $(seq "$ROUNDS"); do
  curl -sf "${URLS[@]}" -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null
done
c1=$(cpu); t1=$(date +%s.%N)
awk -v c="$((c1 - c0))" -v n="$ROUNDS" -v t0="$t0" -v t1="$t1" 'BEGIN {
  per = c / 100 / n
  printf "%d rounds back to back  %.1f s wall, %d ticks: %.2f ms CPU per round of 5 scrapes = %.3f %% of one core at one round every 2 s\n", n, t1 - t0, c, per * 1000, per / 2 * 100 }'
