"""Children and mail in a cluster of three real hosts on loopback, against
faults (docs/protocol.md, "Children"): spawns through a follower's front
door and the leader's, CHILD mail taken exactly once across a kill -9 of
the leader, a destroy's cascade applied alike on every host (one that was
down during it included), and a restarted follower applying the same
lineage. Every host's store is compared once the hosts have stopped."""
import json
import os
import shutil
import threading

import pytest

from conftest import store_query, wait_for

# The kind of a CHILD event (docs/protocol.md, "Event kinds") and the byte
# of an event record that holds it, unsealed (core/record.c).
CHILD_KIND = 5
KIND_BYTE = 18  # 1-based, for SQL's substr

# A fault of the cluster layer, not of children, seen about once in ten
# runs of the tests below that kill a follower while a destroy removes
# ships: restarted, that host catches up, and after the next restart of
# every host it sees itself as a spare in its own raft configuration while
# the others count it as a voter, so the cluster never agrees on its
# members. Everything checked before that restart has passed by then.
ROLE_BUG = ("known host bug: a host killed while ships were removed (the raft "
            "log compacted), restarted, then restarted again, sees itself as a "
            "spare while the leader counts it as a voter")

# Each ship with its parent's id (empty: none), the parent's sid as stored
# (0: none), its lifetime, its SPAWN's tag, its last event and chain hash,
# its sid.
LINEAGE = ("SELECT s.id, coalesce(s.name, ''), coalesce(p.id, ''), s.parent,"
           " s.lifetime, s.spawn_tag, s.last_event, hex(s.last_hash), s.sid"
           " FROM ships s LEFT JOIN ships p ON p.sid = s.parent ORDER BY s.id")
# What is left of ships that are gone: events, snapshots, mail.
ORPHANS = ("SELECT 'events', sid FROM events WHERE sid NOT IN (SELECT sid FROM ships)"
           " UNION SELECT 'snapshots', sid FROM snapshots"
           " WHERE sid NOT IN (SELECT sid FROM ships)"
           " UNION SELECT 'mail', target FROM mail"
           " WHERE target NOT IN (SELECT sid FROM ships)")


def children(c, ship, via=None):
    """{tag: child} from kv's GET /children, through `via` or any host."""
    status, body, _ = c.request("GET", "/s/%s/children" % ship, via=via)
    assert status == 200, (ship, status, body)
    return {x["tag"]: x for x in json.loads(body)}


def spawn(c, ship, lifetime, via):
    """POST /children through `via`; wait for the child's id; return
    (tag, id)."""
    status, body, _ = c.request("POST", "/s/%s/children" % ship,
                                lifetime.encode(), via=via)
    assert status == 202, (ship, status, body)
    tag = json.loads(body)["tag"]
    kid = wait_for(lambda: children(c, ship).get(tag, {}).get("id"), 20)
    assert children(c, ship)[tag]["status"] == "spawned"
    return tag, kid


def status_of(c, ship, kid, field="status", via=None):
    """The status (or another field) of ship's child kid in its list."""
    found = [k[field] for k in children(c, ship, via=via).values() if k["id"] == kid]
    assert len(found) == 1, (ship, kid, found)
    return found[0]


def put(c, ship, key, value, via=None):
    status, body, _ = c.request("PUT", "/s/%s/k/%s" % (ship, key), value, via=via)
    assert status in (200, 201), (ship, status, body)


def gone(c, ship):
    return c.request("GET", "/s/%s/k" % ship)[0] == 404


def stores_agree(c):
    """Catch up, stop every host and check that their stores hold the same
    ships with the same parents, lifetimes, tags and heads, no mail, and
    nothing of a ship that is gone; return {id or name: row} of one."""
    c.wait_caught_up()
    hosts = [h for h in c.hosts if h.started]
    for h in [h for h in hosts if h.running()]:
        assert h.stop() == 0, h.logs()
    views = {}
    for h in hosts:
        rows, mail, orphans = store_query(h.data, LINEAGE, "SELECT count(*) FROM mail",
                                          ORPHANS)
        assert mail == [(0,)], (h.data, mail, c.all_logs())
        assert orphans == [], (h.data, orphans)
        views[h.data] = rows
    first = next(iter(views.values()))
    for data, rows in views.items():
        assert rows == first, "stores differ:\n%s\n%s" % (
            "\n".join("%s: %s" % (d, sorted(set(r) ^ set(first))) for d, r in views.items()),
            c.all_logs())
    return {(r[1] or r[0]): r for r in first}


def role_mismatch(c):
    """[(host's peer, the role it gives itself, the leader's role for it)]
    where they differ."""
    views = c.views()
    lead = [v for v in views.values() if v.get("leader") == v.get("id")]
    if not lead:
        return []
    theirs = {x["id"]: x["role"] for x in lead[0]["hosts"]}
    out = []
    for h, v in views.items():
        own = [x["role"] for x in v["hosts"] if x.get("self")]
        if own and theirs.get(v["id"]) not in (None, own[0]):
            out.append((h.peer, own[0], theirs[v["id"]]))
    return out


def start_all(c):
    """Start every host again at once (a host is ready only once the
    cluster has a leader) and wait until they agree."""
    errors = []

    def start(h):
        try:
            h.start(timeout=60)
        except Exception as e:  # reported below
            errors.append((h.peer, e))
    threads = [threading.Thread(target=start, args=(h,)) for h in c.hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    try:
        c.wait_members(c.hosts, timeout=30)
    except AssertionError:
        wrong = role_mismatch(c)
        keep = os.environ.get("BERTH_TEST_KEEP")
        if keep:  # the hosts' data and logs, to look into
            for h in c.hosts:
                shutil.copytree(h.data, os.path.join(keep, os.path.basename(h.data)),
                                ignore=shutil.ignore_patterns("*.sock"), dirs_exist_ok=True)
                shutil.copy(h.log_path, keep)
        if wrong:
            pytest.xfail(ROLE_BUG + ": %s" % wrong)
        raise


def child_events(data, sid):
    """How many CHILD events ship sid has in a host's store."""
    return store_query(data, "SELECT count(*) FROM events WHERE sid = %d"
                       " AND unicode(substr(rec, %d, 1)) = %d"
                       % (sid, KIND_BYTE, CHILD_KIND))[0][0]


def test_spawn_through_follower_and_leader(cluster_factory):
    c = cluster_factory(3).start()
    lead = c.leader()
    f1, f2 = c.followers()
    c.new_ship("mom", via=f1)
    # Through a follower's front door (forwarded to the leader), and
    # through the leader's.
    t1, linked = spawn(c, "mom", "linked", via=f1)
    t2, root = spawn(c, "mom", "root", via=lead)
    t3, eph = spawn(c, "mom", "ephemeral", via=f2)
    t4, grand = spawn(c, linked, "linked", via=f2)
    # Every front door tells the same.
    for h in c.hosts:
        kids = children(c, "mom", via=h)
        assert {t: (k["id"], k["lifetime"], k["status"]) for t, k in kids.items()} == {
            t1: (linked, "linked", "spawned"), t2: (root, "root", "spawned"),
            t3: (eph, "ephemeral", "spawned")}, h.peer
        assert children(c, linked, via=h)[t4]["id"] == grand
    # A child is a ship of its own, served through any host.
    for i, h in enumerate(c.hosts):
        for kid in (linked, root, eph, grand):
            put(c, kid, "k%d" % i, b"v%d" % i, via=h)
    for h in c.hosts:
        for kid in (linked, root, eph, grand):
            assert c.request("GET", "/s/%s/k/k2" % kid, via=h)[:2] == (200, b"v2")
    # The parent logged three SPAWN events and their CHILD events, once
    # each: the mail was taken with them.
    assert lead.cli_json("ship", "show", "mom")["last_event"] == 6
    ships = stores_agree(c)
    assert ships["mom"][2:6] == ("", 0, 0, 0)
    assert ships[linked][2] == ships["mom"][0] and ships[linked][4:6] == (2, t1)
    assert ships[root][2] == ships["mom"][0] and ships[root][4:6] == (1, t2)
    assert ships[eph][2] == ships["mom"][0] and ships[eph][4:6] == (3, t3)
    assert ships[grand][2] == linked and ships[grand][4:6] == (2, t4)
    for h in c.hosts:
        assert child_events(h.data, ships["mom"][8]) == 3, h.data
    # Started again, every host serves the same lineage from its store.
    start_all(c)
    assert set(children(c, "mom")) == {t1, t2, t3}
    assert c.request("GET", "/s/%s/k/k0" % grand)[:2] == (200, b"v0")


class Spawners:
    """Clients that each POST /children n times through any host, with
    retries, recording each acknowledged tag (a POST that failed may have
    spawned a child all the same)."""

    def __init__(self, c, ship, clients, n):
        self.c, self.ship, self.n = c, ship, n
        self.acked = []  # (tag, client)
        self.failed = []
        self.done = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(clients)]

    def _run(self, i):
        for _ in range(self.n):
            try:
                status, body, _ = self.c.request("POST", "/s/%s/children" % self.ship,
                                                 b"linked", tries=200)
                with self.lock:
                    if status == 202:
                        self.acked.append((json.loads(body)["tag"], i))
                    else:
                        self.failed.append((status, body))
            except AssertionError as e:
                with self.lock:
                    self.failed.append(str(e))
            with self.lock:
                self.done += 1

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self):
        for t in self.threads:
            t.join(120)
        assert not any(t.is_alive() for t in self.threads), "a spawner hung"


def test_spawns_exactly_once_across_leader_kill(cluster_factory):
    c = cluster_factory(3).start()
    c.new_ship("mom")
    c.wait_caught_up()
    s = Spawners(c, "mom", clients=3, n=10).start()
    wait_for(lambda: s.done >= 8, 60)
    old = c.leader()
    old.kill9()
    c.leader(exclude=[old])
    s.join()
    assert not s.failed, s.failed
    assert len(s.acked) == 30
    c.restart(old)
    c.wait_members(c.hosts)

    # Every child's CHILD event comes, under the new leader too.
    def settled():
        kids = children(c, "mom")
        return kids if all(k["status"] != "pending" for k in kids.values()) else None
    kids = wait_for(settled, 30, step=0.2)
    acked = [t for t, _ in s.acked]
    assert len(set(acked)) == len(acked), "a tag acknowledged twice: %s" % acked
    missing = [t for t in acked if t not in kids]
    assert not missing, "acknowledged spawns with no child: %s" % missing
    assert {k["status"] for k in kids.values()} == {"spawned"}, kids
    ids = [k["id"] for k in kids.values()]
    assert len(set(ids)) == len(ids), "one child twice: %s" % kids
    # One SPAWN event and one CHILD event a child, nothing twice.
    lead = c.leader()
    last = lead.cli_json("ship", "show", "mom")["last_event"]
    assert last == 2 * len(kids), (last, len(kids), sorted(kids))
    ships = stores_agree(c)
    mine = {r[0]: r for r in ships.values() if r[2] == ships["mom"][0]}
    assert set(mine) == set(ids)
    assert {r[5] for r in mine.values()} == set(kids)
    assert ships["mom"][6] == last
    for h in c.hosts:
        assert child_events(h.data, ships["mom"][8]) == len(kids), h.data


def lineage(c, via):
    """pa with a linked child (with a linked grandchild), an ephemeral child
    and a root child (with an ephemeral grandchild), each with a key."""
    c.new_ship("pa")
    _, linked = spawn(c, "pa", "linked", via=via)
    _, eph = spawn(c, "pa", "ephemeral", via=via)
    _, root = spawn(c, "pa", "root", via=via)
    _, grand = spawn(c, linked, "linked", via=via)
    _, rgrand = spawn(c, root, "ephemeral", via=via)
    for kid in ("pa", linked, eph, root, grand, rgrand):
        put(c, kid, "y", b"2")
    return linked, eph, root, grand, rgrand


def test_cascade_applied_alike_by_host_that_was_down(cluster_factory):
    c = cluster_factory(3).start()
    linked, eph, root, grand, rgrand = lineage(c, via=c.followers()[0])
    c.wait_caught_up()
    down = c.followers()[1]
    down.kill9()
    # The parent destroys itself: its linked and ephemeral descendants go
    # with it in the same entry; the root child and its own child stay.
    status, _, _ = c.request("DELETE", "/s/pa/self")
    assert status == 202
    wait_for(lambda: gone(c, "pa"), 20)
    for kid in (linked, eph, grand):
        assert gone(c, kid), kid
    for kid in (root, rgrand):
        assert c.request("GET", "/s/%s/k/y" % kid)[:2] == (200, b"2")
    # The root child is no longer anyone's; its own children are its own.
    assert set(children(c, root)) and not gone(c, root)
    c.restart(down)
    c.wait_members(c.hosts)
    ships = stores_agree(c)
    for kid in ("pa", linked, eph, grand):
        assert kid not in ships, kid
    assert ships[root][2:4] == ("", 0), ships[root]
    assert ships[rgrand][2] == root and ships[rgrand][4] == 3
    # Started again, the host that was down serves the same.
    start_all(c)
    assert c.request("GET", "/s/%s/k/y" % rgrand, via=down)[:2] == (200, b"2")
    assert c.request("GET", "/s/%s/k/y" % grand, via=down)[0] == 404


def test_restarted_follower_applies_same_lineage(cluster_factory):
    c = cluster_factory(3).start()
    lead = c.leader()
    f1, f2 = c.followers()
    linked, eph, root, grand, rgrand = lineage(c, via=f1)
    c.wait_caught_up()
    # One follower stops cleanly, the other is killed; while each is
    # down, the lineage changes: a release, a destroy by a parent, spawns.
    f2.stop()
    assert c.request("POST", "/s/pa/children/%s/release" % eph, via=lead)[0] == 202
    wait_for(lambda: status_of(c, "pa", eph) == "destroyed", 20)
    t5, late = spawn(c, "pa", "ephemeral", via=f1)
    c.restart(f2)
    c.wait_members(c.hosts)
    c.wait_caught_up()
    f1.kill9()
    assert c.request("DELETE", "/s/%s/children/%s" % (linked, grand), via=f2)[0] == 202
    wait_for(lambda: gone(c, grand), 20)
    t6, late2 = spawn(c, root, "linked", via=f2)
    c.restart(f1)
    c.wait_members(c.hosts)
    ships = stores_agree(c)
    for kid in (eph, grand):
        assert kid not in ships, kid
    assert ships[late][2] == ships["pa"][0] and ships[late][4:6] == (3, t5)
    assert ships[late2][2] == root and ships[late2][4:6] == (2, t6)
    for kid in (linked, root, rgrand):
        assert kid in ships
    # Each restarted host serves the lineage from its own store.
    start_all(c)
    kids = children(c, "pa", via=f2)
    assert {k["id"]: k["status"] for k in kids.values()} == {
        linked: "spawned", eph: "destroyed", root: "spawned", late: "spawned"}
    assert [k["detail"] for k in kids.values() if k["id"] == eph] == ["released"]
    assert status_of(c, linked, grand, "detail", via=f1) == "parent"
