#!/usr/bin/env python3
"""Concurrent read-modify-writes on one key from many connections must lose nothing:
8 threads x 25 HINCRBY on one field and LPUSH on one list end at exactly 200. Such writes
are combined into batches per key (cmd/combine.rs), so also: each client's RPUSHes keep
their order, and a command that fails inside a batch (WRONGTYPE) changes nothing while the
INCRs around it all count.
Run by t04 (5 rounds). It once lost one HINCRBY in about 10 rounds: fjall's plain reads
showed half of an applied batch (a new meta row beside an old field), fixed by reading
through fjall snapshots. Usage: hot_key.py HOST PORT [ROUNDS]; prints OK or the failure."""
import sys
import threading

import redis

host, port = sys.argv[1], int(sys.argv[2])
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 1


def conn():
    return redis.Redis(host=host, port=port, socket_timeout=30)


r = conn()
for n in range(rounds):
    r.delete("hot", "hotlist")

    r.delete("order", "ctr")
    r.set("ctr", 0)
    wrongtype = []

    def bump(t, k):
        c = conn()
        for i in range(k):
            c.hincrby("hot", "f", 1)
            c.lpush("hotlist", "x")
            c.rpush("order", f"{t}:{i}")
            c.incr("ctr")
            try:
                c.hset("ctr", "f", "v")
            except redis.exceptions.ResponseError as e:
                wrongtype.append(str(e).startswith("WRONGTYPE"))

    threads = [threading.Thread(target=bump, args=(t, 25)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert r.hget("hot", "f") == b"200", (n, r.hget("hot", "f"))
    assert r.llen("hotlist") == 200, (n, r.llen("hotlist"))
    assert r.get("ctr") == b"200", (n, r.get("ctr"))
    assert len(wrongtype) == 200 and all(wrongtype), (n, len(wrongtype))
    order = [e.decode().split(":") for e in r.lrange("order", 0, -1)]
    for t in range(8):
        mine = [int(i) for (who, i) in order if who == str(t)]
        assert mine == list(range(25)), (n, t, mine)
print("OK")
