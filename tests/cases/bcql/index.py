"""Global secondary indexes with the Python cassandra-driver (run by tests/tests/it/
t08_bcql.rs and t03_three_nodes.rs).

    python3 index.py HOST PORT KEYSPACE

Prints `INDEXED n`, the rows of KEYSPACE.users whose `email` is set, so the caller can
compare it with the entries of the index table `users_email$index` (none may be stale).
"""
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from cassandra import InvalidRequest
from cassandra.cluster import Cluster
from cassandra.query import BatchStatement, SimpleStatement

from common import expect

host, port, ks = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cluster = Cluster([host], port=port)
s = cluster.connect()
s.default_timeout = 60

s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
          "{'class': 'SimpleStrategy', 'replication_factor': 1}")
s.set_keyspace(ks)
s.execute("CREATE TABLE users (id int PRIMARY KEY, email text, age int)")

# Rows written before the index exist: the backfill indexes them.
ins = s.prepare("INSERT INTO users (id, email, age) VALUES (?, ?, ?)")
for i in range(100):
    s.execute(ins, (i, f"u{i % 10}@x", i))
s.execute("CREATE INDEX users_email ON users (email)")


def eventually(check, timeout=6):
    """check() passes within timeout seconds (another server's schema cache may lag)."""
    deadline = time.time() + timeout
    while True:
        try:
            return check()
        except Exception:  # noqa: BLE001 - a lagging server may also fail the query
            if time.time() > deadline:
                raise
            time.sleep(0.3)


def ids(rows):
    return sorted(r.id for r in rows)


# Built: every existing row is found through the index (no ALLOW FILTERING needed).
by_email = s.prepare("SELECT id, email FROM users WHERE email = ?")
for v in range(10):
    assert ids(s.execute(by_email, (f"u{v}@x",))) == list(range(v, 100, 10)), v

# New writes keep it in step: insert, update to another value, delete the cell, delete
# the row, TTL.
s.execute(ins, (100, "new@x", 1))
assert ids(s.execute(by_email, ("new@x",))) == [100]
s.execute("UPDATE users SET email = 'moved@x' WHERE id = 100")
assert ids(s.execute(by_email, ("new@x",))) == []
assert ids(s.execute(by_email, ("moved@x",))) == [100]
s.execute("DELETE email FROM users WHERE id = 100")
assert ids(s.execute(by_email, ("moved@x",))) == []
s.execute("DELETE FROM users WHERE id = 0")
assert ids(s.execute(by_email, ("u0@x",))) == list(range(10, 100, 10))
s.execute("INSERT INTO users (id, email) VALUES (101, 'brief@x') USING TTL 1")
assert ids(s.execute(by_email, ("brief@x",))) == [101]
time.sleep(2.5)
assert ids(s.execute(by_email, ("brief@x",))) == []

# Lightweight transactions and batches go through the index too.
r = s.execute("INSERT INTO users (id, email) VALUES (0, 'lwt@x') IF NOT EXISTS")
assert r.one().applied
r = s.execute("UPDATE users SET email = 'lwt2@x' WHERE id = 0 IF email = 'nope'")
assert not r.one().applied
assert ids(s.execute(by_email, ("lwt@x",))) == [0]
r = s.execute("UPDATE users SET email = 'lwt2@x' WHERE id = 0 IF email = 'lwt@x'")
assert r.one().applied
assert ids(s.execute(by_email, ("lwt@x",))) == []
assert ids(s.execute(by_email, ("lwt2@x",))) == [0]
b = BatchStatement()
b.add(ins, (102, "batch@x", 1))
b.add(ins, (103, "batch@x", 1))
b.add(SimpleStatement("UPDATE users SET email = 'batch@x' WHERE id = 0"))
s.execute(b)
assert ids(s.execute(by_email, ("batch@x",))) == [0, 102, 103]
assert ids(s.execute(by_email, ("lwt2@x",))) == []

# Paging through an index lookup, and LIMIT, and other filters beside the index.
for i in range(200, 250):
    s.execute(ins, (i, "many@x", i))
q = SimpleStatement("SELECT id FROM users WHERE email = 'many@x'", fetch_size=7)
assert ids(s.execute(q)) == list(range(200, 250))
assert len(list(s.execute("SELECT id FROM users WHERE email = 'many@x' LIMIT 9"))) == 9
q = SimpleStatement("SELECT id FROM users WHERE email = 'many@x' LIMIT 20", fetch_size=6)
assert len(list(s.execute(q))) == 20
rows = s.execute("SELECT id FROM users WHERE email = 'many@x' AND age < 210 ALLOW FILTERING")
assert ids(rows) == list(range(200, 210))
assert s.execute("SELECT count(*) FROM users WHERE email = 'many@x'").one()[0] == 50
expect(InvalidRequest, s.execute, "SELECT id FROM users WHERE age = 3")

# Concurrent writers moving rows between values: each row ends under exactly one value.
upd = s.prepare("UPDATE users SET email = ? WHERE id = ?")


def churn(w):
    for n in range(40):
        s.execute(upd, (f"c{(w + n) % 3}@x", 300 + n % 5))


with ThreadPoolExecutor(4) as pool:
    list(pool.map(churn, range(4)))
found = []
for v in range(3):
    found += ids(s.execute(by_email, (f"c{v}@x",)))
assert sorted(found) == list(range(300, 305)), found

# A static column and a clustering table.
s.execute("CREATE TABLE events (p int, c int, s text static, v text, PRIMARY KEY (p, c))")
s.execute("CREATE INDEX ON events (v)")
s.execute("CREATE INDEX ON events (s)")
for p in range(5):
    s.execute("INSERT INTO events (p, c, s, v) VALUES (%s, 1, %s, 'one')", (p, f"s{p % 2}"))
    s.execute("INSERT INTO events (p, c, v) VALUES (%s, 2, 'two')", (p,))
rows = s.execute("SELECT p, c FROM events WHERE v = 'two'")
assert sorted((r.p, r.c) for r in rows) == [(p, 2) for p in range(5)]
rows = s.execute("SELECT p, c FROM events WHERE s = 's1'")
assert sorted((r.p, r.c) for r in rows) == [(1, 1), (1, 2), (3, 1), (3, 2)]
s.execute("UPDATE events SET s = 's0' WHERE p = 1")
rows = s.execute("SELECT p FROM events WHERE s = 's1'")
assert sorted({r.p for r in rows}) == [3]
s.execute("DELETE FROM events WHERE p = 3")
assert list(s.execute("SELECT p FROM events WHERE s = 's1'")) == []

# Dropped: the query needs filtering again, and the index can be made anew.
s.execute("DROP INDEX events_v_idx")
eventually(lambda: expect(InvalidRequest, s.execute, "SELECT p FROM events WHERE v = 'two'"))
s.execute("CREATE INDEX events_v_idx ON events (v)")
assert len(list(s.execute("SELECT p FROM events WHERE v = 'two'"))) == 4

# What the caller compares with the index table's entries.
with_email = [r.id for r in s.execute("SELECT id, email FROM users") if r.email is not None]
print(f"INDEXED {len(with_email)}")
cluster.shutdown()
print("OK")
