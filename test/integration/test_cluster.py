"""Clusters of real hosts on loopback: forming, forwarding through any
host's front door, failover under load, catching up, membership changes and
a rolling restart. Every acknowledged write is read back afterwards, and
every host's store is compared once the hosts have stopped."""
import json
import os
import subprocess
import time

from conftest import BERTH, KV, Writers, store_ships, wait_for

KILL_ROUNDS = int(os.environ.get("BERTH_KILL_ROUNDS", "5"))


def stores_agree(cluster, hosts=None):
    """Stop every host and check that their stores hold the same ships at
    the same last event and chain hash; return one host's view."""
    hosts = hosts or [h for h in cluster.hosts if h.started]
    # Each stops on SIGTERM, handing leadership on while it can. A store
    # holds what was applied up to its last flush; a stop flushes, and a
    # kill -9 leaves the rest to the log, replayed at the next start.
    for h in [h for h in hosts if h.running()]:
        assert h.stop() == 0, h.logs()
    views = {h.data: store_ships(h.data) for h in hosts}
    first = next(iter(views.values()))
    for data, v in views.items():
        assert v == first, "stores differ: %s\n%s" % (
            {d: {k: x for k, x in s.items() if first.get(k) != x} for d, s in views.items()},
            cluster.all_logs())
    return first


def test_three_hosts_form_and_forward(cluster_factory):
    c = cluster_factory(3).start()
    lead = c.leader()
    view = lead.cluster()
    assert len(view["hosts"]) == 3
    assert {h["role"] for h in view["hosts"]} == {"voter"}
    assert sum(1 for h in view["hosts"] if h["leader"]) == 1
    assert view["term"] >= 1
    assert len(view["cluster"]) >= 16 and int(view["cluster"], 16) >= 0
    # Every host names the same cluster and leader.
    for h, v in c.views().items():
        assert (v["cluster"], v["leader"]) == (view["cluster"], view["leader"])
        assert v["id"] == h.id
    # The CLI shows the same.
    ls = json.loads(c.hosts[1].cli("cluster", "ls", "--json").stdout)
    assert ls["leader"] == view["leader"]
    text = c.hosts[2].cli("cluster", "ls").stdout
    for h in c.hosts:
        assert h.peer in text

    # Ships made through a follower's admin API (forwarded) and the leader's.
    f1, f2 = c.followers()
    c.new_ship("ann", via=f1)
    c.new_ship("bob", via=lead)
    # Writes through every front door; reads through every front door.
    for i, h in enumerate(c.hosts):
        for ship in ("ann", "bob"):
            status, _, _ = h.http("PUT", "/s/%s/k/k%d" % (ship, i), b"v%d" % i)
            assert status in (200, 201), (h.peer, ship, status)
    for h in c.hosts:
        for ship in ("ann", "bob"):
            for i in range(3):
                assert h.http("GET", "/s/%s/k/k%d" % (ship, i))[::2] == (200, b"v%d" % i)
    # Every host's store has the ships (ship show on a follower is the
    # leader's answer, so the stores are read once the hosts have stopped).
    c.wait_caught_up()
    for h in c.hosts:
        assert h.cli_json("ship", "show", "ann")["last_event"] == 3, h.peer
    stores = stores_agree(c)
    assert stores["ann"][0] == 3 and stores["bob"][0] == 3


def test_five_hosts_keep_three_voters(cluster_factory):
    c = cluster_factory(5).start()
    view = c.leader().cluster()
    roles = sorted(h["role"] for h in view["hosts"])
    assert roles.count("voter") == 3, roles
    assert set(roles) <= {"voter", "standby", "spare"}
    c.new_ship("ann")
    for h in c.hosts:
        assert h.http("PUT", "/s/ann/k/%d" % h.port, b"x")[0] in (200, 201)
    # Losing the leader: a standby is promoted so that three voters remain.
    old = c.leader()
    old.kill9()
    lead = c.leader(exclude=[old])
    assert c.request("PUT", "/s/ann/k/after", b"y")[0] in (200, 201)

    def three_voters_online():
        v = lead.cluster()
        voters = [h for h in v["hosts"] if h["role"] == "voter" and h["online"]]
        return len(voters) == 3
    wait_for(three_voters_online, 30, step=0.1)
    old.start()
    c.wait_members(c.hosts)
    c.wait_caught_up()
    assert c.request("GET", "/s/ann/k/after")[:2] == (200, b"y")
    stores_agree(c)


def test_shorter_timeouts_elect_sooner(cluster_factory):
    """--heartbeat and --election-timeout reach raft: with an election
    timeout of 200 ms a new leader is there well within the 1 s that the
    default election timeout alone would take (median of 5 kills)."""
    c = cluster_factory(3, extra=("--heartbeat", "20", "--election-timeout", "200")).start()
    c.new_ship("t")
    took = []
    for _ in range(5):
        old = c.leader()
        old.kill9()
        t0 = time.time()
        c.leader(exclude=[old], timeout=30)
        took.append(time.time() - t0)
        c.restart(old)
    assert sorted(took)[2] < 1.0, took
    assert c.request("PUT", "/s/t/k/x", b"y")[0] in (200, 201)


def test_leader_kill_loop_loses_no_acknowledged_write(cluster_factory):
    c = cluster_factory(3).start()
    ships = ["s%d" % i for i in range(8)]
    for s in ships:
        c.new_ship(s)
    w = Writers(c, ships).start()
    try:
        for rnd in range(KILL_ROUNDS):
            before = w.count()
            wait_for(lambda: w.count() >= before + 20, 30, step=0.02)
            old = c.leader()
            old.kill9()
            t0 = time.time()
            c.leader(exclude=[old], timeout=30)
            # The survivors serve writes again.
            mark = w.count()
            wait_for(lambda: w.count() > mark, 30, step=0.01)
            took = time.time() - t0
            assert took < 15, "round %d: failover took %.1f s" % (rnd, took)
            c.restart(old)
    finally:
        w.stop()
    assert not w.failed, "writes failed past their retries: %s" % w.failed[:10]
    assert w.count() >= KILL_ROUNDS * 20
    lead = c.leader()
    w.check(via=lead)
    c.wait_members(c.hosts)
    # Every host has applied what the leader has (each by its own report),
    # and then every store holds the same ships at the same events.
    c.wait_caught_up()
    last = {s: lead.cli_json("ship", "show", s)["last_event"] for s in ships}
    stores = stores_agree(c)
    assert {s: stores[s][0] for s in ships} == last
    for s in ships:
        assert stores[s][0] >= len(w.acked[s]), (s, stores[s], len(w.acked[s]))


def serve_option(name):
    """Whether `berth serve` has this option."""
    r = subprocess.run([BERTH, "serve", "--help"], capture_output=True, text=True)
    return name in r.stdout


def test_follower_far_behind_catches_up_by_snapshot(cluster_factory):
    # A small raft snapshot threshold makes the leader's log start after
    # what the stopped follower has, so it must install a snapshot.
    extra = []
    events = 3000
    for opt in ("--raft-snapshot-every", "--log-snapshot-every", "--snapshot-threshold"):
        if serve_option(opt):
            extra = [opt, "64"]
            events = 600
            break
    for opt in ("--raft-trailing", "--snapshot-trailing", "--log-trailing"):
        if extra and serve_option(opt):
            extra += [opt, "16"]
    c = cluster_factory(3, extra).start()
    ships = ["a%d" % i for i in range(8)]
    for s in ships:
        c.new_ship(s)
    lag = c.followers()[0]
    lag.kill9()
    w = Writers(c, ships).start()
    try:
        wait_for(lambda: w.count() >= events, 120, step=0.05)
    finally:
        w.stop()
    assert not w.failed, w.failed[:10]
    t0 = time.time()
    c.restart(lag)
    c.wait_members(c.hosts)
    c.wait_caught_up(timeout=60)
    caught = time.time() - t0
    assert caught < 60
    # The host that was behind now serves as leader: kill the others one
    # at a time until it leads, then read everything through it.
    for _ in range(2):
        lead = c.leader()
        if lead is lag:
            break
        lead.stop()
        c.leader(exclude=[lead])
        lead.start()
        c.wait_members(c.hosts)
        c.wait_caught_up()
    w.check()
    stores = stores_agree(c)
    for s in ships:
        assert stores[s][0] >= len(w.acked[s])


def test_hosts_added_and_removed_under_load(cluster_factory):
    c = cluster_factory(3).start()
    ships = ["m%d" % i for i in range(6)]
    for s in ships:
        c.new_ship(s)
    w = Writers(c, ships, targets=c.hosts[:3]).start()
    try:
        # A fourth host joins with --join.
        h4 = c.add_host()
        c.start_joining(h4)
        c.wait_members(c.hosts)
        # And a fifth, while the fourth is being promoted.
        h5 = c.add_host()
        c.start_joining(h5)
        c.wait_members(c.hosts)
        before = w.count()
        wait_for(lambda: w.count() >= before + 10, 30)
        # Remove a follower by id, and then the leader by peer address.
        lead = c.leader()
        f = next(h for h in c.hosts[:3] if h is not lead)
        lead.cli("cluster", "remove", str(f.id))
        wait_for(lambda: f.peer not in [x["peer"] for x in c.leader().cluster()["hosts"]], 30)
        f.stop()
        w.targets = [h for h in c.hosts if h is not f]
        lead = c.leader()
        other = next(h for h in c.running() if h is not lead)
        other.cli("cluster", "remove", lead.peer)
        new = c.leader(exclude=[lead], timeout=30)
        wait_for(lambda: lead.peer not in [x["peer"] for x in new.cluster()["hosts"]], 30)
        w.targets = [h for h in c.hosts if h not in (f, lead)]
        lead.stop()
        before = w.count()
        wait_for(lambda: w.count() >= before + 10, 30)
    finally:
        w.stop()
    assert not w.failed, w.failed[:10]
    members = [h for h in c.hosts if h not in (f, lead)]
    c.wait_members(members)
    view = c.leader().cluster()
    assert sorted(x["role"] for x in view["hosts"]).count("voter") == 3
    w.check()
    c.wait_caught_up()
    stores_agree(c, members)


def test_rolling_restart_fails_no_request_beyond_one_retry(cluster_factory):
    c = cluster_factory(3).start()
    ships = ["r%d" % i for i in range(6)]
    for s in ships:
        c.new_ship(s)
    # A client that waits as a 503 says and skips a host that is down.
    w = Writers(c, ships, polite=True).start()
    try:
        for h in list(c.hosts):
            before = w.count()
            wait_for(lambda: w.count() >= before + 10, 30)
            rc = h.stop()
            assert rc == 0, h.logs()
            h.start()
            c.wait_members(c.hosts)
            c.wait_caught_up()
        before = w.count()
        wait_for(lambda: w.count() >= before + 10, 30)
    finally:
        w.stop()
    assert not w.failed, w.failed[:10]
    assert w.max_tries <= 2, "a request needed %d tries: %s\n%s" % (w.max_tries, w.worst, c.all_logs())
    w.check()
    c.wait_caught_up()
    stores_agree(c)
