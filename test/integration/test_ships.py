"""Ships end to end: CLI, admin API, front door, sleep and wake, removal."""
import http.client
import json
import threading
import time

from conftest import KV


def test_kv_through_front_door(host):
    sid = host.new_ship(KV, "ann")
    show = host.cli_json("ship", "show", "ann")
    assert show["id"] == sid
    assert show["name"] == "ann"
    assert show["state"] == "asleep"
    assert show["last_event"] == 0

    status, _, _ = host.http("PUT", "/s/ann/k/colour", b"blue")
    assert status in (200, 201)
    status, ctype, body = host.http("GET", "/s/%s/k/colour" % sid)
    assert (status, body) == (200, b"blue")
    status, _, _ = host.http("GET", "/s/ann/k/missing")
    assert status == 404
    host.http("PUT", "/s/ann/k/size", b"7")
    status, _, body = host.http("GET", "/s/ann/k")
    assert status == 200
    assert sorted(json.loads(body)) == ["colour", "size"]
    status, _, _ = host.http("DELETE", "/s/ann/k/size")
    assert status == 200

    show = host.cli_json("ship", "show", sid)
    assert show["state"] == "awake"
    # Three writes were logged; reads were not.
    assert show["last_event"] == 3


def test_unknown_ship_and_path(host):
    assert host.http("GET", "/s/nobody/k/x")[0] == 404
    assert host.http("GET", "/elsewhere")[0] == 404
    r = host.cli("ship", "show", "nobody", check=False)
    assert r.returncode == 1
    assert "no ship named nobody" in r.stderr


def test_sleep_wake_keeps_state(host):
    host.new_ship(KV, "bob")
    for i in range(20):
        assert host.http("PUT", "/s/bob/k/n%d" % i, b"v%d" % i)[0] in (200, 201)
    slept = host.cli_json("ship", "sleep", "bob")
    assert slept["state"] == "asleep"
    assert slept["snapshot_event"] == 20
    # The next request wakes it from the snapshot.
    assert host.http("GET", "/s/bob/k/n7")[2] == b"v7"
    show = host.cli_json("ship", "show", "bob")
    assert show["state"] == "awake"
    assert show["wake_count"] == 2
    host.cli("ship", "sleep", "bob")
    woke = host.cli_json("ship", "wake", "bob")
    assert woke["state"] == "awake"
    assert host.http("GET", "/s/bob/k/n19")[2] == b"v19"


def test_state_survives_restart(host):
    host.new_ship(KV, "cat")
    host.http("PUT", "/s/cat/k/a", b"1")
    host.cli("ship", "sleep", "cat")
    host.http("PUT", "/s/cat/k/b", b"2")  # after the snapshot: replayed
    assert host.stop() == 0
    host.start()
    show = host.cli_json("ship", "show", "cat")
    assert show["state"] == "asleep"
    assert show["last_event"] == 2
    assert host.http("GET", "/s/cat/k/a")[2] == b"1"
    assert host.http("GET", "/s/cat/k/b")[2] == b"2"


def test_idle_ship_sleeps(host_factory):
    h = host_factory(["--idle-timeout", "200"]).start()
    h.new_ship(KV, "dot")
    h.http("PUT", "/s/dot/k/a", b"1")
    deadline = time.time() + 10
    while time.time() < deadline:
        if h.cli_json("ship", "show", "dot")["state"] == "asleep":
            break
        time.sleep(0.05)
    assert h.cli_json("ship", "show", "dot")["state"] == "asleep"
    assert h.http("GET", "/s/dot/k/a")[2] == b"1"


def test_per_ship_idle_timeout(host):
    host.cli("ship", "new", "--program", KV, "--name", "eve", "--idle-timeout", "150")
    host.http("PUT", "/s/eve/k/a", b"1")
    deadline = time.time() + 10
    while time.time() < deadline and host.cli_json("ship", "show", "eve")["state"] != "asleep":
        time.sleep(0.05)
    assert host.cli_json("ship", "show", "eve")["state"] == "asleep"


def test_send_poke(host):
    host.new_ship(KV, "fay")
    out = host.cli_json("ship", "send", "fay", "put greeting hello")
    assert out["changed"] is True
    assert out["event"] == 1
    assert host.http("GET", "/s/fay/k/greeting")[2] == b"hello"
    r = host.cli("ship", "send", "fay", "nonsense", check=False)
    assert r.returncode == 1
    assert "rejected" in r.stderr


def test_remove(host):
    sid = host.new_ship(KV, "gus")
    host.http("PUT", "/s/gus/k/a", b"1")
    out = host.cli_json("ship", "rm", "gus")
    assert out["removed"] == sid
    assert host.http("GET", "/s/gus/k/a")[0] == 404
    ls = host.cli_json("ship", "ls")
    assert all(s["id"] != sid for s in ls["ships"])
    # The name is free again.
    host.new_ship(KV, "gus")


def test_ls_and_stats(host):
    a = host.new_ship(KV)
    b = host.new_ship(KV, "hal")
    ids = {s["id"] for s in host.cli_json("ship", "ls")["ships"]}
    assert {a, b} <= ids
    text = host.cli("ship", "ls").stdout
    assert "hal" in text and a in text
    host.http("PUT", "/s/hal/k/x", b"1")
    stats = host.cli_json("stats")
    assert stats["ships"] == 2
    assert stats["states"]["awake"] == 1
    assert stats["events_committed"] >= 1


def test_reads_reused_until_a_write(host):
    """kv marks its reads REUSE: the same GET is answered again without the
    program until a write, and never with a value older than an
    acknowledged write."""
    host.new_ship(KV, "rd")
    host.http("PUT", "/s/rd/k/x", b"v1")
    reuses = host.cli_json("stats")["reuses"]
    assert host.http("GET", "/s/rd/k/x")[2] == b"v1"  # computed, then kept
    assert host.http("GET", "/s/rd/k/x")[2] == b"v1"
    assert host.cli_json("stats")["reuses"] == reuses + 1
    # Another header is another request.
    assert host.http("GET", "/s/rd/k/x", headers={"X-A": "1"})[2] == b"v1"
    assert host.cli_json("stats")["reuses"] == reuses + 1
    host.http("PUT", "/s/rd/k/x", b"v2")
    assert host.http("GET", "/s/rd/k/x")[2] == b"v2"

    # Writes and reads at once, over keep-alive connections: a read that
    # starts after a write was acknowledged sees it or a later one.
    acked = [2]
    stop = threading.Event()
    bad = []

    def writer():
        c = http.client.HTTPConnection(host.address, host.port, timeout=30)
        for i in range(3, 200):
            c.request("PUT", "/s/rd/k/x", body=b"v%d" % i)
            r = c.getresponse()
            r.read()
            assert r.status == 200
            acked[0] = i
        stop.set()
        c.close()

    def reader():
        c = http.client.HTTPConnection(host.address, host.port, timeout=30)
        while not stop.is_set():
            floor = acked[0]
            c.request("GET", "/s/rd/k/x")
            r = c.getresponse()
            seen = int(r.read()[1:])
            if seen < floor:
                bad.append((seen, floor))
        c.close()

    threads = [threading.Thread(target=writer)] + \
        [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not bad
    assert host.http("GET", "/s/rd/k/x")[2] == b"v199"
    stats = host.cli_json("stats")
    assert stats["reuses"] > reuses + 1
    assert stats["reuse_bytes"] > 0
    host.cli("ship", "sleep", "rd")
    assert host.cli_json("stats")["reuse_bytes"] == 0


def test_duplicate_name_and_bad_program(host):
    host.new_ship(KV, "ivy")
    r = host.cli("ship", "new", "--program", KV, "--name", "ivy", check=False)
    assert r.returncode == 1 and "exists" in r.stderr
    r = host.cli("ship", "new", "--program", "/nonexistent/prog", check=False)
    assert r.returncode == 1 and "does not exist" in r.stderr
    r = host.cli("ship", "new", "--program", KV, "--name", "Bad/Name", check=False)
    assert r.returncode == 2 and "not valid" in r.stderr


def test_python_program(host):
    """The protocol needs no helper library: a plain Python program works,
    across a sleep (snapshot) and a restart (replay)."""
    import os
    from conftest import ROOT
    prog = os.path.join(ROOT, "programs", "python", "counter.py")
    host.new_ship(prog, "py")
    for i in range(3):
        assert host.http("POST", "/s/py/inc")[2] == b"%d\n" % (i + 1)
    host.cli("ship", "sleep", "py")
    assert host.http("GET", "/s/py/")[2] == b"3\n"
    host.http("POST", "/s/py/inc")
    assert host.stop() == 0
    host.start()
    assert host.http("GET", "/s/py/")[2] == b"4\n"
    assert host.cli_json("ship", "show", "py")["last_event"] == 4
    # Its reads are marked REUSE: the second is answered by the host.
    reuses = host.cli_json("stats")["reuses"]
    assert host.http("GET", "/s/py/")[2] == b"4\n"
    assert host.cli_json("stats")["reuses"] == reuses + 1
    host.http("POST", "/s/py/inc")
    assert host.http("GET", "/s/py/")[2] == b"5\n"


def test_program_change_starts_new_epoch(host, tmp_path):
    """A changed executable boots from the old snapshot when it accepts it;
    one that refuses it cannot wake once the log behind it is gone."""
    import shutil
    prog = tmp_path / "kv"
    shutil.copy(KV, prog)
    host.new_ship(str(prog), "epo")
    host.http("PUT", "/s/epo/k/a", b"1")
    host.cli("ship", "sleep", "epo")
    # A new build of the same program: different bytes, same format.
    with open(prog, "ab") as f:
        f.write(b"\0new build")
    assert host.http("GET", "/s/epo/k/a")[2] == b"1"
    assert host.http("PUT", "/s/epo/k/b", b"2")[0] == 201
    host.cli("ship", "sleep", "epo")
    # A program that cannot read the snapshot, with event 1 truncated (the
    # second snapshot, at 2, truncated what the first stood for).
    assert host.cli_json("ship", "show", "epo")["first_event"] == 2
    from conftest import MISBEHAVE
    shutil.copy(MISBEHAVE, prog)
    code, _, body = host.http("GET", "/s/epo/k/a")
    assert code == 502
    assert b"refused the snapshot" in body


def test_admin_on_tcp_takes_a_token_on_any_address(host_factory):
    import subprocess
    from conftest import BERTH, free_port
    port = free_port()
    h = host_factory(["--admin", "0.0.0.0:%d" % port]).start()
    cmd = [BERTH, "ship", "new", "--program", KV, "--name", "tcp", "--json",
           "--admin", "127.0.0.1:%d" % port]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 1 and "unauthorized" in out.stderr, out.stderr
    token = h.cli("token", "new", "--scope", "operate").stdout.strip()
    out = subprocess.run(cmd + ["--token", token], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "id" in out.stdout


def test_snapshot_every_n_events_truncates_the_log(host_factory):
    h = host_factory(["--snapshot-every", "5"]).start()
    h.new_ship(KV, "tru")
    for i in range(12):
        assert h.http("PUT", "/s/tru/k/n%d" % i, b"v")[0] in (200, 201)
    deadline = time.time() + 10
    show = None
    while time.time() < deadline:
        show = h.cli_json("ship", "show", "tru")
        if show["snapshot_event"] == 10:
            break
        time.sleep(0.05)
    assert show["snapshot_event"] == 10
    # The prior snapshot (at 5) is kept, and the events after it.
    assert show["first_event"] == 6
    assert show["last_event"] == 12
    # Waking from that snapshot plus two logged events gives all twelve keys.
    assert h.stop() == 0
    h.start()
    status, _, body = h.http("GET", "/s/tru/k")
    assert len(json.loads(body)) == 12


def test_restart_after_a_ship_is_removed(host_factory):
    """Removing a ship asks for a raft snapshot that drops the log behind
    it; the entries written while it is taken must survive a restart."""
    h = host_factory().start()
    h.new_ship(KV, "a")
    n = 0
    for round in range(6):
        h.new_ship(KV, "b%d" % round)
        for _ in range(3):
            assert h.http("PUT", "/s/a/k/x%d" % n, b"v%d" % n)[0] == 201
            n += 1
        h.cli("ship", "rm", "b%d" % round)
        for _ in range(3):
            assert h.http("PUT", "/s/a/k/x%d" % n, b"v%d" % n)[0] == 201
            n += 1
    time.sleep(0.5)
    assert h.stop() == 0
    h.start()
    for i in range(n):
        assert h.http("GET", "/s/a/k/x%d" % i)[:3:2] == (200, b"v%d" % i)
    assert h.stop() == 0
