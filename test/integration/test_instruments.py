"""The host's instruments: structured log lines with levels, Prometheus
metrics at /metrics, programs' stderr kept per ship (`berth ship logs`), and
hosts' heartbeats in `berth cluster ls`."""
import base64
import json
import os
import re
import subprocess
import threading
import time

from conftest import BERTH, KV, MISBEHAVE, free_port, wait_for


def log_lines(h):
    with open(h.log_path, "rb") as f:
        return f.read().decode(errors="replace").splitlines()


def ship_lines(h, sid, msg):
    want = 'msg="%s"' % msg
    return [l for l in log_lines(h) if want in l and ("ship=%s" % sid) in l]


def test_info_logs_a_wake_and_a_sleep_and_warn_does_not(host_factory):
    h = host_factory(["--log-level", "info"], name="info").start()
    sid = h.new_ship(KV, "ann")
    assert h.http("PUT", "/s/ann/k/a", b"1")[0] in (200, 201)
    h.cli("ship", "sleep", "ann")
    wait_for(lambda: ship_lines(h, sid, "ship asleep"))
    waking = ship_lines(h, sid, "ship waking")
    assert len(waking) == 1, log_lines(h)
    assert "from=asleep" in waking[0]
    assert re.match(r'time=\S+Z level=info msg="ship waking" ship=\S+ from=asleep$',
                    waking[0]), waking[0]
    assert ship_lines(h, sid, "ship awake")
    assert ship_lines(h, sid, "ship sleeping")

    w = host_factory(["--log-level", "warn"], name="warn").start()
    sid = w.new_ship(KV, "bob")
    assert w.http("PUT", "/s/bob/k/a", b"1")[0] in (200, 201)
    w.cli("ship", "sleep", "bob")
    assert w.cli_json("ship", "show", "bob")["state"] == "asleep"
    w.stop()
    lines = log_lines(w)
    assert not [l for l in lines if "level=info" in l], lines
    assert not [l for l in lines if "ship=" + sid in l], lines


def test_programs_stderr_lines_follow_the_log_level(host_factory):
    """A program's stderr lines are the host log's at level info: written
    at info, left out at warn (and not counted against their limit), and
    kept in the ship's own log at either."""
    for level, shown in (("info", True), ("warn", False)):
        h = host_factory(["--log-level", level], name="stderr-" + level).start()
        h.new_ship(MISBEHAVE, "talk")
        assert h.http("GET", "/s/talk/stderr/1")[0] == 200
        # Its end reads what is left in the pipe.
        h.cli("ship", "sleep", "talk")
        assert set(h.cli("ship", "logs", "talk", "--bytes", "100").stdout) == \
            {"e", "\n"}
        copied = [l for l in log_lines(h) if l.startswith("[talk] ")]
        dropped = h.cli_json("stats")["stderr_dropped_bytes"]
        if shown:
            assert len(copied) > 1000 and dropped > 0, (len(copied), dropped)
        else:
            assert copied == [] and dropped == 0, (copied[:3], dropped)


def test_a_bad_log_level_is_refused(host_factory):
    h = host_factory(["--log-level", "loud"], name="bad")
    r = subprocess.run([BERTH, "serve", "--data", h.data, "--log-level", "loud"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "--log-level" in r.stderr and r.stdout == ""


# --- /metrics ---

SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'           # name
    r'(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*)?\})?'
    r' (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def parse_metrics(text):
    """Parse Prometheus text strictly: every line a # HELP, a # TYPE or a
    sample of the family last typed; return {name: {"type", "help",
    "samples": [(name, {labels}, value)]}}. Histograms are checked: buckets
    cumulative, le ascending, +Inf last and equal to _count, a _sum."""
    assert text.endswith("\n"), "the text ends with a newline"
    families = {}
    current = None
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            assert name not in families, "family %s twice" % name
            assert help_, line
            families[name] = {"help": help_, "type": None, "samples": []}
            current = name
            continue
        if line.startswith("# TYPE "):
            name, _, typ = line[7:].partition(" ")
            assert name == current and families[name]["type"] is None, line
            assert typ in ("counter", "gauge", "histogram"), line
            families[name]["type"] = typ
            continue
        assert not line.startswith("#"), "unknown comment: %r" % line
        m = SAMPLE.match(line)
        assert m, "not a sample: %r" % line
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        fam = families[current]
        allowed = {current}
        if fam["type"] == "histogram":
            allowed = {current + "_bucket", current + "_sum", current + "_count"}
        assert name in allowed, "sample %s outside its family %s" % (name, current)
        v = float(value)  # +Inf, NaN and numbers parse
        if fam["type"] == "counter":
            assert name.endswith("_total") and v >= 0, line
        fam["samples"].append((name, dict(LABEL.findall(labels)), v))
    for name, fam in families.items():
        assert fam["type"], "%s has no TYPE" % name
        if fam["type"] != "histogram":
            continue
        buckets = [(s[1]["le"], s[2]) for s in fam["samples"] if s[0] == name + "_bucket"]
        assert buckets and buckets[-1][0] == "+Inf", name
        les = [float(le) for le, _ in buckets]
        assert les == sorted(les) and len(set(les)) == len(les), name
        counts = [c for _, c in buckets]
        assert counts == sorted(counts), "%s buckets not cumulative: %s" % (name, buckets)
        count = [s[2] for s in fam["samples"] if s[0] == name + "_count"]
        total = [s[2] for s in fam["samples"] if s[0] == name + "_sum"]
        assert count == [counts[-1]] and len(total) == 1 and total[0] >= 0, name
    return families


def value(fams, name, **labels):
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    fam = fams.get(name) or fams[base]
    for n, l, v in fam["samples"]:
        if n == name and all(l.get(k) == str(x) for k, x in labels.items()):
            return v
    raise KeyError("%s%s" % (name, labels))


def scrape(h):
    status, v = h.admin("GET", "/metrics")
    assert status == 200, v
    return parse_metrics(v.decode())


def test_metrics_parse_strictly_and_move(host_factory):
    h = host_factory(["--admin", "127.0.0.1:%d" % free_port()], name="m").start()
    sid = h.new_ship(KV, "ann")
    before = scrape(h)
    for name in ("berth_ships", "berth_wakes_total", "berth_thaws_total",
                 "berth_wake_seconds", "berth_commit_seconds",
                 "berth_events_committed_total", "berth_proposals_in_flight",
                 "berth_raft_term", "berth_leader", "berth_raft_lag_entries",
                 "berth_process_resident_memory_bytes",
                 "berth_process_open_fds", "berth_account_ships",
                 "berth_heartbeat_age_seconds"):
        assert name in before, name
    assert value(before, "berth_leader") == 1
    assert value(before, "berth_raft_term") >= 1
    assert value(before, "berth_ships", tier="asleep") == 1
    assert value(before, "berth_process_resident_memory_bytes") > 1 << 20
    assert value(before, "berth_process_open_fds") > 3
    assert value(before, "berth_account_ships", account="anonymous") == 1
    events = value(before, "berth_events_committed_total")
    wakes = value(before, "berth_wakes_total")

    # A request wakes the ship and commits an event.
    assert h.http("PUT", "/s/ann/k/a", b"1")[0] in (200, 201)
    after = scrape(h)
    assert value(after, "berth_events_committed_total") > events
    assert value(after, "berth_wakes_total") == wakes + 1
    assert value(after, "berth_wake_seconds_count") == 1
    assert value(after, "berth_wake_seconds_bucket", le="+Inf") == 1
    assert value(after, "berth_wake_seconds_bucket", le="10") == 1
    assert value(after, "berth_wake_seconds_sum") > 0
    assert value(after, "berth_commit_seconds_count") >= 1
    assert value(after, "berth_ships", tier="awake") == 1
    assert value(after, "berth_programs_running") == 1
    assert value(after, "berth_account_programs_running", account="anonymous") == 1
    # On one host the leader's lag is its own: none.
    hid = str(int(value(after, "berth_raft_leader_id")))
    assert value(after, "berth_raft_lag_entries", host=hid) == 0
    h.cli("ship", "sleep", "ann")
    assert h.http("GET", "/s/ann/k/a")[0] == 200
    again = scrape(h)
    assert value(again, "berth_wakes_total") == wakes + 2
    assert value(again, "berth_wake_seconds_count") == 2

    # Over TCP, as the admin API: a read token, and nothing without one.
    import urllib.request
    import urllib.error
    url = "http://127.0.0.1:%d/metrics" % h.admin_port
    try:
        urllib.request.urlopen(url, timeout=5)
        raise AssertionError("/metrics answered without a token")
    except urllib.error.HTTPError as e:
        assert e.code == 401
    token = h.cli_json("token", "new", "--scope", "read")["token"]
    r = urllib.request.urlopen(urllib.request.Request(
        url, headers={"Authorization": "Bearer " + token}), timeout=5)
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    parse_metrics(r.read().decode())
    # An account's token sees only its ships, not the host's figures.
    acct = h.cli_json("account", "new", "alice")["token"]
    try:
        urllib.request.urlopen(urllib.request.Request(
            url, headers={"Authorization": "Bearer " + acct}), timeout=5)
        raise AssertionError("an account's token read /metrics")
    except urllib.error.HTTPError as e:
        assert e.code == 403
    assert value(scrape(h), "berth_account_ships", account="alice") == 0
    # Every metric served is documented.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "docs", "metrics.md")) as f:
        doc = f.read()
    missing = [n for n in scrape(h) if "`" + n not in doc]
    assert not missing, "not in docs/metrics.md: %s" % missing


# --- berth ship logs ---

def ring_files(h):
    d = os.path.join(h.data, "logs")
    return sorted(os.path.join(d, f) for f in os.listdir(d)) if os.path.isdir(d) else []


def test_ship_logs_keep_the_last_bytes_of_stderr(host_factory):
    h = host_factory(["--ship-log-bytes", "4096"], name="logs").start()
    sid = h.new_ship(MISBEHAVE, "loud")
    assert ring_files(h) == []  # made at the first byte only
    assert h.http("GET", "/s/loud/stderr/1")[0] == 200
    out = wait_for(lambda: (lambda r: r if len(r) == 4096 else None)(
        h.cli("ship", "logs", "loud").stdout))
    assert set(out) == {"e", "\n"}, out[:200]
    [ring] = ring_files(h)
    assert os.path.getsize(ring) <= 4096 + 32
    assert len(h.cli("ship", "logs", "loud", "--bytes", "100").stdout) == 100
    v = json.loads(h.cli("ship", "logs", "loud", "--json").stdout.splitlines()[0])
    assert v["ship"] == sid and v["log_end"] == 1 << 20 and v["capacity"] == 4096
    assert v["end"] - v["start"] == 4096
    # Long polling: with nothing after the offset, the answer waits for
    # the time asked, and comes at once when the program writes.
    end = v["log_end"]
    t = time.time()
    st, w = h.admin("GET", "/v1/ships/loud/logs?after=%d&wait=400" % end)
    assert st == 200 and w["data"] == "" and w["start"] == end, w
    assert time.time() - t >= 0.35
    later = threading.Timer(0.3, lambda: h.http("GET", "/s/loud/stderr/1"))
    later.start()
    t = time.time()
    st, w = h.admin("GET", "/v1/ships/loud/logs?after=%d&wait=8000" % end)
    later.join()
    # (what the ring no longer holds is skipped: start may be past end)
    assert st == 200 and w["start"] >= end and w["end"] > end, w
    assert time.time() - t < 6
    # Asleep, the log stays; the ship's removal takes it.
    h.cli("ship", "sleep", "loud")
    assert len(h.cli("ship", "logs", "loud").stdout) == 4096
    st, body = h.admin("GET", "/v1/ships/loud/logs?bytes=0")
    assert st == 400, body
    st, body = h.admin("GET", "/v1/ships/loud/logs?wait=100")
    assert st == 400, body
    # Bad usage: status 2, nothing on stdout; --help says what -f is.
    r = h.cli("ship", "logs", "loud", "--bytes", "0", check=False)
    assert r.returncode == 2 and r.stdout == "" and "--bytes" in r.stderr
    r = h.cli("ship", "logs", "--help", check=False)
    assert r.returncode == 0 and "-f, --follow" in r.stdout
    assert "ship logs" in subprocess.run([BERTH, "--help"], capture_output=True,
                                         text=True).stdout
    h.cli("ship", "rm", "loud")
    assert ring_files(h) == []
    r = h.cli("ship", "logs", "loud", check=False)
    assert r.returncode == 1 and "no ship" in r.stderr


def test_ship_logs_follow(host_factory):
    h = host_factory(["--ship-log-bytes", "65536"], name="follow").start()
    h.new_ship(MISBEHAVE, "f")
    f = subprocess.Popen([BERTH, "ship", "logs", "f", "-f", "--data", h.data],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        assert f.poll() is None, f.stderr.read()
        assert h.http("GET", "/s/f/flood")[0] == 200
        seen = b""
        deadline = time.time() + 10
        while b"flood 0000" not in seen and time.time() < deadline:
            seen += os.read(f.stdout.fileno(), 65536)
        assert b"flood 0000" in seen
    finally:
        f.kill()
        f.wait()
    h.cli("ship", "sleep", "f")


def test_a_flood_of_stderr_leaves_the_host_and_other_ships_be(host_factory):
    """A program's child writes stderr without end beside a kv ship: the kv
    ship answers on, the ring stays at its size, and the log follows the
    flood's newest lines."""
    h = host_factory(["--ship-log-bytes", "65536"], name="flood").start()
    h.new_ship(MISBEHAVE, "flood")
    h.new_ship(KV, "calm")
    assert h.http("PUT", "/s/calm/k/x", b"0")[0] in (200, 201)
    assert h.http("GET", "/s/flood/flood")[0] == 200
    flood_start = time.time()
    slowest = 0
    start = time.time()
    n = 0
    while time.time() - start < 4:
        t = time.time()
        assert h.http("PUT", "/s/calm/k/x", str(n).encode(), timeout=10)[0] in (200, 201)
        st, _, body = h.http("GET", "/s/calm/k/x", timeout=10)
        assert st == 200 and body == str(n).encode()
        slowest = max(slowest, time.time() - t)
        n += 1
    assert n >= 20, n
    assert slowest < 2, slowest
    [ring] = ring_files(h)
    assert os.path.getsize(ring) <= 65536 + 32
    first = json.loads(h.cli("ship", "logs", "flood", "--json").stdout.splitlines()[0])
    assert first["end"] - first["start"] == 65536
    # MiBs went through, but no more than the host reads a second (16 MiB,
    # after a first second's worth): the flooding child waits in its writes.
    assert first["log_end"] > 1 << 20, first["log_end"]
    assert first["log_end"] <= (17 + 17 * (time.time() - flood_start)) * (1 << 20)
    time.sleep(0.5)
    later = json.loads(h.cli("ship", "logs", "flood", "--json").stdout.splitlines()[0])
    assert later["log_end"] > first["log_end"]
    text = base64.b64decode(later["data"]).decode()
    numbers = [int(l.split()[1]) for l in text.splitlines()[1:-1]]
    assert numbers and numbers == sorted(numbers)
    # The host's own log is held to its rate, not the flood's.
    assert os.path.getsize(h.log_path) < 4 << 20
    st, _ = h.admin("GET", "/metrics")
    assert st == 200
    h.cli("ship", "sleep", "flood")
    assert h.cli_json("ship", "show", "flood")["state"] == "asleep"


# --- A cluster: leader, term and lag in /metrics; heartbeats ---

def test_cluster_metrics_and_heartbeats(cluster_factory):
    c = cluster_factory(3).start()
    lead = c.leader()
    others = [h for h in c.hosts if h is not lead]
    views = c.views()
    ids = {h: views[h]["id"] for h in c.hosts}

    # Every host names the same leader and term; only the leader says it
    # leads, and only it knows each host's lag.
    scrapes = {h: scrape(h) for h in c.hosts}
    terms = {value(s, "berth_raft_term") for s in scrapes.values()}
    assert len(terms) == 1 and terms.pop() >= 1
    for h, s in scrapes.items():
        assert value(s, "berth_raft_leader_id") == ids[lead]
        assert value(s, "berth_leader") == (1 if h is lead else 0)
        assert value(s, "berth_cluster_hosts") == 3
        lags = [x for x in s["berth_raft_lag_entries"]["samples"]]
        assert len(lags) == (3 if h is lead else 0), lags
    # Writes through the leader: the followers catch up, lag back to none.
    lead.new_ship(KV, "ann")
    for i in range(20):
        assert lead.http("PUT", "/s/ann/k/%d" % i, b"v")[0] in (200, 201)
    def caught_up():
        s = scrape(lead)
        return all(value(s, "berth_raft_lag_entries", host=ids[h]) == 0
                   for h in c.hosts)
    wait_for(caught_up, 10)
    s = scrape(lead)
    assert value(s, "berth_events_committed_total") >= 20

    # A ship's log is the leader's: a follower passes the request on.
    lead.new_ship(MISBEHAVE, "loud")
    follower = others[0]
    assert follower.http("GET", "/s/loud/stderr/1")[0] == 200
    for h in c.hosts:
        v = json.loads(h.cli("ship", "logs", "loud", "--json").stdout.splitlines()[0])
        assert v["host"] == ids[c.leader()] and v["log_end"] == 1 << 20, v
    assert os.listdir(os.path.join(c.leader().data, "logs"))
    assert not os.listdir(os.path.join(follower.data, "logs"))

    # Heartbeats: every host hears every other within a couple of seconds,
    # and `cluster ls` shows them fresh.
    def fresh(h, limit=2.5):
        v = h.cluster()
        beats = {x["id"]: x.get("heartbeat") for x in v["hosts"]}
        return all(b is not None and b["age_ms"] < limit * 1000 and
                   b["rss_bytes"] > 0 and b["load1"] >= 0
                   for b in beats.values()) and beats
    for h in c.hosts:
        beats = wait_for(lambda: fresh(h), 10)
        assert beats[ids[lead]]["leading"] is True
    out = lead.cli("cluster", "ls").stdout
    assert "HEARTBEAT" in out and "LOAD" in out, out
    for line in out.splitlines()[2:]:
        age = line.split()[8]
        assert age.endswith("s") and float(age[:-1]) < 2.5, out

    # A killed host's heartbeat ages on the others; theirs stay fresh.
    victim = others[0]
    victim.kill9()
    alive = [h for h in c.hosts if h is not victim]
    time.sleep(3.5)
    for h in alive:
        v = h.cluster()
        beats = {x["id"]: x["heartbeat"] for x in v["hosts"]}
        assert beats[ids[victim]]["age_ms"] >= 3000, beats
        for o in alive:
            assert beats[ids[o]]["age_ms"] < 2500, beats
        s = scrape(h)
        assert value(s, "berth_heartbeat_age_seconds", host=ids[victim]) >= 3
    out = alive[0].cli("cluster", "ls").stdout
    row = [l for l in out.splitlines() if l.startswith(str(ids[victim]))][0]
    assert float(row.split()[8][:-1]) >= 3, out
