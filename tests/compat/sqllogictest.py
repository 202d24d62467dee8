"""Count how many records of sqllogictest files pass against a PostgreSQL-wire server.

sqllogictest-bin stops a file at its first failure; this runner goes on and counts, so
progress on the corpus is measurable. It reads the files that `sqllogictest.sh` regenerated
against a real PostgreSQL 15 (full values, no hashes) and runs each record in a fresh
database.

    python3 sqllogictest.py HOST PORT DB FILE...

Prints per file: passed/total, the first failures (line, reason, SQL) and the most common
reasons.
"""
import hashlib
import sys

import psycopg


class Text(psycopg.adapt.Loader):
    """Every value as the server's text, as sqllogictest-bin compares them."""

    def load(self, data):
        return bytes(data).decode()


TYPES = ["int2", "int4", "int8", "numeric", "float4", "float8", "bool", "text", "varchar",
         "bpchar", "date", "time", "timestamp", "timestamptz", "interval", "bytea", "json",
         "jsonb", "uuid", "oid", "name", "char"]


def records(path):
    """(line, kind, header words, sql, expected lines) of each record."""
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    conds = []
    while i < len(lines):
        line = lines[i].strip()
        if not line or line.startswith("#"):
            i += 1
            conds = []
            continue
        words = line.split()
        if words[0] in ("skipif", "onlyif"):
            conds.append((words[0], words[1] if len(words) > 1 else ""))
            i += 1
            continue
        if words[0] in ("statement", "query"):
            start = i + 1
            i += 1
            sql = []
            while i < len(lines) and lines[i].strip() and lines[i].strip() != "----":
                sql.append(lines[i])
                i += 1
            expected = []
            if i < len(lines) and lines[i].strip() == "----":
                i += 1
                while i < len(lines) and lines[i] != "":
                    expected.append(lines[i])
                    i += 1
            skip = any((c == "skipif" and l == "postgresql") or (c == "onlyif" and l != "postgresql")
                       for c, l in conds)
            conds = []
            if not skip:
                yield start, words[0], words, "\n".join(sql), expected
            continue
        i += 1  # hash-threshold, halt and others


def fmt(v):
    if v is None:
        return "NULL"
    if v == "":
        return "(empty)"
    return v


def run(conn, kind, words, sql, expected):
    """None if the record passes, else why not."""
    cur = conn.cursor()
    if kind == "statement":
        try:
            cur.execute(sql)
        except psycopg.Error as e:
            return None if words[1] == "error" else f"error: {str(e).strip().splitlines()[0]}"
        if words[1] == "error":
            return "no error"
        if words[1] == "count" and cur.rowcount != int(words[2]):
            return f"count {cur.rowcount}, expected {words[2]}"
        return None
    try:
        cur.execute(sql)
        rows = [[fmt(v) for v in r] for r in cur.fetchall()]
    except psycopg.Error as e:
        return f"error: {str(e).strip().splitlines()[0]}"
    mode = words[2] if len(words) > 2 else "nosort"
    if len(expected) == 1 and " values hashing to " in expected[0]:
        # `N values hashing to H`: the MD5 of every value, each followed by a newline.
        n, h = expected[0].split(" values hashing to ")
        if mode == "rowsort":
            rows.sort()
        values = [v for r in rows for v in r]
        if mode == "valuesort":
            values.sort()
        got = hashlib.md5("".join(v + "\n" for v in values).encode()).hexdigest()
        if len(values) == int(n) and got == h.strip():
            return None
        return f"{len(values)} values hashing to {got}, expected {expected[0]}"
    want = [line.split("\t") for line in expected]
    if mode == "rowsort":
        rows.sort()
        want.sort()
    elif mode == "valuesort":
        rows = sorted(v for r in rows for v in r)
        want = sorted(v for r in want for v in r)
    return None if rows == want else f"rows differ: got {rows[:3]}..., expected {want[:3]}..."


def main():
    host, port, db, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    total_pass = total = 0
    for path in files:
        conn = psycopg.connect(host=host, port=port, user="yugabyte", dbname=db, autocommit=True)
        for t in TYPES:
            try:
                conn.adapters.register_loader(t, Text)
            except Exception:  # noqa: BLE001 - a type the server lacks
                pass
        passed = failed = 0
        shown = []
        reasons = {}
        for line, kind, words, sql, expected in records(path):
            why = run(conn, kind, words, sql, expected)
            if why is None:
                passed += 1
            else:
                failed += 1
                key = why.split(":")[0] if why.startswith("rows") else why[:90]
                reasons[key] = reasons.get(key, 0) + 1
                if len(shown) < 3:
                    shown.append(f"  {path}:{line}: {why}\n    {sql.splitlines()[0]}")
        conn.close()
        n = passed + failed
        total_pass += passed
        total += n
        print(f"{path}: {passed}/{n} passed ({100 * passed // max(n, 1)} %)")
        for s in shown:
            print(s)
        for why, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:5]:
            print(f"  {n:5} x {why}")
    print(f"total: {total_pass}/{total} passed ({100 * total_pass // max(total, 1)} %)")


if __name__ == "__main__":
    main()
