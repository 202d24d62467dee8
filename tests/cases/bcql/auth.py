"""PasswordAuthenticator with the Python cassandra-driver (run by tests/tests/it/t08_bcql.rs
against a dbserver started with --use_cassandra_authentication).

    python3 auth.py HOST PORT
"""
import sys
import time

from cassandra import AuthenticationFailed, InvalidRequest, Unauthorized
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, NoHostAvailable
from cassandra.policies import RoundRobinPolicy

from common import expect

host, port = sys.argv[1], int(sys.argv[2])


def connect(user=None, password=None):
    kw = {}
    if user is not None:
        kw["auth_provider"] = PlainTextAuthProvider(username=user, password=password)
    c = Cluster([host], port=port, load_balancing_policy=RoundRobinPolicy(), **kw)
    return c, c.connect()


def refused(user=None, password=None):
    """The login fails with an authentication error (not a timeout or a crash)."""
    try:
        c, _ = connect(user, password)
    except NoHostAvailable as e:
        errors = list(e.errors.values())
        assert errors and all(isinstance(x, AuthenticationFailed) for x in errors), errors
        return str(errors[0])
    c.shutdown()
    raise AssertionError(f"{user}/{password} logged in")


# The default superuser, once the server is up.
deadline = time.time() + 60
while True:
    try:
        admin_cluster, admin = connect("cassandra", "cassandra")
        break
    except NoHostAvailable as e:
        if time.time() > deadline:
            raise
        time.sleep(0.5)

# No credentials, a wrong password, an unknown user: refused with Cassandra's message.
refused()
msg = refused("cassandra", "wrong")
assert "Provided username cassandra and/or password are incorrect" in msg, msg
refused("nobody", "cassandra")

# Roles: create, log in, change one's own password, privileges, list, drop.
admin.execute("CREATE ROLE alice WITH PASSWORD = 'pw1' AND LOGIN = true")
admin.execute("CREATE ROLE IF NOT EXISTS alice WITH PASSWORD = 'other' AND LOGIN = true")
expect(InvalidRequest, admin.execute, "CREATE ROLE alice WITH PASSWORD = 'x' AND LOGIN = true")
admin.execute("CREATE ROLE nologin WITH PASSWORD = 'pw'")
assert "not permitted to log in" in refused("nologin", "pw")
admin.execute("CREATE USER bob WITH PASSWORD 'pw' NOSUPERUSER")

c, alice = connect("alice", "pw1")
alice.execute("CREATE KEYSPACE IF NOT EXISTS authks WITH replication = "
              "{'class': 'SimpleStrategy', 'replication_factor': 1}")
alice.execute("CREATE TABLE IF NOT EXISTS authks.t (k int PRIMARY KEY, v text)")
alice.execute("INSERT INTO authks.t (k, v) VALUES (1, 'x')")
assert alice.execute("SELECT v FROM authks.t WHERE k = 1").one().v == "x"
expect(Unauthorized, alice.execute, "CREATE ROLE mallory WITH PASSWORD = 'x' AND LOGIN = true")
expect(Unauthorized, alice.execute, "ALTER ROLE alice WITH SUPERUSER = true")
expect(Unauthorized, alice.execute, "DROP ROLE bob")
alice.execute("ALTER ROLE alice WITH PASSWORD = 'pw2'")
c.shutdown()
refused("alice", "pw1")
c, _ = connect("alice", "pw2")
c.shutdown()

roles = {r.role: (r.super, r.login) for r in admin.execute("LIST ROLES")}
assert roles == {
    "alice": (False, True),
    "bob": (False, True),
    "cassandra": (True, True),
    "nologin": (False, False),
}, roles
users = {r.name for r in admin.execute("LIST USERS")}
assert users == {"alice", "bob", "cassandra"}, users

expect(InvalidRequest, admin.execute, "DROP ROLE cassandra")
admin.execute("DROP ROLE alice")
admin.execute("DROP ROLE IF EXISTS alice")
expect(InvalidRequest, admin.execute, "DROP ROLE alice")
refused("alice", "pw2")
admin_cluster.shutdown()
print("OK")
