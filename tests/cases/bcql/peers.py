"""A multi-node cluster as Cassandra drivers see it (run by tests/tests/it/t03_three_nodes.rs).

    python3 peers.py HOST PORT NODES

Connects to one node only, and checks that the driver discovers every node through
system.peers_v2, builds a token ring with one token per node, reaches each node, and
reads and writes through token-aware routing to all of them.
"""
import sys
import time

from cassandra.cluster import Cluster, NoHostAvailable
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

host, port, nodes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

deadline = time.time() + 60
while True:
    try:
        cluster = Cluster(
            [host],
            port=port,
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
        )
        session = cluster.connect()
        hosts = cluster.metadata.all_hosts()
        if len(hosts) == nodes and all(h.is_up for h in hosts):
            break
        cluster.shutdown()
    except NoHostAvailable:
        pass
    if time.time() > deadline:
        raise AssertionError(f"the driver did not find {nodes} live nodes")
    time.sleep(1)


def on_host(query, h):
    """Run `query` on host `h`. Under load (the whole suite on 2 cores) the driver may mark
    a host down when one of its pool's connections times out, and brings it back up after
    its reconnection delay: retry for a while before failing."""
    give_up = time.time() + 30
    while True:
        try:
            return session.execute(query, host=h)
        except NoHostAvailable:
            if time.time() > give_up:
                raise
            time.sleep(0.5)


hosts = cluster.metadata.all_hosts()
assert len({h.host_id for h in hosts}) == nodes, hosts
assert len({h.endpoint.address for h in hosts}) == nodes, hosts
ring = cluster.metadata.token_map.ring
assert len(ring) == nodes, ring
for h in hosts:
    assert h.datacenter == "datacenter1" and h.rack == "rack1", h
    # Each node answers on its own, and describes itself as the driver knows it.
    local = on_host("SELECT host_id FROM system.local", h).one()
    assert local.host_id == h.host_id, (local, h)
    peers = on_host("SELECT peer FROM system.peers", h).all()
    assert len(peers) == nodes - 1, (h, peers)

session.execute(
    "CREATE KEYSPACE IF NOT EXISTS ring WITH replication = "
    "{'class': 'SimpleStrategy', 'replication_factor': 3}"
)
session.execute("CREATE TABLE IF NOT EXISTS ring.kv (k int PRIMARY KEY, v text)")
ins = session.prepare("INSERT INTO ring.kv (k, v) VALUES (?, ?)")
sel = session.prepare("SELECT v FROM ring.kv WHERE k = ?")
assert sel.routing_key_indexes == [0]
used = set()
for k in range(200):
    f = session.execute_async(ins, (k, f"v{k}"))
    f.result()
    used.add(f._current_host.endpoint.address)
for k in range(200):
    assert session.execute(sel, (k,)).one().v == f"v{k}", k
assert len(used) == nodes, used
cluster.shutdown()
print("OK")
