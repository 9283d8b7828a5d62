"""A follower far behind catches up by a raft snapshot, which is a copy of
the leader's store, and then the log; a host restarting on its own data
does not copy its store again."""
import os
import sqlite3
import threading

from conftest import wait_for
from test_acks import applied, cluster, put, start_cluster


def ship_row(data, name):
    """The ship's last event and head hash in a stopped host's store."""
    db = sqlite3.connect(os.path.join(data, "store.db"))
    try:
        return db.execute("SELECT last_event, hex(last_hash) FROM ships "
                          "WHERE name = ?", (name,)).fetchone()
    finally:
        db.close()


def test_follower_far_behind_installs_a_snapshot(host_factory):
    a, b, c = start_cluster(host_factory)
    a.new_ship(None, "k")
    assert put(a, "k", "first", b"1") == 201
    top = applied(a)
    wait_for(lambda: applied(c) >= top)
    c.stop()
    # One entry per write: past the snapshot threshold (1,024 entries, and
    # the store's size in log bytes) and the 129 entries kept behind it.
    n = 1400
    for i in range(n):
        assert put(a, "k", "key%d" % (i % 50), b"v%d" % i) in (200, 201), i
    assert "store replaced by a raft snapshot" not in c.logs()
    c.start()
    want = a.cli_json("ship", "show", "k")["last_event"]
    top = applied(a)
    wait_for(lambda: applied(c) >= top, timeout=30)
    assert "store replaced by a raft snapshot" in c.logs()
    # The copy and the log after it make the same chain as the leader's.
    assert put(a, "k", "last", b"x") in (200, 201)
    want += 1
    top = applied(a)
    wait_for(lambda: all(applied(h) >= top for h in (b, c)), timeout=10)
    for h in (a, b, c):
        h.stop()
    rows = {h.data: ship_row(h.data, "k") for h in (a, b, c)}
    assert len(set(rows.values())) == 1, rows
    assert rows[c.data][0] == want

    # Restarting on its own data, a host is given its latest snapshot by
    # libraft and keeps its store: no second copy.
    marks = c.logs().count("store replaced by a raft snapshot")
    # A host answers /healthz once a leader is known: start them together.
    starts = [threading.Thread(target=h.start) for h in (a, b, c)]
    for t in starts:
        t.start()
    for t in starts:
        t.join()
    wait_for(lambda: cluster(a)["leader"] != 0, timeout=20)
    assert c.logs().count("store replaced by a raft snapshot") == marks
