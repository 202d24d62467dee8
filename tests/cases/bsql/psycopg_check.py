"""BSQL with psycopg 3: python3 psycopg_check.py "host=... port=... user=yugabyte dbname=yugabyte".

Parameters and results of the common types (text and binary), executemany, server-side
prepared statements, COPY in both directions, transactions and SQLSTATEs as psycopg's
exception classes. Prints "PSYCOPG OK" when every check held.
"""

import datetime
import decimal
import sys
import uuid

import psycopg
from psycopg import errors


def main(conninfo):
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("drop table if exists pg_t")
        cur.execute(
            "create table pg_t (id int primary key, name text, score float8, ok boolean, "
            "amount numeric(12,3), at timestamp, day date, data bytea, u uuid, "
            "email varchar(50) unique)"
        )
        rows = [
            (
                i,
                f"n{i}",
                i / 4,
                i % 2 == 0,
                decimal.Decimal(f"{i}.125"),
                datetime.datetime(2026, 1, 2, 3, 4, i),
                datetime.date(2026, 1, i),
                bytes([0, 1, i]),
                uuid.UUID(int=i),
                f"u{i}@x",
            )
            for i in range(1, 21)
        ]
        cur.executemany("insert into pg_t values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
        for binary in (False, True):
            c = conn.cursor(binary=binary)
            for _ in range(6):  # prepared on the server after a few runs
                c.execute("select * from pg_t where id = %s", (7,))
                got = list(c.fetchone())
                # uuid columns are described as text (docs/compatibility.md).
                got[8] = uuid.UUID(got[8])
                assert tuple(got) == rows[6], (binary, got, rows[6])
        cur.execute("select count(*), sum(amount) from pg_t where ok")
        assert cur.fetchone() == (10, decimal.Decimal("111.250")), "aggregate"
        cur.execute("select id from pg_t where email = %s", ("u9@x",))
        assert cur.fetchall() == [(9,)], "by unique column"

        for sql, exc in [
            ("insert into pg_t (id, email) values (1, 'zz')", errors.UniqueViolation),
            ("insert into pg_t (id, email) values (99, 'u2@x')", errors.UniqueViolation),
            ("select * from pg_missing", errors.UndefinedTable),
            ("select 1/0", errors.DivisionByZero),
            ("selec 1", errors.SyntaxError),
        ]:
            try:
                cur.execute(sql)
                raise AssertionError(f"no error for {sql}")
            except exc:
                pass

        # COPY both ways.
        with cur.copy("copy pg_t (id, name, email) from stdin") as cp:
            for i in range(100, 110):
                cp.write_row((i, f"c{i}", f"c{i}@x"))
        out = []
        with cur.copy("copy pg_t (id, name) to stdout") as cp:
            for row in cp.rows():
                out.append(row)
        assert len(out) == 30, len(out)

    # Transactions (psycopg opens one per connection by default).
    with psycopg.connect(conninfo) as conn:
        conn.execute("update pg_t set score = 100 where id = 1")
        conn.rollback()
        conn.execute("update pg_t set score = 200 where id = 2")
        conn.commit()
        got = conn.execute("select id, score from pg_t where id <= 2 order by id").fetchall()
        assert got == [(1, 0.25), (2, 200.0)], got
        conn.commit()
        # A server-side (named) cursor: DECLARE, Describe of its portal, FETCH, MOVE, CLOSE.
        with conn.cursor(name="pg_cur") as named:
            named.itersize = 2
            named.execute("select id from pg_t where id < 105 order by id")
            assert named.fetchone() == (1,)
            rest = [r[0] for r in named.fetchall()]
            assert rest[:2] == [2, 3] and rest[-1] == 104, rest
        with conn.cursor(name="pg_scroll", scrollable=True) as named:
            named.execute("select id from pg_t where id > %s order by id", (100,))
            named.scroll(2)
            assert named.fetchone() == (103,), "scroll"
            named.scroll(0, mode="absolute")
            assert named.fetchone() == (101,), "absolute"
        conn.commit()
        conn.execute("drop table pg_t")
        conn.commit()
    print("PSYCOPG OK")


if __name__ == "__main__":
    main(sys.argv[1])
