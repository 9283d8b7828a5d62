"""Caps (docs/api.md, "Caps"): hostile programs beside a normal kv ship on
a real host. A memory hog is killed at its cap and its event answered 503
memory_limit, a fork bomb stays within its pids cap, a CPU burner is killed
at the per-event CPU limit with 504 cpu_limit; the caps are read back from
the programs' cgroups, and the host and the normal ship answer throughout.
An account's caps bound its ships' programs, running ones at once, on
every host of a cluster and over a restart. Nothing outlives the test
(conftest.stop_hosts)."""
import json
import threading
import time

from conftest import KV, MISBEHAVE, admin_tcp, free_port, store_query, wait_for

FAST = ["--freeze-timeout", "0", "--event-cpu-ms", "1000"]


def error_of(body):
    return json.loads(body)["error"]


def caps_of(h, ship):
    return h.cli_json("ship", "show", ship)["caps"]


def moved(pid):
    """Whether program pid is in its own memory cgroup (cgroup v1), or its
    own cgroup (v2): named after it."""
    with open("/proc/%d/cgroup" % pid) as f:
        lines = f.read().splitlines()
    own = [l for l in lines if l.split(":")[1] in ("memory", "")]
    return any(l.endswith("/%d" % pid) for l in own if ":memory:" in l) or \
        all(l.endswith("/%d" % pid) for l in own)


class Calm:
    """A normal kv ship written and read in a loop while the attacks run:
    every request must succeed."""

    def __init__(self, h, ship):
        self.h, self.ship = h, ship
        self.failures = []
        self.done = 0
        self.stop_flag = False
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        i = 0
        while not self.stop_flag:
            i += 1
            st, _, _ = self.h.http("PUT", "/s/%s/k/n" % self.ship, str(i).encode(),
                                   timeout=10)
            st2, _, body = self.h.http("GET", "/s/%s/k/n" % self.ship, timeout=10)
            if st not in (200, 201, 204) or st2 != 200 or body != str(i).encode():
                self.failures.append((st, st2, body))
            self.done += 1
            time.sleep(0.01)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag = True
        self.t.join(30)
        assert not self.failures, self.failures[:5]
        assert self.done > 0


def test_caps_hold_beside_a_normal_ship(host_factory):
    h = host_factory(FAST).start()
    stats = h.cli_json("stats")
    # A host without cgroup controllers it may write runs programs
    # uncapped: that is a missing dependency here, not a pass.
    assert stats["caps"] in ("cgroup1", "cgroup2"), stats["caps"]
    assert "caps" in h.cli("stats").stdout
    h.new_ship(KV, "calm")
    h.new_ship(MISBEHAVE, "hog", "--memory", "48M")
    h.new_ship(MISBEHAVE, "bomb", "--pids", "16")
    h.new_ship(MISBEHAVE, "burner", "--cpu", "0.5")
    assert caps_of(h, "hog")["memory_bytes"] == 48 << 20
    assert caps_of(h, "hog")["in_force"]["memory_bytes"] == 48 << 20
    assert caps_of(h, "bomb")["in_force"]["pids"] == 16
    assert caps_of(h, "burner")["in_force"]["cpu_millis"] == 500
    with Calm(h, "calm"):
        # The hog: 16 MiB fits, and its cgroup saw it; 96 MiB does not.
        assert h.http("POST", "/s/hog/count")[0] == 200
        # The move into its own cgroups follows the start by a few
        # milliseconds (more on a busy machine): the hog waits for it.
        pid = h.cli_json("ship", "show", "hog")["pid"]
        wait_for(lambda: moved(pid), timeout=10)
        st, _, body = h.http("GET", "/s/hog/hog/16")
        assert st == 200, body
        use = caps_of(h, "hog")["use"]
        # Pages its allocator reuses from before its move into its cgroup
        # stay charged to staging (docs/design.md, "Caps"): most of the
        # 16 MiB is counted, not always all.
        assert 8 << 20 <= use["memory_peak_bytes"] <= 48 << 20, use
        st, _, body = h.http("GET", "/s/hog/hog/96")
        assert st == 503, body
        err = error_of(body)
        assert err["code"] == "memory_limit", err
        assert "memory cap" in err["message"]
        # It starts again from its last committed state.
        st, _, body = h.http("GET", "/s/hog/")
        assert st == 200 and body.strip() == b"1", body
        assert "over its memory cap" in h.logs()

        # The fork bomb: its forks past the cap fail, the program lives.
        # Like the hog it waits for its move: until then it is held by
        # staging's shared cap instead (test_fork_bomb_from_the_first_event).
        woken_and_moved(h, "bomb")
        st, _, body = h.http("GET", "/s/bomb/bomb")
        assert st == 200, body
        made = int(body.split()[1])
        assert 1 <= made <= 15, body  # the program is one of the 16
        use = caps_of(h, "bomb")["use"]
        assert use["pids"] <= 16 and use["pids_peak"] <= 16, use
        assert h.http("GET", "/s/bomb/")[0] == 200

        # The burner: killed at the per-event CPU limit; at half a core,
        # a second of CPU takes two of wall-clock time.
        t0 = time.time()
        st, _, body = h.http("GET", "/s/burner/burn")
        took = time.time() - t0
        assert st == 504, body
        assert error_of(body)["code"] == "cpu_limit"
        assert 1.5 < took < 8, took
        assert h.http("GET", "/s/burner/")[0] == 200
    # The host lives on, and says what it caps with.
    assert h.http("GET", "/s/calm/k/n")[0] == 200
    assert h.proc.poll() is None


def test_caps_bad_values(host_factory):
    h = host_factory(FAST).start()
    for args in (["--memory", "1K"], ["--memory", "lots"], ["--cpu", "0"],
                 ["--cpu", "x"], ["--pids", "1"], ["--pids", "-3"]):
        if args == ["--cpu", "0"]:
            continue  # "0" is "none": no cap of its own
        r = h.cli("ship", "new", "--program", KV, *args, check=False)
        assert r.returncode == 2 and r.stdout == "", (args, r.stderr)
    st, body = h.admin("POST", "/v1/ships", {"program": KV, "memory": "1K"})
    assert st == 400 and "memory" in body["error"]["message"]
    st, body = h.admin("POST", "/v1/ships", {"program": KV, "cpu": [1]})
    assert st == 400 and "cpu" in body["error"]["message"]
    st, body = h.admin("POST", "/v1/ships",
                       {"program": KV, "name": "ok", "memory": 64 << 20,
                        "cpu": 0.25, "pids": 8})
    assert st == 201, body
    c = caps_of(h, "ok")
    assert (c["memory_bytes"], c["cpu_millis"], c["pids"]) == (64 << 20, 250, 8)
    # The host's defaults cap what a ship asks beyond them.
    st, _ = h.admin("POST", "/v1/ships", {"program": KV, "name": "big",
                                          "memory": "4G"})
    assert st == 201
    assert caps_of(h, "big")["in_force"]["memory_bytes"] == 512 << 20
    r = h.cli("serve", "--memory", "x", check=False)
    assert r.returncode == 2 and "--memory" in r.stderr


def test_resize_a_live_ship(host_factory):
    h = host_factory(FAST).start()
    h.new_ship(KV, "calm")
    h.new_ship(MISBEHAVE, "hog", "--memory", "64M")
    with Calm(h, "calm"):
        assert h.http("POST", "/s/hog/count")[0] == 200
        assert h.http("GET", "/s/hog/hog/8")[0] == 200
        pid = h.cli_json("ship", "show", "hog")["pid"]
        # Down to 32M on the running program: 40 MiB no longer fits.
        v = h.cli_json("ship", "resize", "hog", "--memory", "32M", "--pids",
                       "64")
        assert "warning" not in v, v
        assert v["caps"]["memory_bytes"] == 32 << 20
        assert v["caps"]["in_force"]["pids"] == 64
        assert v["pid"] == pid  # the same program, not a new one
        st, _, body = h.http("GET", "/s/hog/hog/40")
        assert st == 503 and error_of(body)["code"] == "memory_limit", body
        assert h.http("GET", "/s/hog/")[2].strip() == b"1"
        # Up to 96M: it fits again, and stays so over a restart.
        out = h.cli("ship", "resize", "hog", "--memory", "96M").stdout
        assert "memory 96M" in out, out
        assert h.http("GET", "/s/hog/hog/40")[0] == 200
        h.cli("ship", "sleep", "hog")
    h.stop()
    h.start()
    assert caps_of(h, "hog")["memory_bytes"] == 96 << 20
    assert h.http("GET", "/s/hog/hog/40")[0] == 200
    # none lifts the ship's own cap: the host's is in force.
    v = h.cli_json("ship", "resize", "hog", "--memory", "none")
    assert v["caps"]["memory_bytes"] == 0
    assert v["caps"]["in_force"]["memory_bytes"] == 512 << 20
    # Bad requests change nothing.
    r = h.cli("ship", "resize", "hog", check=False)
    assert r.returncode == 2 and "at least one" in r.stderr
    r = h.cli("ship", "resize", "hog", "--cpu", "lots", check=False)
    assert r.returncode == 2 and "--cpu" in r.stderr
    st, body = h.admin("POST", "/v1/ships/hog/resize", {"memory": "9Q"})
    assert st == 400, body
    st, body = h.admin("POST", "/v1/ships/hog/resize", {"colour": "red"})
    assert st == 400, body
    st, body = h.admin("POST", "/v1/ships/nobody/resize", {"memory": "8M"})
    assert st == 404, body
    assert caps_of(h, "hog")["memory_bytes"] == 0


def test_fork_bomb_from_the_first_event(host_factory):
    """A fork bomb that starts with the program's first event, before its
    own cgroups are made: the staging cgroup holds it (at most
    CGCAPS_STAGE_PIDS, 64, for every program not yet moved), the move takes
    its whole tree, the per-event CPU limit ends it, and the host starts
    programs again once the bomb's leftovers are gone."""
    h = host_factory(FAST).start()
    h.new_ship(KV, "calm")
    h.new_ship(MISBEHAVE, "loop", "--pids", "16")
    seen = []
    done = []

    def bomb():
        done.append(h.http("GET", "/s/loop/bombloop"))

    with Calm(h, "calm"):
        t = threading.Thread(target=bomb)
        t.start()
        while t.is_alive():
            use = caps_of(h, "loop").get("use")
            if use:
                seen.append(use)
            time.sleep(0.05)
        t.join()
        st, _, body = done[0]
        # Its CPU limit, or, on a machine too busy to give it that much CPU
        # in time, the wall-clock limit: either way the event ends.
        assert st == 504 and error_of(body)["code"] in ("cpu_limit", "timeout"), body
        # Moved into its own cgroups, it is held there; a bomb whose tree
        # changes faster than the move can be held by staging's shared cap
        # until its event's limit ends it (seen empty then).
        if seen:
            assert max(u["pids"] for u in seen) <= 64, seen[-1]
            assert max(u["pids_peak"] for u in seen) <= 64, seen[-1]
        # Nothing of it is left in the way for long: the next wake works.
        # Until the bomb's zombies are reaped (by the machine's first
        # process, late on some machines) their pids stay charged to
        # staging on cgroup v1, and a start there may find no pid left
        # (docs/performance.md, "Caps"): refused with a clear 502, never
        # hung, and the host goes on.
        deadline = time.time() + 15
        while True:
            st, _, body = h.http("GET", "/s/loop/")
            if st == 200 or time.time() > deadline:
                break
            assert st == 502 and b"Resource temporarily unavailable" in body, \
                body
            time.sleep(0.2)
        assert st == 200, body


def woken_and_moved(h, ship):
    """Wake ship's program and wait for its move into its own cgroups (what
    it touches before stays charged to staging); its pid."""
    st, _, body = h.http("POST", "/s/%s/count" % ship)
    assert st == 200, body
    pid = h.cli_json("ship", "show", ship)["pid"]
    wait_for(lambda: moved(pid), timeout=10)
    return pid


def account_caps(h, name):
    return h.cli_json("account", "show", name)["caps"]


def test_account_caps(host_factory):
    port = free_port()
    h = host_factory(FAST + ["--admin", "127.0.0.1:%d" % port]).start()
    alice = h.cli("account", "new", "alice").stdout.strip()
    h.cli("account", "new", "bob")
    for ship, account in (("ahog", "alice"), ("bhog", "bob")):
        h.cli("ship", "new", "--program", MISBEHAVE, "--name", ship,
              "--account", account)
    h.new_ship(KV, "calm")
    assert account_caps(h, "alice") == {
        "memory_bytes": 0, "cpu_millis": 0, "pids": 0,
        "in_force": {"memory_bytes": 512 << 20, "cpu_millis": 1000,
                     "pids": 256}}
    with Calm(h, "calm"):
        # alice's hog runs before its account is capped: the cap reaches
        # the running program, not only its next start.
        pid = woken_and_moved(h, "ahog")
        assert h.http("GET", "/s/ahog/hog/8")[0] == 200
        v = h.cli_json("account", "limit", "alice", "--memory", "48M",
                       "--pids", "32")
        assert v["caps"] == {
            "memory_bytes": 48 << 20, "cpu_millis": 0, "pids": 32,
            "in_force": {"memory_bytes": 48 << 20, "cpu_millis": 1000,
                         "pids": 32}}, v["caps"]
        c = caps_of(h, "ahog")
        assert c["memory_bytes"] == 0 and c["account"]["memory_bytes"] == 48 << 20
        assert c["in_force"] == {"memory_bytes": 48 << 20, "cpu_millis": 1000,
                                 "pids": 32}, c
        assert c["from"] == {"memory_bytes": "account", "cpu_millis": "host",
                             "pids": "account"}, c
        assert "account caps put on running programs" in h.logs()
        assert h.cli_json("ship", "show", "ahog")["pid"] == pid
        # 96 MiB: the host's 512M would allow it, alice's 48M does not.
        st, _, body = h.http("GET", "/s/ahog/hog/96")
        assert st == 503, body
        err = error_of(body)
        assert err["code"] == "memory_limit" and "memory cap" in err["message"]
        assert h.http("GET", "/s/ahog/")[2].strip() == b"1"
        # bob's hog is untouched: the host's cap is its.
        woken_and_moved(h, "bhog")
        st, _, body = h.http("GET", "/s/bhog/hog/96")
        assert st == 200, body
        c = caps_of(h, "bhog")
        assert c["in_force"]["memory_bytes"] == 512 << 20
        assert c["from"]["memory_bytes"] == "host"
        # A ship's own cap cannot lift its account's, only go below it.
        h.cli("ship", "new", "--program", KV, "--name", "abig", "--account",
              "alice", "--memory", "256M", "--pids", "8")
        c = caps_of(h, "abig")
        assert c["in_force"]["memory_bytes"] == 48 << 20
        assert c["from"] == {"memory_bytes": "account", "cpu_millis": "host",
                             "pids": "ship"}, c
        out = h.cli("ship", "show", "abig").stdout
        assert "caps:            memory 48M (account), cpu 1.000 (host), " \
            "pids 8 (ship)" in out, out
    out = h.cli("account", "show", "alice").stdout
    assert "cap memory:                       48M\n" in out, out
    assert "cap cpu:                          none (the host's 1.000 in " \
        "force)" in out, out
    ls = h.cli("account", "ls").stdout.splitlines()
    assert "MEMORY  CPU     PIDS" in ls[0], ls
    row = [l for l in ls if " alice " in l][0]
    assert "48M     -       32" in row, ls
    assert {a["name"]: a["caps"]["memory_bytes"]
            for a in h.cli_json("account", "ls")["accounts"]} == \
        {"anonymous": 0, "alice": 48 << 20, "bob": 0}

    # An account's token cannot set caps: the operator's alone.
    st, _, v = admin_tcp(port, "POST", "/v1/accounts/alice/limits", alice,
                         {"memory": "1G"})
    assert st == 403, v
    # Bad values change nothing.
    for args in (["--memory", "1K"], ["--cpu", "x"], ["--pids", "1"]):
        r = h.cli("account", "limit", "alice", *args, check=False)
        assert r.returncode == 2 and args[0] in r.stderr and r.stdout == "", r
    for body in ({"memory": "2K"}, {"cpu": [1]}, {"pids": -3}):
        st, v = h.admin("POST", "/v1/accounts/alice/limits", body)
        assert st == 400, v
    assert account_caps(h, "alice")["memory_bytes"] == 48 << 20

    # The caps are the store's: after a restart the hog's next start has
    # them.
    h.cli("ship", "sleep", "ahog")
    h.stop()
    h.start()
    assert account_caps(h, "alice")["memory_bytes"] == 48 << 20
    woken_and_moved(h, "ahog")
    st, _, body = h.http("GET", "/s/ahog/hog/96")
    assert st == 503 and error_of(body)["code"] == "memory_limit", body
    # Lifted: the host's cap is in force again, on the running program too.
    woken_and_moved(h, "ahog")
    v = h.cli_json("account", "limit", "alice", "--memory", "none",
                   "--pids", "default")
    assert v["caps"]["memory_bytes"] == 0 and v["caps"]["pids"] == 0
    c = caps_of(h, "ahog")
    assert c["in_force"]["memory_bytes"] == 512 << 20
    assert c["from"]["memory_bytes"] == "host"
    assert h.http("GET", "/s/ahog/hog/96")[0] == 200
    assert h.proc.poll() is None


def test_caps_refused_live(host_factory):
    """A cap below what a running program holds is recorded, the kernel
    refuses it on the running program, and the answer says so: the program
    keeps its old caps until its next wake, which has the new ones."""
    h = host_factory(FAST).start()
    h.cli("account", "new", "alice")
    h.cli("ship", "new", "--program", MISBEHAVE, "--name", "hog",
          "--account", "alice")
    pid = woken_and_moved(h, "hog")
    assert h.http("GET", "/s/hog/hog/40")[0] == 200  # held: no swap here
    r = h.cli("ship", "resize", "hog", "--memory", "16M")
    assert "the kernel refused" in r.stderr, r
    v = h.cli_json("ship", "resize", "hog", "--memory", "512M")
    assert "warning" not in v, v
    r = h.cli("account", "limit", "alice", "--memory", "16M")
    assert "berth: recorded, but 1 running program keeps its old caps " \
        "until its next wake: the kernel refused the new ones" in r.stderr, r
    v = h.cli_json("account", "limit", "alice", "--memory", "20M")
    assert "1 running program keeps its old caps" in v["warning"], v
    assert "a running program keeps its old caps" in h.logs()
    assert h.cli_json("ship", "show", "hog")["pid"] == pid
    # Lifted above what it holds: no warning.
    v = h.cli_json("account", "limit", "alice", "--memory", "256M")
    assert "warning" not in v, v
    v = h.cli_json("account", "limit", "alice", "--memory", "16M")
    assert "warning" in v, v
    # Its next wake starts under the account's 16M.
    h.cli("ship", "sleep", "hog")
    woken_and_moved(h, "hog")
    st, _, body = h.http("GET", "/s/hog/hog/40")
    assert st == 503 and error_of(body)["code"] == "memory_limit", body


def test_account_caps_replicate(cluster_factory):
    c = cluster_factory(3, FAST).start()
    lead = c.leader()
    lead.cli("account", "new", "alice")
    lead.cli("ship", "new", "--program", MISBEHAVE, "--name", "ahog",
             "--account", "alice")
    lead.cli("account", "limit", "alice", "--memory", "48M", "--cpu", "0.5")
    c.wait_caught_up()
    # A follower that comes to lead runs the account's programs under them,
    # from its own store.
    c.kill9(lead)
    new = c.leader(exclude=(lead,))
    cap = new.cli_json("ship", "show", "ahog")["caps"]
    assert cap["in_force"]["memory_bytes"] == 48 << 20
    assert cap["from"]["cpu_millis"] == "account"
    woken_and_moved(new, "ahog")
    st, _, body = new.http("GET", "/s/ahog/hog/96")
    assert st == 503 and error_of(body)["code"] == "memory_limit", body
    # Every host's store holds them, applied from the log (read once the
    # hosts are stopped: a running host's store may hold an open batch; the
    # killed one replays its log at its start).
    c.restart(lead)
    c.wait_caught_up()
    for x in c.hosts:
        if x.running():
            assert x.stop() == 0, x.logs()
    for x in c.hosts:
        rows = store_query(x.data, "SELECT cap_memory, cap_cpu, cap_pids "
                           "FROM accounts WHERE name = 'alice'")
        assert rows == [(48 << 20, 500, 0)], (x.data, rows)
