"""BCQL checked with the Python cassandra-driver (run by tests/tests/it/t08_bcql.rs).

    python3 driver.py HOST PORT write|verify

`write` exercises the API and leaves rows behind; `verify` (after a kill -9 and
restart of the dbserver) checks that every acknowledged row is still there.
"""
import sys
import time
import uuid
from decimal import Decimal

from cassandra import ConsistencyLevel, InvalidRequest, AlreadyExists
from cassandra.cluster import Cluster, NoHostAvailable
from cassandra.policies import RoundRobinPolicy
from cassandra.protocol import SyntaxException
from cassandra.query import BatchStatement, SimpleStatement

from common import expect

host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def connect(**kw):
    deadline = time.time() + 60
    while True:
        try:
            c = Cluster([host], port=port, load_balancing_policy=RoundRobinPolicy(), **kw)
            return c, c.connect()
        except NoHostAvailable:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


if mode == "verify":
    c, s = connect(protocol_version=4)
    rows = {r.k: r.v for r in s.execute("SELECT k, v FROM ks.durable")}
    assert rows == {i: f"v{i}" for i in range(200)}, rows
    print("OK")
    sys.exit(0)

# No protocol_version: the driver asks for v5 first and must negotiate down to v4.
c, s = connect()
assert c.protocol_version == 4, c.protocol_version
local = s.execute("SELECT release_version, partitioner, cql_version FROM system.local WHERE key = 'local'").one()
assert local.partitioner == "org.apache.cassandra.dht.Murmur3Partitioner", local
c.shutdown()

c, s = connect(protocol_version=4, compression="lz4")
s.execute("DROP KEYSPACE IF EXISTS ks")
s.execute("CREATE KEYSPACE IF NOT EXISTS ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
expect(AlreadyExists, s.execute, "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
s.set_keyspace("ks")
s.execute("""CREATE TABLE events (
    device text, at timestamp, seq int, payload blob, tags set<text>, attrs map<text, int>,
    owner text static, PRIMARY KEY ((device), at, seq)) WITH CLUSTERING ORDER BY (at DESC, seq ASC)""")
assert "events" in c.metadata.keyspaces["ks"].tables
ins = s.prepare("INSERT INTO events (device, at, seq, payload, tags, attrs) VALUES (?, ?, ?, ?, ?, ?)")
assert ins.routing_key_indexes == [0], ins.routing_key_indexes
for i in range(30):
    s.execute(ins, ("d1", 1600000000000 + i * 1000, i % 3, bytes([i]), {"a", f"t{i}"}, {"x": i}))
s.execute("UPDATE events SET owner = 'alice' WHERE device = 'd1'")
rows = list(s.execute("SELECT at, seq, owner FROM events WHERE device = 'd1' LIMIT 3"))
assert [r.seq for r in rows] == [29 % 3, 28 % 3, 27 % 3] and rows[0].owner == "alice", rows
rows = list(s.execute("SELECT seq FROM events WHERE device = 'd1' ORDER BY at ASC LIMIT 2"))
assert [r.seq for r in rows] == [0, 1], rows
# Paging with a small fetch size.
st = SimpleStatement("SELECT * FROM events WHERE device = 'd1'", fetch_size=7)
assert len(list(s.execute(st))) == 30
assert s.execute("SELECT count(*) FROM events WHERE device = 'd1'").one().count == 30
rows = list(s.execute("SELECT seq, count(*) AS n FROM events WHERE device = 'd1' AND at > '2020-09-13 12:26:50+0000' ALLOW FILTERING"))
assert rows[0].n == 19, rows
# Collections and counters.
s.execute("CREATE TABLE kv (k int PRIMARY KEY, l list<int>, st set<text>, m map<text, text>, u uuid, d decimal, ts timestamp)")
s.execute("INSERT INTO kv (k, l, st, m, u, d) VALUES (1, [1, 2], {'b', 'a'}, {'k': 'v'}, %s, %s)", (uuid.UUID(int=5), Decimal("1.25")))
s.execute("UPDATE kv SET l = l + [3], l = [0] + l, st = st - {'a'}, m['z'] = 'last' WHERE k = 1")
r = s.execute("SELECT * FROM kv WHERE k = 1").one()
assert r.l == [0, 1, 2, 3] and r.st == {"b"} and r.m == {"k": "v", "z": "last"}, r
assert r.u == uuid.UUID(int=5) and r.d == Decimal("1.25"), r
s.execute("CREATE TABLE hits (page text PRIMARY KEY, n counter)")
for _ in range(5):
    s.execute("UPDATE hits SET n = n + 2 WHERE page = 'home'")
assert s.execute("SELECT n FROM hits WHERE page = 'home'").one().n == 10
# TTL, writetime, JSON.
s.execute("INSERT INTO kv (k, ts) VALUES (2, 5) USING TTL 1000 AND TIMESTAMP 123456")
r = s.execute("SELECT ttl(ts), writetime(ts) FROM kv WHERE k = 2").one()
assert 990 <= r[0] <= 1000 and r[1] == 123456, r
s.execute("INSERT INTO kv JSON '{\"k\": 3, \"m\": {\"a\": \"b\"}}'")
assert s.execute("SELECT JSON k, m FROM kv WHERE k = 3").one()[0] == '{"k": 3, "m": {"a": "b"}}'
# Lightweight transactions.
assert s.execute("INSERT INTO kv (k) VALUES (4) IF NOT EXISTS").one()[0] is True
assert s.execute("INSERT INTO kv (k) VALUES (4) IF NOT EXISTS").one()[0] is False
assert s.execute("UPDATE kv SET ts = 0 WHERE k = 4 IF ts = null").one()[0] is True
assert s.execute("UPDATE kv SET ts = 0 WHERE k = 4 IF ts = 5").one()[0] is False
# Batches (logged and prepared).
b = BatchStatement()
for i in range(5):
    b.add(ins, ("d2", 1600000000000, i, None, None, None))
b.add("DELETE FROM kv WHERE k = 2")
s.execute(b)
assert s.execute("SELECT count(*) FROM events WHERE device = 'd2'").one()[0] == 5
assert s.execute("SELECT * FROM kv WHERE k = 2").one() is None
# BEGIN TRANSACTION: rows of many partitions (so several tablets), all or nothing.
s.execute("CREATE TABLE acct (id int PRIMARY KEY, bal int)")
s.execute("BEGIN TRANSACTION " + " ".join(
    f"INSERT INTO acct (id, bal) VALUES ({i}, 100);" for i in range(8)) + " END TRANSACTION;")
assert sorted(r.bal for r in s.execute("SELECT bal FROM acct")) == [100] * 8
s.execute("BEGIN TRANSACTION UPDATE acct SET bal = 70 WHERE id = 0; "
          "UPDATE acct SET bal = 130 WHERE id = 5; END TRANSACTION")
assert sum(r.bal for r in s.execute("SELECT bal FROM acct")) == 800
# A failing statement writes nothing of the transaction.
expect(InvalidRequest, s.execute, "BEGIN TRANSACTION UPDATE acct SET bal = 0 WHERE id = 1; "
       "UPDATE acct SET nosuch = 1 WHERE id = 2; END TRANSACTION")
assert s.execute("SELECT bal FROM acct WHERE id = 1").one().bal == 100
expect(InvalidRequest, s.execute,
       "BEGIN TRANSACTION INSERT INTO acct (id, bal) VALUES (9, 1) IF NOT EXISTS; END TRANSACTION")
expect(SyntaxException, s.execute, "BEGIN TRANSACTION INSERT INTO acct (id, bal) VALUES (9, 1);")
# Errors come back with the right codes.
expect(SyntaxException, s.execute, "SELEC * FROM kv")
expect(InvalidRequest, s.execute, "SELECT * FROM nosuch")
expect(InvalidRequest, s.execute, "SELECT * FROM kv WHERE l = [1]")
expect(InvalidRequest, s.execute, "INSERT INTO kv (l) VALUES ([1])")
# A clustering key longer than the store holds is refused as invalid (not a server error).
s.execute("CREATE TABLE wide (p int, c text, v int, PRIMARY KEY (p, c))")
expect(InvalidRequest, s.execute, "INSERT INTO wide (p, c, v) VALUES (1, %s, 1)", ("x" * 70000,))
expect(InvalidRequest, s.execute, "SELECT * FROM wide WHERE p = 1 AND c = %s", ("x" * 70000,))
assert s.execute("SELECT count(*) FROM wide").one()[0] == 0
# Rows that must survive kill -9.
s.execute("CREATE TABLE durable (k int PRIMARY KEY, v text)")
dur = s.prepare("INSERT INTO durable (k, v) VALUES (?, ?)")
dur.consistency_level = ConsistencyLevel.QUORUM
for i in range(200):
    s.execute(dur, (i, f"v{i}"))
print("OK")
