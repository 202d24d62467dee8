#!/usr/bin/env bash
# Run the Redis project's own test suite (Redis 7.0.15 `tests/`, external-server mode) against
# BEDIS and print per-unit counts: tests passed, failed, and whether the unit stopped early on
# an exception (an unsupported command aborts the rest of that unit).
#
# Usage: [AISQL_BIN=target/release/aisql] scripts/redis-suite.sh [unit ...]
#        (default: the units named in issue 5; per-unit logs go to target/redis-suite/)
# Needs: tclsh, and the Redis source: fetched with `apt-get source redis` (a deb-src entry is
# added if missing) into ${REDIS_SRC_DIR:-~/.cache/aisql/redis-src}. The suite's code is not ours
# and is never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
UNITS=("$@")
if [ ${#UNITS[@]} -eq 0 ]; then
  UNITS=(unit/protocol unit/info-command unit/quit unit/auth unit/multi unit/pubsub unit/scan
         unit/type/string unit/type/incr unit/keyspace unit/expire unit/type/hash unit/type/list
         unit/type/set unit/type/zset)
fi
SRC_DIR=${REDIS_SRC_DIR:-$HOME/.cache/aisql/redis-src}
if ! ls -d "$SRC_DIR"/redis-7.0.15/tests >/dev/null 2>&1; then
  mkdir -p "$SRC_DIR"
  if ! grep -rqs "deb-src" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    sed -i 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources
    apt-get update -q >/dev/null
  fi
  (cd "$SRC_DIR" && apt-get source -q redis=7:7.0.15* >/dev/null 2>&1 || apt-get source -q redis >/dev/null)
fi
SUITE=$(ls -d "$SRC_DIR"/redis-7.0.15)
# AISQL_BIN picks the binary (e.g. a release build: the suite's big loops take far longer on
# a debug build); by default the debug build is built and used.
if [ -z "${AISQL_BIN:-}" ]; then
  cargo build --bin aisql >/dev/null
fi
BIN=${AISQL_BIN:-${CARGO_TARGET_DIR:-target}/debug/aisql}
work=$(mktemp -d)
. scripts/one-node.sh
start_one_node "$BIN" "$work"
APID=$ONE_NODE_PID; BP=$REDIS_PORT
trap 'kill $APID 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
wait_redis_ready "$BP"
LOG_DIR=${REDIS_SUITE_LOGS:-${CARGO_TARGET_DIR:-target}/redis-suite}
mkdir -p "$LOG_DIR"
printf "%-20s %6s %6s %s\n" unit passed failed stopped_early
total_ok=0; total_err=0
for u in "${UNITS[@]}"; do
  # Streams and Lua scripting are not BEDIS features (issue 5 does not list them), and
  # keyspace `expired`/`evicted` events are not implemented (those tests would wait forever):
  # their tests are skipped so the rest of each unit runs; they count as not passed.
  out=$(cd "$SUITE" && timeout 600 ./runtest --host 127.0.0.1 --port "$BP" --single "$u" --singledb \
        --skiptest "/[Ss]tream" --skiptest "/XADD|XREAD|XGROUP|XINFO|XCLAIM|XAUTOCLAIM" \
        --skiptest "/[Ss]cript|EVAL|[Ll]ua|FUNCTION" \
        --skiptest "Blocking commands ignores the timeout" \
        --ignore-encoding --ignore-digest --tags "-needs:debug -needs:repl -needs:config-maxmemory -needs:save" 2>&1 \
        | sed 's/\x1b\[[0-9;]*m//g' || true)
  printf '%s\n' "$out" > "$LOG_DIR/$(basename "$u").log"
  ok=$(grep -ac '^\[ok\]' <<<"$out" || true)
  err=$(grep -ac '^\[err\]' <<<"$out" || true)
  exc=$(grep -a -m1 '^\[exception\]' <<<"$out" | sed 's/^\[exception\]: Executing test client: //' | cut -c1-70 || true)
  printf "%-20s %6s %6s %s\n" "$u" "$ok" "$err" "${exc:--}"
  total_ok=$((total_ok + ok)); total_err=$((total_err + err))
done
printf "%-20s %6s %6s\n" total "$total_ok" "$total_err"
