"""Clusters in network namespaces: each host in its own namespace with a
veth link to a peer bridge and one to a client bridge; taking a host's peer
link down partitions it from the others while the test still reaches its
front door. These tests need root; without it they fail."""
import json
import time

from conftest import WRITE_OK, Writers, wait_for
from test_cluster import stores_agree


def write_once(h, path, body, timeout=3):
    """One PUT straight to h, no retries: its status, or the error."""
    try:
        return h.http("PUT", path, body, timeout=timeout)[0]
    except OSError as e:
        return type(e).__name__


def partition_leader(c, n):
    """Cut the leader of an n-host cluster in namespaces off under load and
    heal it; check what each side does and that nothing acknowledged is
    lost."""
    c.start()
    ships = ["p%d" % i for i in range(6)]
    for s in ships:
        c.new_ship(s)
    old = c.leader()
    rest = [h for h in c.hosts if h is not old]
    w = Writers(c, ships, targets=rest).start()
    try:
        wait_for(lambda: w.count() >= 30, 30)
        c.net.cut(old.index)
        # The majority elects a leader among itself and serves.
        t0 = time.time()
        new = c.leader(exclude=[old], timeout=30)
        assert new in rest
        mark = w.count()
        wait_for(lambda: w.count() > mark + 20, 30)
        elected = time.time() - t0
        # The old leader, cut off, must not acknowledge a write: wait until
        # it has had an election timeout to notice, then try.
        time.sleep(2)
        answers = [write_once(old, "/s/%s/k/cut%d" % (ships[0], i), b"x") for i in range(5)]
        assert not any(a in WRITE_OK for a in answers), \
            "the partitioned old leader acknowledged writes: %s" % answers
        # It steps down once it has not heard from a majority.
        wait_for(lambda: (old.cluster() or {}).get("leader", old.id) != old.id, 10, step=0.1)
        # Heal: it follows the new leader and catches up.
        c.net.heal(old.index)
        wait_for(lambda: (old.cluster() or {}).get("leader") == new.id or
                 (old.cluster() or {}).get("leader") == c.leader().id, 30, step=0.1)
        mark = w.count()
        wait_for(lambda: w.count() > mark + 20, 30)
    finally:
        w.stop()
    assert not w.failed, w.failed[:10]
    assert elected < 15
    c.wait_members(c.hosts)
    c.wait_caught_up()
    # Nothing written to the cut-off leader was applied anywhere.
    status, body, _ = c.request("GET", "/s/%s/k" % ships[0])
    assert status == 200
    assert not [k for k in json.loads(body) if k.startswith("cut")]
    w.check()
    # Read everything through the healed host too (it forwards).
    w.check(via=old)
    stores_agree(c)


def test_partitioned_leader_three_hosts(cluster_factory):
    partition_leader(cluster_factory(3, netns=True), 3)


def test_partitioned_leader_five_hosts(cluster_factory):
    partition_leader(cluster_factory(5, netns=True), 5)


def test_minority_side_serves_no_writes(cluster_factory):
    # Two of three cut off: no side has a majority, so nothing is
    # acknowledged anywhere; after healing, the cluster serves again.
    c = cluster_factory(3, netns=True).start()
    c.new_ship("ann")
    assert c.request("PUT", "/s/ann/k/before", b"1")[0] in WRITE_OK
    lead = c.leader()
    other = next(h for h in c.hosts if h is not lead)
    c.net.cut(lead.index)
    c.net.cut(other.index)
    time.sleep(2)
    answers = [write_once(h, "/s/ann/k/none%d" % i, b"x") for i, h in enumerate(c.hosts)]
    assert not any(a in WRITE_OK for a in answers), answers
    c.net.heal(lead.index)
    c.net.heal(other.index)
    c.wait_members(c.hosts)
    assert c.request("PUT", "/s/ann/k/after", b"2")[0] in WRITE_OK
    # Writes not acknowledged may or may not have been kept.
    status, body, _ = c.request("GET", "/s/ann/k")
    keys = set(json.loads(body))
    assert {"after", "before"} <= keys
    assert all(k in ("after", "before") or k.startswith("none") for k in keys), keys
    c.wait_caught_up()
    stores_agree(c)
