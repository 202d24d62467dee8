#!/usr/bin/env python3
"""BEDIS with redis-py: MULTI/EXEC pipelines, WATCH conflicts between clients, pub/sub,
blocking pops woken by another client, RESP3 replies, atomic SMOVE/RENAME. Usage: client.py HOST PORT; prints OK."""
import sys
import threading
import time

import redis

host, port = sys.argv[1], int(sys.argv[2])


def conn(**kw):
    return redis.Redis(host=host, port=port, socket_timeout=30, **kw)


r = conn()
r.flushall()

# MULTI/EXEC through a transactional pipeline: every reply, in order.
p = r.pipeline(transaction=True)
p.hset("h", mapping={"a": "1", "b": "2"}).rpush("l", "x", "y").zadd("z", {"m": 1.5})
p.hincrby("h", "a", 10).lrange("l", 0, -1).zscore("z", "m").incr("c")
assert p.execute() == [2, 2, 1, 11, [b"x", b"y"], 1.5, 1], "pipeline"

# WATCH: a change by another client between WATCH and EXEC aborts the transaction.
other = conn()
with r.pipeline() as p:
    p.watch("c")
    other.incr("c")
    p.multi()
    p.set("c", 100)
    try:
        p.execute()
        raise AssertionError("EXEC after a concurrent change must fail")
    except redis.WatchError:
        pass
assert r.get("c") == b"2", r.get("c")

# Pub/sub: a message published by one client reaches the subscriber, by channel and pattern.
sub = conn().pubsub()
sub.subscribe("news")
sub.psubscribe("n*")
for _ in range(2):
    assert sub.get_message(timeout=5)["type"] in ("subscribe", "psubscribe")
assert r.publish("news", "hello") == 2
got = [sub.get_message(timeout=5) for _ in range(2)]
assert sorted(m["type"] for m in got) == ["message", "pmessage"], got
assert all(m["data"] == b"hello" for m in got), got
assert r.pubsub_numsub("news") == [(b"news", 1)]
sub.close()

# A blocking pop is woken by another client's push.
result = {}


def waiter():
    result["v"] = conn().blpop(["q"], timeout=10)


t = threading.Thread(target=waiter)
t.start()
time.sleep(0.3)
start = time.time()
other.rpush("q", "job")
t.join()
assert result["v"] == (b"q", b"job"), result
assert time.time() - start < 2, "BLPOP was not woken promptly"
assert conn().blpop(["q"], timeout=0.2) is None

# RESP3: maps and doubles.
r3 = conn(protocol=3)
assert r3.hgetall("h") == {b"a": b"11", b"b": b"2"}, r3.hgetall("h")
assert r3.zrange("z", 0, -1, withscores=True) == [[b"m", 1.5]] or r3.zrange(
    "z", 0, -1, withscores=True
) == [(b"m", 1.5)]

# Atomic multi-key commands: SMOVE and RENAME of a collection.
r.sadd("s1", "a", "b")
assert r.smove("s1", "s2", "a")
assert r.smembers("s2") == {b"a"} and r.smembers("s1") == {b"b"}
r.hset("hot", "f", "200")
r.rename("hot", "hot2")
assert r.hgetall("hot2") == {b"f": b"200"} and not r.exists("hot")

# requirepass: new connections must AUTH (or HELLO ... AUTH); connected ones stay in.
r.config_set("requirepass", "s3cret")
try:
    try:
        conn().get("x")
        raise AssertionError("a command ran without AUTH")
    except redis.exceptions.AuthenticationError:
        pass
    try:
        conn(password="wrong").ping()
        raise AssertionError("a wrong password was accepted")
    except redis.exceptions.AuthenticationError:
        pass
    authed = conn(password="s3cret")
    assert authed.set("auth-key", "v") and authed.get("auth-key") == b"v"
    assert conn(password="s3cret", protocol=3).get("auth-key") == b"v"
    assert r.get("auth-key") == b"v"
finally:
    r.config_set("requirepass", "")
assert conn().get("auth-key") == b"v"

# A key longer than the store holds (~64 KiB) is refused with an error; reads of it find
# nothing, and the server goes on serving.
huge = b"k" * 70000
for write in (lambda: r.set(huge, "v"), lambda: r.rpush(huge, "a"), lambda: r.hset(huge, "f", "v")):
    try:
        write()
        raise AssertionError("a 70,000-byte key was accepted")
    except redis.exceptions.ResponseError as e:
        assert "key length" in str(e), e
assert r.get(huge) is None and r.exists(huge) == 0
assert r.set("after-huge", "ok") and r.get("after-huge") == b"ok"

# A pipeline of plain SETs on distinct keys goes to each tablet in one call: every SET still
# answers on its own (a key too long for the store fails alone), replaces a collection, and
# publishes its `set` keyspace event.
r.hset("wave:h", "f", "v")
r.config_set("notify-keyspace-events", "E$")
events = conn().pubsub()
events.subscribe("__keyevent@0__:set")
assert events.get_message(timeout=5)["type"] == "subscribe"
p = r.pipeline(transaction=False)
p.set("wave:h", "str")
for i in range(100):
    p.set(f"wave:{i}", f"v{i}")
p.set(huge, "v")
p.set("wave:nx", "x", nx=True)
p.incr("wave:cnt")
p.get("wave:5")
out = p.execute(raise_on_error=False)
assert out[:101] == [True] * 101, out[:101]
assert isinstance(out[101], redis.exceptions.ResponseError) and "key length" in str(out[101]), out[101]
assert out[102:] == [True, 1, b"v5"], out[102:]
assert r.type("wave:h") == b"string" and r.get("wave:h") == b"str"
assert r.mget("wave:0", "wave:99") == [b"v0", b"v99"]
seen = set()
deadline = time.time() + 10
while len(seen) < 102 and time.time() < deadline:
    m = events.get_message(timeout=1)
    if m and m["type"] == "message":
        seen.add(m["data"])
assert len(seen) == 102 and b"wave:h" in seen and b"wave:nx" in seen, len(seen)
r.config_set("notify-keyspace-events", "")
events.close()

print("OK")
