#!/usr/bin/env bash
# Run the SQLite sqllogictest corpus files select1-select3 (repository gregrahn/sqllogictest)
# against BSQL, with expected results regenerated against a real PostgreSQL 15, and print
# per-file counts (docs/compatibility.md keeps the latest). The corpus is not ours: it is
# fetched into a scratch directory, never committed.
#
#   tests/compat/sqllogictest.sh BSQL_HOST BSQL_PORT PG_HOST PG_PORT
#
# SLT_DIR=dir   use an existing checkout (must contain test/select1.test)
# Needs: git, psql, python3 with psycopg 3, sqllogictest (cargo install sqllogictest-bin),
# a PostgreSQL 15 server that trusts user yugabyte (e.g. initdb -A trust -U yugabyte).
set -euo pipefail
BH=${1:-127.0.0.1} BP=${2:-2521} PH=${3:-127.0.0.1} PP=${4:-5432}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${SLT_DIR:-${TMPDIR:-/tmp}/aisql-sqllogictest}
if [[ ! -f $DIR/test/select1.test ]]; then
    rm -rf "$DIR"
    git clone --quiet --depth 1 https://github.com/gregrahn/sqllogictest "$DIR"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run=$RANDOM$RANDOM
files=()
for f in select1 select2 select3; do
    cp "$DIR/test/$f.test" "$work/$f.test"
    # Expected results as PostgreSQL 15 gives them (the corpus has SQLite's).
    psql -h "$PH" -p "$PP" -U yugabyte -d postgres -X -q -c "create database slt_${f}_$run" >/dev/null
    sqllogictest --color never -h "$PH" -p "$PP" -u yugabyte -d "slt_${f}_$run" \
        --override --label postgresql "$work/$f.test" >/dev/null
    psql -h "$PH" -p "$PP" -U yugabyte -d postgres -X -q -c "drop database slt_${f}_$run" >/dev/null
    files+=("$work/$f.test")
done
# Against BSQL, each file in a database of its own, every record counted.
for f in "${files[@]}"; do
    db="slt_$(basename "$f" .test)_$run"
    psql -h "$BH" -p "$BP" -U yugabyte -d yugabyte -X -q -c "create database $db" >/dev/null
    python3 "$HERE/sqllogictest.py" "$BH" "$BP" "$db" "$f" | grep -v '^total'
done
