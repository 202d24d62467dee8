#!/usr/bin/env bash
# Run a fixed subset of PostgreSQL 15's own regression suite (pg_regress
# --use-existing) against any server speaking the PostgreSQL wire protocol
# (e.g. AiSQL's BSQL API, or a real PostgreSQL 15 used as the oracle).
#
# Usage:
#   scripts/pg-regress.sh --host H --port P [--user U] [--db D] [options]
#
# Options (each also settable through the env var in brackets):
#   --host H          server host or socket dir      [PGREGRESS_HOST, PGHOST; default 127.0.0.1]
#   --port P          server port                    [PGREGRESS_PORT, PGPORT; default 5433]
#   --user U          user name                      [PGREGRESS_USER, PGUSER; default yugabyte]
#   --db D            database the tests run in      [PGREGRESS_DB; default regression]
#   --fresh-db        DROP + CREATE the database first (as pg_regress does without
#                     --use-existing), connecting to --maint-db   [PGREGRESS_FRESH_DB=1]
#   --maint-db M      database used for --fresh-db   [PGREGRESS_MAINT_DB; default postgres]
#   --outdir DIR      where results/, regression.diffs and results.txt go
#                                                    [PGREGRESS_OUT; default /tmp/aisql-pgregress/run-<port>-<time>]
#   --tests "a b c"   override the test list         [PGREGRESS_TESTS]
#   --fetch-only      only populate the cache, run nothing
#
#   PGREGRESS_DIR     cache of the PostgreSQL 15 test files
#                     (default ${XDG_CACHE_HOME:-$HOME/.cache}/aisql-pgregress)
#   PG_BINDIR         PostgreSQL 15 client programs (default /usr/lib/postgresql/15/bin)
#   PG_REGRESS        pg_regress binary (default /usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress)
#   PGREGRESS_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org)
#   PGREGRESS_TARBALL path to an already downloaded postgresql-15 source tarball
#
# The test files come from Debian's postgresql-15 source package (the upstream
# tarball, postgresql-15_<ver>.orig.tar.bz2), located through the Sources index of
# bookworm-security / bookworm / bookworm-updates and checked against its SHA256.
# If the PostgreSQL server headers (postgresql-server-dev-15) and a C compiler are
# present, regress.so is built from regress.c so test_setup's LANGUAGE C functions
# can load (only matters for a real PostgreSQL server).
#
# Exit status: 0 all passed, 1 some failed, 2 could not run.
set -uo pipefail

DEFAULT_TESTS="test_setup boolean int2 int4 int8 float8 numeric text varchar insert update delete select case union subselect join aggregates transactions prepare limit"

HOST="${PGREGRESS_HOST:-${PGHOST:-127.0.0.1}}"
PORT="${PGREGRESS_PORT:-${PGPORT:-5433}}"
USER_NAME="${PGREGRESS_USER:-${PGUSER:-yugabyte}}"
DB="${PGREGRESS_DB:-regression}"
FRESH_DB="${PGREGRESS_FRESH_DB:-0}"
MAINT_DB="${PGREGRESS_MAINT_DB:-postgres}"
OUTDIR="${PGREGRESS_OUT:-}"
TESTS="${PGREGRESS_TESTS:-$DEFAULT_TESTS}"
FETCH_ONLY=0
CACHE="${PGREGRESS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aisql-pgregress}"
PG_BINDIR="${PG_BINDIR:-/usr/lib/postgresql/15/bin}"
PG_REGRESS="${PG_REGRESS:-/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress}"
MIRROR="${PGREGRESS_DEBIAN_MIRROR:-http://deb.debian.org}"

die() { echo "pg-regress.sh: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --host) HOST="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --user) USER_NAME="$2"; shift 2 ;;
    --db|--dbname) DB="$2"; shift 2 ;;
    --fresh-db) FRESH_DB=1; shift ;;
    --maint-db) MAINT_DB="$2"; shift 2 ;;
    --outdir) OUTDIR="$2"; shift 2 ;;
    --tests) TESTS="$2"; shift 2 ;;
    --fetch-only) FETCH_ONLY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

SRC="$CACHE/regress"   # holds sql/ expected/ data/ regress.c parallel_schedule resultmap

# ---------------------------------------------------------------- fetching
# Print "<url> <sha256>" of postgresql-15's orig tarball listed in one suite.
find_tarball() {
  local archive="$1" suite="$2"
  curl -fsS --max-time 120 "$MIRROR/$archive/dists/$suite/main/source/Sources.xz" 2>/dev/null \
    | xz -dc 2>/dev/null \
    | awk -v base="$MIRROR/$archive" '
        /^Package: /           { inpkg = ($2 == "postgresql-15"); field = ""; next }
        !inpkg                 { next }
        /^Directory: /         { dir = $2; next }
        /^[A-Za-z0-9-]+:/      { field = $1; next }
        field == "Checksums-Sha256:" && /^ / && $3 ~ /\.orig\.tar\.(bz2|gz|xz)$/ { sha = $1; file = $3 }
        END { if (dir != "" && file != "") print base "/" dir "/" file, sha }'
}

fetch_sources() {
  if [ -f "$SRC/.complete" ]; then return 0; fi
  command -v curl >/dev/null || die "curl is needed to fetch the test files"
  mkdir -p "$CACHE" || die "cannot create $CACHE"
  local tarball="" tmp
  tmp="$(mktemp -d "$CACHE/dl.XXXXXX")"
  if [ -n "${PGREGRESS_TARBALL:-}" ]; then
    tarball="$PGREGRESS_TARBALL"
  else
    local pair url sha
    for pair in "debian-security bookworm-security" "debian bookworm-updates" "debian bookworm"; do
      read -r url sha < <(find_tarball $pair) || true
      [ -n "${url:-}" ] || continue
      echo "fetching $url" >&2
      if curl -fsS --max-time 600 -o "$tmp/src.tar" "$url" \
         && echo "$sha  $tmp/src.tar" | sha256sum -c --quiet - >/dev/null 2>&1; then
        tarball="$tmp/src.tar"; echo "$url" > "$tmp/SOURCE_URL"; break
      fi
      echo "  (not available: $url)" >&2
      rm -f "$tmp/src.tar"; url=""
    done
  fi
  [ -n "$tarball" ] || { rm -rf "$tmp"; die "could not download the postgresql-15 source tarball"; }
  tar -xf "$tarball" -C "$tmp" --wildcards \
      '*/src/test/regress/sql/*' '*/src/test/regress/expected/*' '*/src/test/regress/data/*' \
      '*/src/test/regress/regress.c' '*/src/test/regress/parallel_schedule' '*/src/test/regress/resultmap' \
    || { rm -rf "$tmp"; die "could not extract $tarball"; }
  local top; top="$(ls -d "$tmp"/postgresql-*/ | head -1)"
  rm -rf "$SRC"
  mv "$top/src/test/regress" "$SRC"
  basename "$top" > "$SRC/VERSION"
  [ -f "$tmp/SOURCE_URL" ] && cp "$tmp/SOURCE_URL" "$SRC/SOURCE_URL"
  rm -rf "$tmp"
  touch "$SRC/.complete"
  echo "test files of $(cat "$SRC/VERSION") cached in $SRC" >&2
}

# Build regress.so (test_setup's LANGUAGE C functions) when headers are present.
build_regress_lib() {
  local lib="$CACHE/lib/regress.so" inc
  [ -f "$lib" ] && return 0
  inc="$("$PG_BINDIR/pg_config" --includedir-server 2>/dev/null)" || return 1
  [ -f "$inc/postgres.h" ] && command -v cc >/dev/null || return 1
  mkdir -p "$CACHE/lib"
  cc -O2 -fPIC -shared -fno-strict-aliasing -fwrapv -I"$inc" -o "$lib.tmp" "$SRC/regress.c" 2>"$CACHE/lib/build.log" \
    && mv "$lib.tmp" "$lib"
}

fetch_sources
HAVE_LIB=0
if build_regress_lib; then HAVE_LIB=1; fi
if [ "$FETCH_ONLY" = 1 ]; then echo "cache ready: $SRC"; exit 0; fi

[ -x "$PG_REGRESS" ] || die "pg_regress not found at $PG_REGRESS (apt-get install postgresql-client-15)"
[ -x "$PG_BINDIR/psql" ] || die "psql not found in $PG_BINDIR"

# --------------------------------------------------------------- staging
# The run directory is both --inputdir and --outputdir. It must be readable by
# the server process: test_setup does server-side COPY ... FROM '<inputdir>/data/x.data'.
if [ -z "$OUTDIR" ]; then
  mkdir -p /tmp/aisql-pgregress && chmod 755 /tmp/aisql-pgregress
  OUTDIR="/tmp/aisql-pgregress/run-$PORT-$(date +%Y%m%d-%H%M%S)"
fi
rm -rf "$OUTDIR"
mkdir -p "$OUTDIR/sql" "$OUTDIR/expected" "$OUTDIR/data" "$OUTDIR/lib" || die "cannot create $OUTDIR"
cp "$SRC"/data/* "$OUTDIR/data/"
for t in $TESTS; do
  [ -f "$SRC/sql/$t.sql" ] || die "no such test: $t"
  cp "$SRC/sql/$t.sql" "$OUTDIR/sql/"
  for f in "$SRC/expected/$t.out" "$SRC"/expected/"$t"_[0-9].out; do
    [ -f "$f" ] && cp "$f" "$OUTDIR/expected/"
  done
done
[ "$HAVE_LIB" = 1 ] && cp "$CACHE/lib/regress.so" "$OUTDIR/lib/"
chmod -R a+rX "$OUTDIR"

export PATH="$PG_BINDIR:$PATH"
psql_maint() { "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PORT" -U "$USER_NAME" -d "$MAINT_DB" -c "$1"; }

if [ "$FRESH_DB" = 1 ]; then
  echo "recreating database \"$DB\" (via \"$MAINT_DB\")"
  psql_maint "DROP DATABASE IF EXISTS \"$DB\"" || die "could not drop database $DB"
  psql_maint "CREATE DATABASE \"$DB\" TEMPLATE=template0 ENCODING='UTF8' LC_COLLATE='C' LC_CTYPE='C'" 2>/dev/null \
    || psql_maint "CREATE DATABASE \"$DB\"" || die "could not create database $DB"
  # Same settings pg_regress applies to a database it creates itself.
  for s in "lc_messages TO 'C'" "lc_monetary TO 'C'" "lc_numeric TO 'C'" "lc_time TO 'C'" \
           "bytea_output TO 'hex'" "timezone_abbreviations TO 'Default'"; do
    psql_maint "ALTER DATABASE \"$DB\" SET $s" >/dev/null 2>&1 || echo "  (ALTER DATABASE SET $s failed; ignored)"
  done
fi

"$PG_BINDIR/psql" -X -q -h "$HOST" -p "$PORT" -U "$USER_NAME" -d "$DB" -c "SELECT 1" >/dev/null \
  || die "cannot connect to $HOST:$PORT db=$DB user=$USER_NAME (use --fresh-db to create the database)"

# ------------------------------------------------------------------ run
echo "running PostgreSQL $(cat "$SRC/VERSION" 2>/dev/null) regression tests against $HOST:$PORT db=$DB user=$USER_NAME"
[ "$HAVE_LIB" = 1 ] || echo "note: regress.so not built (no server headers); test_setup's CREATE FUNCTION ... LANGUAGE C will fail"
# shellcheck disable=SC2086
"$PG_REGRESS" --use-existing --bindir="$PG_BINDIR" \
  --inputdir="$OUTDIR" --outputdir="$OUTDIR" --dlpath="$OUTDIR/lib" \
  --host="$HOST" --port="$PORT" --user="$USER_NAME" --dbname="$DB" \
  $TESTS > "$OUTDIR/pg_regress.log" 2>&1
RC=$?

# --------------------------------------------------------------- report
RESULTS="$OUTDIR/results.txt"
: > "$RESULTS"
PASS=0; FAIL=0; TOTAL=0
for t in $TESTS; do
  line="$(grep -E "^(ok|not ok|test) +[0-9]* *-? *$t +\.\.\. " "$OUTDIR/regression.out" 2>/dev/null | head -1)"
  [ -n "$line" ] || line="$(grep -E "^test $t +\.\.\. " "$OUTDIR/pg_regress.log" 2>/dev/null | head -1)"
  if echo "$line" | grep -q '\.\.\. ok'; then st=ok; PASS=$((PASS+1))
  elif [ -z "$line" ]; then st="NOT RUN"; FAIL=$((FAIL+1))
  else st=FAILED; FAIL=$((FAIL+1)); fi
  TOTAL=$((TOTAL+1))
  printf '%-14s %s\n' "$t" "$st" | tee -a "$RESULTS"
done
{
  echo "$PASS of $TOTAL tests passed"
  echo "$PASS passed, $FAIL failed"
} | tee -a "$RESULTS"
echo "pg_regress exit code: $RC; log: $OUTDIR/pg_regress.log"
echo "results: $RESULTS"
[ -s "$OUTDIR/regression.diffs" ] && echo "diffs: $OUTDIR/regression.diffs"
if [ "$TOTAL" -gt 0 ] && [ "$PASS" -eq 0 ] && [ "$RC" -eq 2 ]; then
  tail -5 "$OUTDIR/pg_regress.log" >&2; exit 2
fi
[ "$FAIL" -eq 0 ] && exit 0 || exit 1
