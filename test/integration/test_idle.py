"""Idling: tiers (awake, frozen, asleep), the memory budget and the cap on
running programs (least recently used first), interrupted sleep, alarms
across sleep and restart, a wake storm, and many ships at once."""
import json
import threading
import time

import pytest

from conftest import KV, MISBEHAVE, wait_for


def state(h, ship):
    return h.cli_json("ship", "show", ship)["state"]


def proc_state(pid):
    """The process's state letter, or None once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return line.split()[1]
    except FileNotFoundError:
        pass
    return None


def cgroup_mounts():
    """Mount points of the cgroup2 hierarchy and of the v1 freezer."""
    v2 = v1 = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, opts = fields[sep + 1], fields[-1]
            if fstype == "cgroup2":
                v2 = fields[4]
            elif fstype == "cgroup" and "freezer" in opts.split(","):
                v1 = fields[4]
    return v2, v1


def frozen(pid):
    """Whether the process is stopped: by SIGSTOP, or in a frozen cgroup."""
    if proc_state(pid) == "T":
        return True
    v2, v1 = cgroup_mounts()
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return False
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        try:
            if ctrls == "" and v2 and path != "/":
                with open(v2 + path + "/cgroup.events") as f:
                    if "frozen 1" in f.read():
                        return True
            if "freezer" in ctrls.split(",") and v1:
                with open(v1 + path + "/freezer.state") as f:
                    if f.read().strip() == "FROZEN":
                        return True
        except FileNotFoundError:
            pass
    return False


def test_awake_frozen_asleep(host_factory):
    h = host_factory(["--freeze-timeout", "200", "--idle-timeout", "1500"]).start()
    h.new_ship(KV, "ann")
    assert h.http("PUT", "/s/ann/k/a", b"1")[0] in (200, 201)
    show = h.cli_json("ship", "show", "ann")
    assert show["state"] == "awake"
    assert show["wake_count"] == 1
    pid = show["pid"]
    # Idle past the first timeout: frozen, the process kept but stopped.
    wait_for(lambda: state(h, "ann") == "frozen")
    assert h.cli_json("ship", "show", "ann")["pid"] == pid
    # A frozen process does not run.
    wait_for(lambda: frozen(pid))
    # A request thaws it, without a wake.
    assert h.http("GET", "/s/ann/k/a")[2] == b"1"
    show = h.cli_json("ship", "show", "ann")
    assert show["state"] in ("awake", "frozen")
    assert show["state"] == "frozen" or not frozen(pid)
    assert show["wake_count"] == 1
    assert show["pid"] == pid
    stats = h.cli_json("stats")
    assert stats["thaws"] >= 1
    assert stats["thaw_latency_ms"]["count"] >= 1
    assert stats["wake_latency_ms"]["count"] >= 1
    # Idle past the second: asleep, no process.
    wait_for(lambda: state(h, "ann") == "asleep")
    assert h.cli_json("ship", "show", "ann")["pid"] is None
    wait_for(lambda: proc_state(pid) in (None, "Z"))
    # Asleep and quiet, the ship is its registry entry alone.
    wait_for(lambda: h.cli_json("stats")["live"] == 0)
    assert h.http("GET", "/s/ann/k/a")[2] == b"1"
    assert h.cli_json("ship", "show", "ann")["wake_count"] == 2
    # One look: the ship may freeze between two.
    stats = h.cli_json("stats")
    assert stats["live"] == 1
    assert stats["states"]["awake"] + stats["states"]["frozen"] == 1


def test_sigstop_freezer(host_factory, monkeypatch):
    monkeypatch.setenv("BERTH_FREEZER", "sigstop")
    h = host_factory(["--freeze-timeout", "100", "--idle-timeout", "60000"]).start()
    assert h.cli_json("stats")["freezer"] == "sigstop"
    h.new_ship(KV, "bea")
    h.http("PUT", "/s/bea/k/a", b"1")
    pid = h.cli_json("ship", "show", "bea")["pid"]
    wait_for(lambda: state(h, "bea") == "frozen")
    assert proc_state(pid) == "T" and frozen(pid)
    assert h.http("GET", "/s/bea/k/a")[2] == b"1"
    assert proc_state(pid) != "T"
    # A frozen ship sleeps on request: thawed, snapshot, stopped.
    wait_for(lambda: state(h, "bea") == "frozen")
    assert h.cli_json("ship", "sleep", "bea")["state"] == "asleep"


def test_freeze_timeout_per_ship(host_factory):
    h = host_factory(["--freeze-timeout", "0", "--idle-timeout", "60000"]).start()
    h.cli("ship", "new", "--program", KV, "--name", "cold", "--freeze-timeout", "100")
    h.new_ship(KV, "warm")
    h.http("GET", "/s/cold/k")
    h.http("GET", "/s/warm/k")
    wait_for(lambda: state(h, "cold") == "frozen")
    assert state(h, "warm") == "awake"
    assert h.cli_json("ship", "show", "cold")["freeze_timeout_ms"] == 100
    assert h.cli_json("ship", "show", "warm")["freeze_timeout_ms"] == 0


def test_cap_sleeps_least_recently_used(host_factory):
    h = host_factory(["--max-awake", "3", "--freeze-timeout", "0"]).start()
    for n in "abcde":
        h.new_ship(KV, n)
    for n in "abc":
        assert h.http("GET", "/s/%s/k" % n)[0] == 200
    assert h.http("GET", "/s/a/k")[0] == 200  # a is used again: b is oldest
    assert h.http("GET", "/s/d/k")[0] == 200  # d needs room
    wait_for(lambda: state(h, "b") == "asleep")
    assert [state(h, n) for n in "acd"] == ["awake"] * 3
    assert h.http("GET", "/s/e/k")[0] == 200
    wait_for(lambda: state(h, "c") == "asleep")
    assert [state(h, n) for n in "ade"] == ["awake"] * 3
    stats = h.cli_json("stats")
    assert stats["evictions"] == 2
    assert stats["programs_running"] <= 3


def test_memory_budget_sleeps_least_recently_used(host_factory):
    # Measure what one kv program costs on this machine, then give the host
    # room for three and a half.
    h = host_factory(["--freeze-timeout", "0"]).start()
    h.new_ship(KV, "probe")
    h.http("GET", "/s/probe/k")
    mem = wait_for(lambda: h.cli_json("ship", "show", "probe")["memory_bytes"])
    h.stop()
    budget_mb = 3.5 * mem / 1048576.0
    h.extra = ["--freeze-timeout", "0", "--max-awake-mb", "%.4f" % budget_mb]
    h.start()
    for n in "abcd":
        h.new_ship(KV, n)
    for n in "abc":
        assert h.http("GET", "/s/%s/k" % n)[0] == 200
    assert [state(h, n) for n in "abc"] == ["awake"] * 3
    assert h.http("GET", "/s/a/k")[0] == 200
    assert h.http("GET", "/s/d/k")[0] == 200
    # Four are over the budget: b, the least recently used, sleeps.
    wait_for(lambda: state(h, "b") == "asleep")
    assert [state(h, n) for n in "acd"] == ["awake"] * 3
    stats = h.cli_json("stats")
    assert stats["awake_memory_bytes"] <= stats["max_awake_bytes"]


def test_new_event_interrupts_sleep(host_factory):
    h = host_factory(["--freeze-timeout", "0"]).start()
    h.new_ship(MISBEHAVE, "mo")
    assert h.http("POST", "/s/mo/count")[0] == 200
    assert h.http("POST", "/s/mo/slowsnap/1500")[0] == 200
    result = {}

    def sleep():
        result["sleep"] = h.cli_json("ship", "sleep", "mo")

    t = threading.Thread(target=sleep)
    t.start()
    wait_for(lambda: state(h, "mo") == "sleeping")
    # The request arrives while the snapshot is being taken: it is served by
    # the same process, not after a stop and a new wake.
    status, _, body = h.http("GET", "/s/mo/")
    assert (status, body) == (200, b"1\n")
    t.join(30)
    assert result["sleep"]["state"] == "awake"
    show = h.cli_json("ship", "show", "mo")
    assert show["state"] == "awake"
    assert show["wake_count"] == 1
    assert show["snapshot_event"] == 1


def alarm_info(h, ship):
    status, _, body = h.http("GET", "/s/%s/alarm" % ship)
    assert status == 200
    return json.loads(body)


def test_alarm_wakes_sleeping_ship(host):
    host.new_ship(KV, "al")
    status, _, body = host.http("PUT", "/s/al/alarm", b"700")
    assert status == 200
    assert host.cli_json("ship", "show", "al")["alarm_ns"] == int(body)
    assert host.cli_json("ship", "sleep", "al")["state"] == "asleep"
    # The host wakes it when the time comes and delivers a TIMER event.
    wait_for(lambda: host.cli_json("ship", "show", "al")["wake_count"] == 2)
    wait_for(lambda: host.cli_json("stats")["alarms_fired"] == 1)
    assert alarm_info(host, "al") == {"alarm_ns": 0, "fired": 1}
    assert host.cli_json("ship", "show", "al")["alarm_ns"] == 0
    assert host.cli_json("stats")["alarms"] == 0


def test_alarm_survives_restart_and_fires_once(host):
    host.new_ship(KV, "rex")
    host.new_ship(KV, "sam")
    host.http("PUT", "/s/rex/alarm", b"1500")     # due while the host is down
    host.http("PUT", "/s/sam/alarm", b"600000")   # due long after
    assert host.stop() == 0
    time.sleep(2)
    host.start()
    # A missed alarm fires once on start.
    wait_for(lambda: alarm_info(host, "rex")["fired"] == 1)
    assert alarm_info(host, "rex")["alarm_ns"] == 0
    assert alarm_info(host, "sam")["fired"] == 0
    sam_alarm = host.cli_json("ship", "show", "sam")["alarm_ns"]
    assert sam_alarm > 0
    # ... and never again: its TIMER event was logged.
    assert host.stop() == 0
    host.start()
    time.sleep(0.5)
    assert alarm_info(host, "rex") == {"alarm_ns": 0, "fired": 1}
    assert host.cli_json("ship", "show", "sam")["alarm_ns"] == sam_alarm
    assert host.cli_json("stats")["alarms"] == 1


def test_wake_storm_queues(host_factory):
    n = 300
    # Three hundred clients, all from one address here.
    h = host_factory(["--max-awake", "16", "--freeze-timeout", "0",
                      "--max-conns-per-addr", "0"]).start()
    h.cli("ship", "new", "--program", KV, "--name", "st", "--count", str(n))
    results = [None] * n
    barrier = threading.Barrier(n)

    def hit(i):
        barrier.wait()
        try:
            results[i] = h.http("GET", "/s/st-%d/k" % (i + 1), timeout=120)[0]
        except Exception as e:  # noqa: BLE001 - any failure counts
            results[i] = repr(e)

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert results == [200] * n
    stats = h.cli_json("stats")
    # Every evicted ship let go of its live object.
    assert stats["live"] == stats["programs_running"]
    assert stats["wakes"] == n
    assert stats["programs_running"] <= 16
    assert stats["evictions"] >= n - 16
    assert stats["wake_queue"] == 0
    assert stats["wake_latency_ms"]["count"] == n


def test_count_creates_many_and_lists_in_pages(host):
    r = host.cli("ship", "new", "--program", KV, "--name", "fleet", "--count", "2500", "--ids")
    ids = r.stdout.split()
    assert len(ids) == 2500 and len(set(ids)) == 2500
    show = host.cli_json("ship", "show", "fleet-2500")
    assert show["id"] == ids[-1]
    assert show["state"] == "asleep"
    # The same names again with the same program: nothing to do (a call
    # that was cut short resumes this way); with another program, refused
    # whole.
    again = host.cli_json("ship", "new", "--program", KV, "--name", "fleet", "--count", "3")
    assert (again["created"], again["existing"]) == (0, 3)
    assert again["ids"] == ids[:3]
    r = host.cli("ship", "new", "--program", MISBEHAVE, "--name", "fleet", "--count", "3",
                 check=False)
    assert r.returncode == 1 and "fleet-1 exists with another program" in r.stderr
    # The API pages; the CLI follows the pages.
    page = json.loads(host.cli("ship", "ls", "--json", "--limit", "10").stdout)
    assert len(page["ships"]) == 10
    listed = host.cli_json("ship", "ls")["ships"]
    assert [s["id"] for s in listed] == ids
    lines = host.cli("ship", "ls").stdout.splitlines()
    assert len(lines) == 2501 and lines[0].split()[0] == "ID"
    # A ship of the batch works, and the registry is rebuilt on restart.
    assert host.http("PUT", "/s/fleet-7/k/x", b"1")[0] in (200, 201)
    assert host.stop() == 0
    host.start()
    assert host.cli_json("stats")["ships"] == 2500
    assert host.http("GET", "/s/%s/k/x" % ids[6])[2] == b"1"
    assert host.cli_json("ship", "show", ids[6])["name"] == "fleet-7"


def test_bad_idle_options(host_factory, tmpdir_path):
    import subprocess
    from conftest import BERTH
    for args in (["--max-awake-mb", "lots"], ["--freeze-timeout", "-1"],
                 ["--max-awake", "x"]):
        r = subprocess.run([BERTH, "serve", "--data", tmpdir_path] + args,
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 2
        assert "needs a" in r.stderr
    h = host_factory().start()
    for args in (["--count", "0"], ["--count", "2000000"], ["--count", "x"],
                 ["--freeze-timeout", "soon"]):
        r = h.cli("ship", "new", "--program", KV, *args, check=False)
        assert r.returncode == 2, args
    r = h.cli("ship", "ls", "--limit", "0", check=False)
    assert r.returncode == 2
    status, _, body = h.http("GET", "/s/nobody/k")
    assert status == 404


def test_alarm_is_logged_even_when_unchanged(host):
    host.new_ship(MISBEHAVE, "mal")
    assert host.http("POST", "/s/mal/alarm/600000")[0] == 200
    show = host.cli_json("ship", "show", "mal")
    # The program said "unchanged", but the alarm is durable state.
    assert show["last_event"] == 1
    assert show["alarm_ns"] > 0
    assert host.stop() == 0
    host.start()
    assert host.cli_json("ship", "show", "mal")["alarm_ns"] == show["alarm_ns"]
    # Reads stay unlogged.
    assert host.http("GET", "/s/mal/")[2] == b"0\n"
    assert host.cli_json("ship", "show", "mal")["last_event"] == 1


def test_malformed_alarm_kills_the_program_not_the_host(host):
    host.new_ship(MISBEHAVE, "bad")
    assert host.http("POST", "/s/bad/count")[0] == 200
    status, _, body = host.http("POST", "/s/bad/badalarm")
    assert status == 502
    assert b"ALARM" in body
    # The ship wakes again from its log; the host never set an alarm.
    assert host.http("GET", "/s/bad/")[2] == b"1\n"
    show = host.cli_json("ship", "show", "bad")
    assert show["alarm_ns"] == 0 and show["last_event"] == 1
