#!/usr/bin/env bash
# Run ScyllaDB's CQL test suite (test/cql-pytest at tag scylla-6.2.3) against a running
# BCQL server and print per-file counts as a Markdown table (docs/compatibility.md keeps
# the latest). The suite is not ours: it is fetched into a scratch directory, never
# committed.
#
#   tests/compat/cql-pytest.sh [HOST] [PORT]        (default 127.0.0.1 9542)
#
# SCYLLA_DIR=dir  use an existing checkout (must contain test/cql-pytest and test/pylib)
# Needs: git, python3 with pytest, cassandra-driver and allure-pytest (pip install them).
set -uo pipefail
HOST=${1:-127.0.0.1}
PORT=${2:-9542}
TAG=scylla-6.2.3
DIR=${SCYLLA_DIR:-${TMPDIR:-/tmp}/aisql-scylla-$TAG}
if [[ ! -d $DIR/test/cql-pytest ]]; then
    rm -rf "$DIR"
    git clone --quiet --depth 1 --branch "$TAG" --filter=blob:none --sparse \
        https://github.com/scylladb/scylladb "$DIR" || exit 1
    git -C "$DIR" sparse-checkout set test/cql-pytest test/pylib || exit 1
fi
FILES=(
    test_keyspace test_use test_null test_unset test_prepare test_ttl test_using_timestamp
    test_limit test_batch test_static test_clustering_order test_filtering
    test_type_date test_type_time test_type_timestamp test_type_duration test_type_string
    test_type_uuid test_lwt test_counter test_frozen_collection
    cassandra_tests/validation/operations/insert_test
    cassandra_tests/validation/operations/update_test
    cassandra_tests/validation/operations/delete_test
    cassandra_tests/validation/operations/select_test
    cassandra_tests/validation/operations/select_limit_test
    cassandra_tests/validation/operations/select_order_by_test
    cassandra_tests/validation/operations/batch_test
    cassandra_tests/validation/operations/create_test
    cassandra_tests/validation/operations/alter_test
)
# conftest imports `test.pylib`: without this file Python finds its own `test` package.
touch "$DIR/test/__init__.py"
cd "$DIR/test/cql-pytest" || exit 1
total_pass=0 total_run=0
echo "| file | passed | failed | skipped/xfail | pass rate |"
echo "|---|---:|---:|---:|---:|"
for f in "${FILES[@]}"; do
    out=$(PYTHONPATH="$DIR" NODETOOL=true timeout 900 python3 -m pytest --host "$HOST" --port "$PORT" \
        -q -p no:cacheprovider "$f.py" 2>&1 | tail -1)
    n() { grep -oE "[0-9]+ $1" <<<"$out" | grep -oE '^[0-9]+' || echo 0; }
    p=$(n passed) fl=$(( $(n failed) + $(n error) + $(n errors) )) s=$(( $(n skipped) + $(n xfailed) + $(n xpassed) ))
    run=$((p + fl))
    total_pass=$((total_pass + p)) total_run=$((total_run + run))
    rate=$( ((run)) && echo "$((100 * p / run)) %" || echo "-")
    echo "| $f | $p | $fl | $s | $rate |"
done
echo "| **total** | $total_pass | $((total_run - total_pass)) | | $( ((total_run)) && echo "$((100 * total_pass / total_run)) %") |"
