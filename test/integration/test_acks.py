"""Ack levels on a real three-host cluster: when a write's effects leave
depends on how many hosts hold its event, per ship."""
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time

from conftest import BERTH, free_port, wait_for


def start_cluster(host_factory, n=3, extra=()):
    hosts = []
    first_peer = None
    for i in range(n):
        peer = "127.0.0.1:%d" % free_port()
        args = ["--peer", peer] + list(extra)
        if first_peer is not None:
            args += ["--join", first_peer]
        h = host_factory(args, name="h%d" % i)
        h.peer = peer
        h.start()  # may move to other ports after a clash
        hosts.append(h)
        first_peer = first_peer or h.peer
    # Every host is a voter once the leader has promoted them.
    wait_for(lambda: sum(1 for x in cluster(hosts[0])["hosts"]
                         if x["role"] == "voter") == n, timeout=20)
    return hosts


def cluster(h):
    return h.cli_json("cluster", "ls")


def applied(h):
    """The last entry h itself applied (ship show on a follower is served
    by the leader, so it cannot tell)."""
    # A host that just joined has no configuration yet: nothing applied.
    return next((x["applied"] for x in cluster(h)["hosts"] if x["self"]), 0)


def put(h, ship, key, value, timeout=3):
    c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=timeout)
    try:
        c.request("PUT", "/s/%s/k/%s" % (ship, key), body=value)
        return c.getresponse().status
    except OSError:
        return None  # no answer in time
    finally:
        c.close()


def test_levels_release_as_hosts_hold(host_factory):
    a, b, c = start_cluster(host_factory)
    leader = cluster(a)["leader"]
    assert leader == cluster(a)["id"], "the first host leads"
    for name, level in (("zero", "0"), ("one", "1"), ("two", "2"),
                        ("all", "all")):
        a.new_ship(None, name, "--acks", level)
    a.new_ship(None, "dflt")
    show = a.cli_json("ship", "show", "zero")
    assert show["acks"] == 0 and show["acks_default"] is False
    show = a.cli_json("ship", "show", "all")
    assert show["acks"] == "all"
    show = a.cli_json("ship", "show", "dflt")
    assert show["acks"] == "quorum" and show["acks_default"] is True
    # Any host shows it (a follower asks the leader).
    assert b.cli_json("ship", "show", "two")["acks"] == 2

    for s in ("zero", "one", "two", "all", "dflt"):
        assert put(a, s, "x", b"1") == 201, s

    # One follower stopped: quorum and 2 still commit; all waits for it.
    c.proc.send_signal(signal.SIGSTOP)
    try:
        for s in ("zero", "one", "two", "dflt"):
            assert put(a, s, "y", b"2") == 201, s
        assert put(a, "all", "y", b"2", timeout=2) is None
        # Both stopped: no quorum. Effects of 0 and 1 leave at once (the
        # leader's own fsync is enough for 1); 2 and quorum do not.
        b.proc.send_signal(signal.SIGSTOP)
        try:
            t = time.time()
            assert put(a, "zero", "z", b"3") == 201
            assert put(a, "one", "z", b"3") == 201
            assert time.time() - t < 3.0  # no election timeout waited
            assert put(a, "two", "z", b"3", timeout=5) != 201
            assert put(a, "dflt", "z", b"3", timeout=5) != 201
        finally:
            b.proc.send_signal(signal.SIGCONT)
    finally:
        c.proc.send_signal(signal.SIGCONT)

    # The cluster recovers and serves every level again.
    def serving():
        st = cluster(a)
        return st["leader"] != 0 and all(x["online"] for x in st["hosts"]) \
            and any(h.cli_json("stats")["leading"] for h in (a, b, c))
    wait_for(serving, timeout=20)
    lead = next(h for h in (a, b, c) if h.cli_json("stats")["leading"])
    for s in ("zero", "one", "two", "all", "dflt"):
        assert wait_for(lambda: put(lead, s, "w", b"4") in (200, 201),
                        timeout=10), s
    st = lead.cli_json("stats")
    assert "divergence" in st
    assert st["divergence"]["released_below_quorum"] >= 0


def test_bad_levels_are_refused(host_factory):
    h = host_factory().start()
    r = h.cli("ship", "new", "--program", "/bin/true", "--acks", "most",
              check=False)
    assert r.returncode == 2 and "--acks" in r.stderr
    # The admin API says why, whatever the client.
    for bad in (100, "most", -1, 2.5):
        body = json.dumps({"program": "/bin/true", "acks": bad}).encode()
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.path.join(h.data, "admin.sock"))
        s.sendall(b"POST /v1/ships HTTP/1.1\r\nHost: x\r\nConnection: close"
                  b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        reply = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
        s.close()
        assert reply.startswith(b"HTTP/1.1 400"), reply
        assert b"acks" in reply
    r = subprocess.run([BERTH, "serve", "--data", h.data + "-x", "--acks",
                        "-1"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--acks" in r.stderr
    assert not os.path.exists(h.data + "-x/store.db")


def test_effects_lost_below_quorum_are_counted(host_factory):
    """Below quorum an effect can leave for an event that a failover then
    loses: the old leader counts it once it learns what the cluster kept."""
    a, b, c = start_cluster(host_factory)
    a.new_ship(None, "zero", "--acks", "0")
    assert put(a, "zero", "k", b"kept") == 201
    top = applied(a)
    wait_for(lambda: applied(b) >= top and applied(c) >= top)
    # The followers stop, and then die with whatever the leader sent them
    # still unread in their sockets.
    b.proc.send_signal(signal.SIGSTOP)
    c.proc.send_signal(signal.SIGSTOP)
    try:
        assert put(a, "zero", "k", b"gone") in (200, 201)
    finally:
        b.kill9()
        c.kill9()
    # The old leader is cut off while the others elect a leader of their
    # own and write over the position its event had.
    a.proc.send_signal(signal.SIGSTOP)
    try:
        # Neither can serve before the other is up: start them together.
        t = threading.Thread(target=b.start)
        t.start()
        c.start()
        t.join()
        lead = b if b.cli_json("stats")["leading"] else c
        assert put(lead, "zero", "k", b"new") in (200, 201)
    finally:
        a.proc.send_signal(signal.SIGCONT)
    # The old leader follows now, and applies what the cluster kept.
    wait_for(lambda: a.cli_json("stats")["divergence"]["lost"] >= 1,
             timeout=20)
    d = a.cli_json("cluster", "ls")["divergence"]
    assert d["released_below_quorum"] >= 1 and d["lost"] >= 1
    st, _, body = lead.http("GET", "/s/zero/k/k")
    assert st == 200 and body == b"new"


def test_alarm_set_under_one_leader_fires_under_the_next(host_factory):
    """A follower arms no alarms but applies the events that set them; the
    host that comes to lead fires them."""
    a, b, c = start_cluster(host_factory)
    a.new_ship(None, "al")
    status, _, body = a.http("PUT", "/s/al/alarm", b"3000")
    assert status in (200, 201), body
    top = applied(a)
    wait_for(lambda: applied(b) >= top and applied(c) >= top)
    a.kill9()
    lead = None

    def new_leader():
        nonlocal lead
        lead = next((h for h in (b, c) if h.cli_json("stats")["leading"]), None)
        return lead is not None
    wait_for(new_leader, timeout=20)
    wait_for(lambda: lead.cli_json("stats")["alarms_fired"] >= 1, timeout=20)
    status, _, body = lead.http("GET", "/s/al/alarm")
    assert status == 200 and json.loads(body)["fired"] == 1, body


def test_cluster_join_of_a_running_empty_host(host_factory):
    a, b, c = start_cluster(host_factory)
    a.new_ship(None, "ann")
    assert put(a, "ann", "k", b"v") in (200, 201)
    # A host started alone, with a peer port, then told to join.
    peer = "127.0.0.1:%d" % free_port()
    d = host_factory(["--peer", peer], name="d")
    d.peer = peer
    d.start()
    # Not while it holds ships, nor to a bad address.
    r = d.cli("cluster", "join", "nowhere", check=False)
    assert r.returncode == 2 and "PEER" in r.stderr
    d.new_ship(None, "mine")
    r = d.cli("cluster", "join", a.peer, check=False)
    assert r.returncode == 1 and "ships" in r.stderr
    d.cli("ship", "rm", "mine")
    pid = d.proc.pid
    # The cluster's secret, as the operator gives it to the CLI.
    secret = a.cli("cluster", "secret").stdout.strip()
    r = d.cli("cluster", "join", a.peer,
              env=dict(os.environ, BERTH_CLUSTER_SECRET=secret))
    assert "joining" in r.stdout
    # The same process starts again, as a member of the cluster.
    wait_for(lambda: any(x["peer"] == peer and x["online"]
                         for x in cluster(a)["hosts"]), timeout=30)
    assert d.proc.pid == pid and d.proc.poll() is None
    top = applied(a)
    wait_for(lambda: applied(d) >= top, timeout=30)
    status, _, body = d.http("GET", "/s/ann/k/k")
    assert status == 200 and body == b"v"
    assert os.path.isdir(os.path.join(d.data, "before-join.raft"))
