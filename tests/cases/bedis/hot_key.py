#!/usr/bin/env python3
"""Concurrent read-modify-writes on one key from many connections must lose nothing:
8 threads x 25 HINCRBY on one field and LPUSH on one list end at exactly 200.
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

    def bump(k):
        c = conn()
        for _ in range(k):
            c.hincrby("hot", "f", 1)
            c.lpush("hotlist", "x")

    threads = [threading.Thread(target=bump, args=(25,)) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert r.hget("hot", "f") == b"200", (n, r.hget("hot", "f"))
    assert r.llen("hotlist") == 200, (n, r.llen("hotlist"))
print("OK")
