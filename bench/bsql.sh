#!/usr/bin/env bash
# BSQL vs PostgreSQL 15, side by side in one run: Debian's PostgreSQL 15 (a scratch cluster,
# default settings, fsync on) and a one-node AiSQL (`aisql start`, RF=1, every write
# fsynced) on the same machine, both loaded with `pgbench -i -s $SCALE`. Runs
#   pgbench -n -S -M prepared -c 8 -j 2 -T $SECS      (select-only)
#   pgbench -n    -M prepared -c 8 -j 2 -T $SECS --max-tries=100   (tpcb-like)
# (BSQL's READ COMMITTED is optimistic: a transaction that lost a write conflict fails with
# 40001 at COMMIT, and pgbench retries it; PostgreSQL waits on the row lock instead.)
# and sysbench oltp_point_select (4 tables of 10,000 rows, 8 threads, $SECS s, prepared)
# against both and prints tps and the ratio BSQL/PG.
# Usage: bench/bsql.sh [SCALE=10] [SECS=30]   (needs postgresql-15 and sysbench: apt-get install ...)
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=${1:-10}
SECS=${2:-30}
PGBIN=/usr/lib/postgresql/15/bin
# AISQL_BIN: use this binary as it is (default: build the release binary first).
if [ -z "${AISQL_BIN:-}" ]; then
  cargo build --release --bin aisql >/dev/null
fi
BIN=$(realpath "${AISQL_BIN:-${CARGO_TARGET_DIR:-target}/release/aisql}")
work=$(mktemp -d)
chmod 755 "$work"
. scripts/one-node.sh
PP=$(free_port)
# PostgreSQL refuses to run as root: run it as the postgres user when we are root.
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
mkdir -p "$work/pg" && { [ "$(id -u)" != 0 ] || chown postgres "$work/pg"; }
as_pg "$PGBIN/initdb -D $work/pg -A trust -U bench >/dev/null"
as_pg "$PGBIN/pg_ctl -D $work/pg -o '-p $PP -k $work/pg -c listen_addresses=127.0.0.1' -l $work/pg/log -w start >/dev/null"
start_one_node "$BIN" "$work"
APID=$ONE_NODE_PID; BP=$PG_PORT
trap 'kill $APID 2>/dev/null; as_pg "$PGBIN/pg_ctl -D $work/pg -m fast stop" >/dev/null 2>&1; wait 2>/dev/null; rm -rf "$work"' EXIT
for i in $(seq 100); do psql -h 127.0.0.1 -p "$BP" -U yugabyte -d yugabyte -Atc 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
psql -h 127.0.0.1 -p "$PP" -U bench -d postgres -qc 'create database yugabyte' >/dev/null
load() { pgbench -h 127.0.0.1 -p "$1" -U "$2" -i -s "$SCALE" -q yugabyte >/dev/null 2>&1; }
echo "loading scale $SCALE into PostgreSQL and BSQL ..."
load "$PP" bench
load "$BP" yugabyte
tps() { # port user args... -> tps
  local port=$1 user=$2; shift 2
  pgbench -h 127.0.0.1 -p "$port" -U "$user" "$@" yugabyte 2>&1 | grep -E '^tps' | sed -E 's/tps = ([0-9.]+).*/\1/'
}
printf "%-12s %12s %12s %8s\n" workload pg_tps bsql_tps ratio
for w in select-only tpcb-like; do
  case $w in
    select-only) args=(-n -S -M prepared -c 8 -j 2 -T "$SECS") ;;
    tpcb-like) args=(-n -M prepared -c 8 -j 2 -T "$SECS" --max-tries=100) ;;
  esac
  p=$(tps "$PP" bench "${args[@]}"); b=$(tps "$BP" yugabyte "${args[@]}")
  printf "%-12s %12s %12s %8.2f\n" "$w" "${p:-0}" "${b:-0}" "$(echo "${b:-0} / ${p:-1}" | bc -l)"
done
# sysbench oltp_point_select: SELECT c FROM sbtestN WHERE id = ? (prepared), 8 threads.
sb() { # port user step -> output
  sysbench --db-driver=pgsql --pgsql-host=127.0.0.1 --pgsql-port="$1" --pgsql-user="$2" \
    --pgsql-db=yugabyte --tables=4 --table-size=10000 --threads=8 --time="$SECS" \
    oltp_point_select "$3" 2>&1
}
sb "$PP" bench prepare >/dev/null
sb "$BP" yugabyte prepare >/dev/null
sbtps() { sb "$1" "$2" run | grep -E '^ +transactions:' | sed -E 's/.*\(([0-9.]+) per sec.*/\1/'; }
p=$(sbtps "$PP" bench); b=$(sbtps "$BP" yugabyte)
printf "%-12s %12s %12s %8.2f\n" point-select "${p:-0}" "${b:-0}" "$(echo "${b:-0} / ${p:-1}" | bc -l)"
