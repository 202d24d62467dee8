#!/usr/bin/env bash
# bench/txn: 2-key transfer transactions next to single-key writes, in one run of
# bench-tablet (release build), at RF=1 and RF=3. Target: transfers >= 0.3x single-key writes.
# Usage: bench/txn.sh [SECONDS] [CONCURRENCY]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-10}
conc=${2:-64}
cargo build --release -q -p bench-tablet
for rf in 1 3; do
    echo "== RF=$rf =="
    "${CARGO_TARGET_DIR:-target}"/release/bench-tablet --rf "$rf" --seconds "$secs" --concurrency "$conc" \
        --skip_reads --transfers | grep -E "write|transfer|RESULT"
done
