"""berth fsck: a line a ship, and an exit code that says whether anything
is wrong in the host's store: hash chains, seals, snapshots and secret
keys, each host checking its own copy."""
import hashlib
import json
import os

from conftest import KV, store_sql as sql


def alter_last_seal(h, name):
    """Alter the seal of ship name's last event in a stopped host's store,
    and rewrite the chain around it (the head hash made to match), so that
    only the seal tells; return the event's number."""
    sid = sql(h, "SELECT sid FROM ships WHERE name = ?", (name,))[0][0]
    n = sql(h, "SELECT last_event FROM ships WHERE sid = ?", (sid,))[0][0]
    rec = bytearray(sql(h, "SELECT rec FROM events WHERE sid = ? AND n = ?", (sid, n))[0][0])
    rec[-1] ^= 1
    sql(h, "UPDATE events SET rec = ? WHERE sid = ? AND n = ?", (bytes(rec), sid, n))
    sql(h, "UPDATE ships SET last_hash = ? WHERE sid = ?",
        (hashlib.blake2b(bytes(rec), digest_size=32).digest(), sid))
    return n


def test_fsck_finds_what_is_wrong(host_factory):
    h = host_factory().start()
    for name in ("a", "b", "c"):
        h.new_ship(KV, name)
        for i in range(4):
            assert h.http("PUT", "/s/%s/k/k%d" % (name, i), b"v%d" % i)[0] == 201
    h.cli("ship", "sleep", "b")  # a snapshot, and nothing after it
    r = h.cli("fsck")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[-1] == "3 ships checked, 0 wrong", r.stdout
    assert sum(1 for l in lines if l.startswith("ok ")) == 3
    v = json.loads(h.cli("fsck", "--json").stdout)
    assert v["ok"] is True and len(v["ships"]) == 3
    b = next(s for s in v["ships"] if s["name"] == "b")
    # The first snapshot keeps the events it stands for (with the next
    # one, they go, and it stays as the prior).
    assert b["snapshot_event"] == 4 and b["events_checked"] == 4
    a = next(s for s in v["ships"] if s["name"] == "a")
    assert a["events_checked"] == 4 and a["problem"] is None

    # Ship a's third record altered, and the chain rewritten around it (the
    # next record's link and nothing else would tell otherwise).
    assert h.stop() == 0
    assert alter_last_seal(h, "a") == 4
    # Ship c's secret key row altered.
    sec = bytearray(sql(h, "SELECT secret_key FROM ships WHERE name = 'c'")[0][0])
    sec[-1] ^= 1
    sql(h, "UPDATE ships SET secret_key = ? WHERE name = 'c'", (bytes(sec),))
    h.start()
    r = h.cli("fsck", check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == "3 ships checked, 2 wrong", r.stdout
    bad = [l for l in lines if l.startswith("BAD ")]
    assert any(" a: event 4 does not open" in l for l in bad), bad
    assert any(" c: its secret key does not open" in l for l in bad), bad
    assert any(l.startswith("ok ") and " b:" in l for l in lines), lines
    assert "fsck: a ship's stored data is wrong" in h.logs()
    # One ship, by name; an unknown one is an error of its own.
    assert h.cli("fsck", "b").returncode == 0
    r = h.cli("fsck", "a", "--json", check=False)
    assert r.returncode == 1
    assert "event 4" in json.loads(r.stdout)["ships"][0]["problem"]
    r = h.cli("fsck", "nosuch", check=False)
    assert r.returncode == 1 and "no ship nosuch" in r.stderr
    # The host serves on: ship b reads and writes.
    assert h.http("GET", "/s/b/k/k1")[:3:2] == (200, b"v1")
    assert h.http("PUT", "/s/b/k/new", b"n")[0] == 201


def test_fsck_replay_finds_a_program_that_is_not_deterministic(host_factory):
    """--replay runs each ship's program from its prior snapshot through its
    events to its latest snapshot: kv makes the same bytes again; a program
    that draws its own random numbers does not."""
    from conftest import MISBEHAVE
    h = host_factory().start()
    h.new_ship(KV, "kv")
    h.new_ship(MISBEHAVE, "rnd")
    h.new_ship(KV, "fresh")
    for i in range(3):
        assert h.http("PUT", "/s/kv/k/a%d" % i, b"v%d" % i)[0] == 201
        assert h.http("POST", "/s/rnd/random")[0] == 200
    h.cli("ship", "sleep", "kv")
    h.cli("ship", "sleep", "rnd")
    for i in range(3):
        assert h.http("PUT", "/s/kv/k/b%d" % i, b"w%d" % i)[0] == 201
        assert h.http("POST", "/s/rnd/random")[0] == 200
    h.cli("ship", "sleep", "kv")  # prior at 3, latest at 6
    h.cli("ship", "sleep", "rnd")
    r = h.cli("fsck", "--replay", "--json", check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    v = {s["name"]: s for s in json.loads(r.stdout)["ships"]}
    assert v["kv"]["ok"] and v["kv"]["replay"]["verdict"] == "same", v["kv"]
    assert "3 events" in v["kv"]["replay"]["detail"]
    assert v["rnd"]["ok"] is False
    assert v["rnd"]["replay"]["verdict"] == "different", v["rnd"]
    assert "depends on more than its events" in v["rnd"]["problem"]
    assert v["fresh"]["replay"]["verdict"] == "skipped"
    # Text: a line a ship, and the ships themselves were never disturbed.
    r = h.cli("fsck", "--replay", "kv", check=False)
    assert r.returncode == 0 and "replay same" in r.stdout, r.stdout
    assert h.cli_json("ship", "show", "kv")["state"] == "asleep"
    assert h.http("GET", "/s/kv/k/b2")[:3:2] == (200, b"w2")
    assert "fsck: a ship's replay did not make its snapshot" in h.logs()


def test_fsck_on_a_data_directory_no_host_runs(host_factory):
    """With no host on the directory, the CLI checks the store itself,
    opening the master key as berth serve does (here, a passphrase)."""
    h = host_factory()
    h.env = dict(os.environ, BERTH_PASSPHRASE="fsck passphrase")
    h.start()
    h.new_ship(KV, "a")
    h.new_ship(KV, "b")
    for name in ("a", "b"):
        assert h.http("PUT", "/s/%s/k/x" % name, b"1")[0] == 201
    h.cli("ship", "sleep", "a")
    assert h.stop() == 0
    env = dict(os.environ, BERTH_PASSPHRASE="fsck passphrase")
    r = h.cli("fsck", env=env, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == "2 ships checked, 0 wrong"
    # Without the passphrase, the key does not open: said, exit 1.
    r = h.cli("fsck", env=dict(os.environ, BERTH_PASSPHRASE=""), check=False)
    assert r.returncode == 1 and "passphrase" in r.stderr, r.stderr
    # Damage found offline as online.
    rec = bytearray(sql(h, "SELECT rec FROM events WHERE n = 1 AND sid = "
                           "(SELECT sid FROM ships WHERE name = 'b')")[0][0])
    rec[-1] ^= 1
    sql(h, "UPDATE events SET rec = ? WHERE n = 1 AND sid = "
           "(SELECT sid FROM ships WHERE name = 'b')", (bytes(rec),))
    r = h.cli("fsck", "--json", env=env, check=False)
    assert r.returncode == 1
    v = {s["name"]: s for s in json.loads(r.stdout)["ships"]}
    assert v["a"]["ok"] and "event 1 does not open" in v["b"]["problem"]
    r = h.cli("fsck", "--replay", env=env, check=False)
    assert r.returncode == 2 and "needs a running host" in r.stderr
    r = h.cli("fsck", "nosuch", env=env, check=False)
    assert r.returncode == 1 and "no ship nosuch" in r.stderr


def test_fsck_repair_from_a_replica(cluster_factory):
    """A follower's damaged copy of a ship is replaced by another host's,
    which is checked the same way before it is kept."""
    c = cluster_factory(3).start()
    c.new_ship("ann")
    for i in range(4):
        assert c.request("PUT", "/s/ann/k/k%d" % i, b"v%d" % i)[0] in (200, 201)
    c.leader().cli("ship", "sleep", "ann")
    assert c.request("PUT", "/s/ann/k/last", b"L")[0] in (200, 201)
    c.wait_caught_up()
    f = c.followers()[0]
    assert f.stop() == 0
    n = alter_last_seal(f, "ann")
    f.start()
    c.wait_members(c.hosts)
    r = f.cli("fsck", check=False)
    assert r.returncode == 1 and "event %d does not open" % n in r.stdout, r.stdout
    r = f.cli("fsck", "--repair", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "repaired from 127.0.0.1:" in r.stdout, r.stdout
    assert "a ship's stored data repaired from a replica" in f.logs()
    assert f.cli("fsck").returncode == 0
    # The repaired copy serves: the host that leads after a failover (this
    # one or the other) reads every value.
    old = c.leader()
    c.kill9(old)
    assert c.request("GET", "/s/ann/k/last", among=[h for h in c.hosts if h is not old])[:2] == (200, b"L")
    old.start()
    c.wait_members(c.hosts)


def test_a_leader_repairs_a_damaged_ship_on_its_own(cluster_factory):
    """The host that leads finds a ship's copy damaged when it wakes it,
    marks it corrupt, and repairs it from a replica by itself: the ship
    serves again without anyone asking."""
    from conftest import wait_for
    c = cluster_factory(3).start()
    c.new_ship("ann")
    for i in range(3):
        assert c.request("PUT", "/s/ann/k/k%d" % i, b"v%d" % i)[0] in (200, 201)
    c.leader().cli("ship", "sleep", "ann")
    assert c.request("PUT", "/s/ann/k/last", b"L")[0] in (200, 201)
    c.leader().cli("ship", "sleep", "ann")
    c.wait_caught_up()
    f = c.followers()[0]
    assert f.stop() == 0
    n = alter_last_seal(f, "ann")
    f.start()
    c.wait_members(c.hosts)
    # Hand the lead over until the damaged host leads: a stopping leader
    # hands over to a caught-up voter.
    for _ in range(10):
        lead = c.leader()
        if lead is f:
            break
        assert lead.stop() == 0
        lead.start()
        c.wait_members(c.hosts)
    assert c.leader() is f
    # Its wake finds the damage; the host repairs it on its own.
    def served():
        status, body = c.request("GET", "/s/ann/k/last", via=f)[:2]
        return status == 200 and body == b"L"
    wait_for(served, timeout=30, step=0.5)
    log = open(f.log_path, "rb").read().decode(errors="replace")
    # Found at the wake (the snapshot's link no longer matches the head).
    assert "stored data failed its checks" in log and "event %d" % n in log
    assert "a ship's stored data repaired from a replica" in log
    assert f.cli("fsck").returncode == 0


def test_a_stopping_host_ends_its_replays(host_factory):
    """A replay under way does not hold a stopping host: its program is
    killed, the fsck gets its answer or an error, and nothing outlives."""
    import subprocess
    import time
    from conftest import BERTH, MISBEHAVE
    h = host_factory(["--event-timeout", "60000"]).start()
    h.new_ship(MISBEHAVE, "slow")
    assert h.http("POST", "/s/slow/count")[0] == 200
    h.cli("ship", "sleep", "slow")
    assert h.http("POST", "/s/slow/slowcount/10000", timeout=60)[0] == 200
    h.cli("ship", "sleep", "slow")
    p = subprocess.Popen([BERTH, "fsck", "--replay", "--data", h.data],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)  # the replay sleeps 10 s in its second event
    t0 = time.time()
    assert h.stop() == 0
    assert time.time() - t0 < 8, "the replay held the host"
    out, _ = p.communicate(timeout=30)
    assert p.returncode != 0 and b"replay same" not in out
