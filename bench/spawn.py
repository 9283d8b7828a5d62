#!/usr/bin/env python3
"""Spawning: what a child costs beside what a ship made by the operator and a
plain write cost, measured in the same run, on one machine.

Four hosts, each alone (no peers), up together:

  spawn   kv parents asked for children through the front door: a few
          closed-loop clients (bench/cluster_bench.c load spawn), each
          POST /s/PARENT/children with body `linked` making one child; all
          clients on one parent at a time, the next parent after 1,000
          (a kv keeps at most 1,024 children). A 202 leaves once the
          spawning event is durable, and with it the child, so the rate is
          children that exist a second; the ships the host counts are
          checked against it, and the time until every parent has had its
          CHILD event (GET /children: all spawned) is measured too.
  create  ships made through the admin API one at a time, POST /v1/ships
          with count 1 on DATA/admin.sock, by as many clients.
  write   100-byte PUTs to one kv ship by as many clients: a plain logged
          event.
  op      `berth ship new --count N`: N ships made by the operator at once.

Each round runs the rows one after another, their order turning round
after round, and each rate is the median over the rounds. The spawn, create
and op hosts also give what a ship costs: over the whole run, the growth
of the store file, its WAL and the raft directory (bytes allocated, raft's
snapshot files apart) between the host stopped before the first round and
stopped after the last (at rest: a stop checkpoints the WAL), of the
host's RSS a few seconds after a restart before the first round and after
the last (at rest: what holding the ships costs), and of its RSS and
registry_bytes (/v1/stats) from a few seconds after its restart to a few
seconds after the last round, up, over the ships made; each
round gives the same with the host up (the WAL as it stands). A round's
parents are made and woken before the row's first measurement, but after
the whole run's, so what a child adds to its parent (its record in the
parent's state, the spawning event and the CHILD event in the parent's log
and snapshots) and the parents themselves count in a child's cost; the
parents' programs are processes of their own, outside the host's RSS.

Before the first measurement each costed host is given BENCH_SPAWN_FILL
operator's ships (60,000): the store's page cache, which grows with the
store up to its bound (16 MiB), is then full or nearly, so that what a ship
costs in RAM is what the host holds for it, not the filling of a cache
whose size does not depend on the number of ships; the cache's growth over
the run is shown beside the RSS (not subtracted: pages the cache takes may
reuse memory the host had freed, which the RSS counted already). And raft
keeps in memory the log since its last snapshot, which may grow to the
store's size before the next (src/consensus/fsm.c): where that cycle
stands would move a measurement by megabytes. So the RSS at rest is taken
after a compaction (a ship made and removed: the host takes two snapshots
at once) and a restart, before the first round and after the last; before
the first, 300 ships are made one at a time after the fill, so that the
entries raft keeps behind a snapshot (126) are small ones, as after the
last round.

usage: bench/spawn.py BUILD DIR [--quick]. Sizes from the environment:
BENCH_SPAWN_CHILDREN (children a round, and ships of op's call; 10000),
BENCH_SPAWN_CLIENTS (4), BENCH_SPAWN_ROUNDS (3), BENCH_SPAWN_SECONDS (a
create or write row, 10). --quick: 1,000 children, 1 round, 2 s rows.
Every host it starts it stops, also on failure; then it checks that no
host or program of its own is left running (killing any, and saying so)
and removes DIR."""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time

QUICK = "--quick" in sys.argv[1:]
ARGS = [a for a in sys.argv[1:] if a != "--quick"]
BUILD = os.path.abspath(ARGS[0] if ARGS else "build")
DIR = os.path.abspath(ARGS[1] if len(ARGS) > 1 else "bench-spawn")
BERTH = os.path.join(BUILD, "berth")
KV = os.path.join(BUILD, "programs", "kv")
GEN = os.path.join(BUILD, "bench", "cluster_bench")
CHILDREN = int(os.environ.get("BENCH_SPAWN_CHILDREN", "1000" if QUICK else "10000"))
CLIENTS = int(os.environ.get("BENCH_SPAWN_CLIENTS", "4"))
ROUNDS = int(os.environ.get("BENCH_SPAWN_ROUNDS", "1" if QUICK else "3"))
SECONDS = float(os.environ.get("BENCH_SPAWN_SECONDS", "2" if QUICK else "10"))
FILL = int(os.environ.get("BENCH_SPAWN_FILL", "60000"))
PAD = 300  # entries after the fill: more than raft keeps behind a snapshot
SETTLE = 1.0 if QUICK else 4.0  # seconds before a measurement after a row
PER_PARENT = 1000  # cluster_bench.c's CB_SPAWN_PER_PARENT
DISK_TARGET = 16384  # the cost of a fresh ship today: 16 KiB on disk
RSS_TARGET = 512  # and 512 B of the host's memory

hosts = []
host_pids = []  # every host process started, restarts included


def note(msg):
    print("bench: spawn: " + msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(v, p):
    v = sorted(v)
    return v[int(p * (len(v) - 1) + 0.5)] if v else 0.0


def gen(*args):
    r = subprocess.run([GEN] + [str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("cluster_bench %s: %s" % (args, r.stderr))
    return json.loads(r.stdout)


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=60):
        super().__init__("localhost", timeout=timeout)
        self.path_ = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path_)


class Host:
    def __init__(self, name):
        self.name = name
        self.data = os.path.join(DIR, name)
        self.port = free_port()
        self.proc = None
        os.makedirs(self.data)
        hosts.append(self)
        self.start()

    def start(self):
        with open(self.data + ".log", "ab") as log:
            self.proc = subprocess.Popen(
                [BERTH, "serve", "--data", self.data, "--listen",
                 "127.0.0.1:%d" % self.port, "--max-conns-per-addr", "0",
                 "--max-idle-conns", "0"], stdout=log, stderr=log)
        host_pids.append(self.proc.pid)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("host %s exited: %s" % (self.name, self.tail()))
            try:
                if self.http("GET", "/healthz", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("host %s not ready: %s" % (self.name, self.tail()))

    def at_rest(self):
        """The host stopped, its bytes on disk (store and WAL, raft), and
        started again."""
        self.stop()
        disk = self.disk()
        self.start()
        return disk

    def tail(self):
        with open(self.data + ".log", "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def http(self, method, path, body=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def admin(self, method, path, body=None):
        c = UnixHTTP(os.path.join(self.data, "admin.sock"))
        try:
            c.request(method, path, body=json.dumps(body) if body is not None else None)
            r = c.getresponse()
            data = r.read()
            if r.status not in (200, 201):
                raise RuntimeError("%s %s: %d %s" % (method, path, r.status, data[:300]))
            return json.loads(data)
        finally:
            c.close()

    def stats(self):
        return self.admin("GET", "/v1/stats")

    def disk(self):
        """Bytes allocated to the store file, its WAL and the raft
        directory: (store and WAL, raft, raft's snapshot files among
        them)."""
        store = 0
        for f in ("store.db", "store.db-wal", "store.db-shm"):
            try:
                store += os.stat(os.path.join(self.data, f)).st_blocks * 512
            except FileNotFoundError:
                pass
        raft = snaps = 0
        for root, _, files in os.walk(os.path.join(self.data, "raft")):
            for f in files:
                try:
                    n = os.lstat(os.path.join(root, f)).st_blocks * 512
                except FileNotFoundError:
                    continue
                raft += n
                snaps += n if f.startswith("snapshot-") else 0
        return store, raft, snaps

    def snapshots(self):
        """The names of raft's snapshot files."""
        try:
            return {f for f in os.listdir(os.path.join(self.data, "raft"))
                    if f.startswith("snapshot-")}
        except FileNotFoundError:
            return set()

    def compact(self, tag):
        """Have the host take raft snapshots now, so that the log it holds
        in memory is only what trails the last one: removing a ship
        compacts the log (two snapshots). Waits until the snapshot files
        have changed and stay as they are for a second."""
        before = self.snapshots()
        self.admin("POST", "/v1/ships", {"program": KV, "name": "compact-" + tag})
        self.admin("DELETE", "/v1/ships/compact-" + tag)
        deadline = time.time() + 120
        now, since = before, time.time()
        while time.time() < deadline:
            time.sleep(0.1)
            names = self.snapshots()
            if names != now:
                now, since = names, time.time()
            elif now != before and time.time() - since >= 1.0:
                return
        raise RuntimeError("host %s took no snapshot after a removal" % self.name)

    def measure(self):
        """(store bytes, raft bytes, RSS bytes, ships, registry bytes, the
        store's page cache bytes)."""
        st = self.stats()
        store, raft, _ = self.disk()
        return (store, raft, st["rss_bytes"], st["ships"], st["registry_bytes"],
                st["store_cache_bytes"])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                note("host %s did not stop in 60 s; killed" % self.data)
                self.proc.kill()
                self.proc.wait()


def growth(up0, up1, made):
    """Per ship made, with the host up: disk (store file, WAL and raft
    directory, bytes allocated: the WAL as it stands, not yet
    checkpointed), its store and raft parts, the host's RSS and its
    registry_bytes."""
    store = (up1[0] - up0[0]) / made
    raft = (up1[1] - up0[1]) / made
    return {"disk": store + raft, "store": store, "raft": raft,
            "rss": (up1[2] - up0[2]) / made, "registry": (up1[4] - up0[4]) / made,
            "cache": (up1[5] - up0[5]) / made}


def children_done(h, parents):
    """How many children the parents list as spawned, pending and otherwise."""
    n = {"spawned": 0, "pending": 0, "other": 0}
    for p in parents:
        status, body = h.http("GET", "/s/%s/children" % p)
        if status != 200:
            raise RuntimeError("GET /s/%s/children: %d %s" % (p, status, body[:200]))
        for c in json.loads(body):
            k = c["status"] if c["status"] in ("spawned", "pending") else "other"
            n[k] += 1
    return n


def wake(h, ships):
    for p in ships:
        if h.http("GET", "/s/%s/k" % p)[0] != 200:
            raise RuntimeError("ship %s did not answer" % p)


def spawn_row(h, rnd):
    name = "r%d" % rnd
    parents = ["%s-%d" % (name, i + 1)
               for i in range((CHILDREN + CLIENTS - 1) // PER_PARENT + 1)]
    h.admin("POST", "/v1/ships", {"program": KV, "name": name, "count": len(parents)})
    wake(h, parents)
    time.sleep(SETTLE)
    up0 = h.measure()
    r = gen("load", "spawn", "127.0.0.1:%d" % h.port, CLIENTS, 3600, name, CHILDREN)
    t_acked = time.time()
    made = r["events"]
    ships = h.stats()["ships"]
    if ships != up0[3] + made:
        raise RuntimeError("%d children acknowledged, the host counts %d ships more"
                           % (made, ships - up0[3]))
    deadline = time.time() + 300
    while True:
        n = children_done(h, parents)
        if n["spawned"] == made or time.time() > deadline:
            break
        time.sleep(0.05)
    r["child_events_s"] = r["events"] / r["eps"] + (time.time() - t_acked)
    r["children_listed"] = n
    time.sleep(SETTLE)
    up1 = h.measure()
    r.update(growth(up0, up1, made))
    r["made"] = made
    return r


def create_row(h, rnd):
    time.sleep(SETTLE)
    up0 = h.measure()
    r = gen("load", "create", "unix:" + os.path.join(h.data, "admin.sock"), CLIENTS,
            SECONDS, KV)
    time.sleep(SETTLE)
    up1 = h.measure()
    if up1[3] - up0[3] != r["events"]:
        raise RuntimeError("%d creates acknowledged, the host counts %d ships more"
                           % (r["events"], up1[3] - up0[3]))
    r.update(growth(up0, up1, r["events"]))
    r["made"] = r["events"]
    return r


def write_row(h, rnd):
    return gen("load", "one", "127.0.0.1:%d" % h.port, CLIENTS, SECONDS, "w")


def op_row(h, rnd):
    time.sleep(SETTLE)
    up0 = h.measure()
    t0 = time.time()
    out = h.admin("POST", "/v1/ships", {"program": KV, "name": "op%d" % rnd,
                                        "count": CHILDREN})
    dt = time.time() - t0
    time.sleep(SETTLE)
    up1 = h.measure()
    r = growth(up0, up1, out["created"])
    r.update({"eps": out["created"] / dt, "made": out["created"], "seconds": dt,
              "errors": 0, "client_share": 0})
    return r


def leftovers():
    """Pids of this run's hosts (and their launchers), and of programs they
    started (BERTH_HOST names the host's pid), still running 3 s after the
    last stop (a launcher exits once it sees its host gone)."""
    deadline = time.time() + 3
    while True:
        left = leftovers_now()
        if not left or time.time() > deadline:
            return left
        time.sleep(0.1)


def leftovers_now():
    mine = {os.path.realpath(KV), os.path.realpath(BERTH)}
    tags = [("/%d-" % p).encode() for p in host_pids]
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.path.realpath("/proc/%s/exe" % pid) not in mine:
                continue
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
            with open("/proc/%s/environ" % pid, "rb") as f:
                env = [v for v in f.read().split(b"\0") if v.startswith(b"BERTH_HOST=")]
        except OSError:
            continue
        if DIR.encode() in cmd or any(t in v for v in env for t in tags):
            pids.append(int(pid))
    return pids


def med(runs, key):
    return pct([r[key] for r in runs], 0.5)


def kib(x):
    return "%.0f B" % x if abs(x) < 10240 else "%.1f KiB" % (x / 1024)


def verdict(x, limit):
    return "met" if x <= limit else "NOT met"


def main():
    if os.path.exists(DIR):
        shutil.rmtree(DIR)
    os.makedirs(DIR)
    sides = {k: Host(k) for k in ("spawn", "create", "write", "op")}
    sides["write"].admin("POST", "/v1/ships", {"program": KV, "name": "w", "count": 1})
    wake(sides["write"], ["w-1"])
    costed = ("spawn", "op", "create")
    for k in costed:
        if FILL:
            sides[k].admin("POST", "/v1/ships", {"program": KV, "name": "fill",
                                                  "count": FILL})
        # Raft keeps the last entries behind a snapshot (an eighth of the
        # entries between snapshots, 126): small ones after the fill's, so
        # that its large entries are not among them.
        for i in range(PAD):
            sides[k].admin("POST", "/v1/ships", {"program": KV, "name": "pad-%d" % i})
        sides[k].compact("first")
    rest0 = {k: sides[k].at_rest() for k in costed}
    time.sleep(SETTLE)
    up0 = {k: sides[k].measure() for k in costed}
    rows = {"spawn": spawn_row, "create": create_row, "write": write_row, "op": op_row}
    runs = {k: [] for k in rows}
    order = list(rows)
    for rnd in range(ROUNDS):
        for k in order[rnd % len(order):] + order[:rnd % len(order)]:
            note("round %d: %s" % (rnd + 1, k))
            runs[k].append(rows[k](sides[k], rnd))
    up1 = {k: sides[k].measure() for k in costed}
    for h in sides.values():
        h.stop()
    rest1 = {k: sides[k].disk() for k in costed}
    # The RSS at rest: each host started again, as it was started before
    # the first measurement (its log compacted, then a restart), so that
    # both hold their ships as a start loads them, without what the
    # rounds' traffic left in the heap.
    for k in costed:
        sides[k].start()
    time.sleep(SETTLE)
    # Before the compaction: with the log since the last snapshot.
    log_up1 = {k: sides[k].measure() for k in costed}
    for k in costed:
        sides[k].compact("last")
        sides[k].stop()
        sides[k].start()
    time.sleep(SETTLE)
    rest_up1 = {k: sides[k].measure() for k in costed}
    for k in costed:
        sides[k].stop()
    made = {k: sum(r["made"] for r in runs[k]) for k in costed}
    whole = {}
    for k in costed:
        whole[k] = growth(up0[k], up1[k], made[k])
        whole[k]["rest"] = (rest1[k][0] + rest1[k][1] - rest0[k][0] - rest0[k][1]) / made[k]
        whole[k]["rest_store"] = (rest1[k][0] - rest0[k][0]) / made[k]
        whole[k]["rest_raft"] = (rest1[k][1] - rest0[k][1]) / made[k]
        whole[k]["rest_snaps"] = (rest1[k][2] - rest0[k][2]) / made[k]
        whole[k]["rest_rss"] = (rest_up1[k][2] - up0[k][2]) / made[k]
        whole[k]["log_rss"] = (log_up1[k][2] - rest_up1[k][2]) / made[k]

    sp, cr, wr, op = (runs[k] for k in ("spawn", "create", "write", "op"))
    print("spawning: 4 hosts alone on one machine (%d cores), up together; %d closed-loop "
          "clients; rows in turn, median of %d rounds. spawn: POST /s/PARENT/children "
          "(`linked`) to kv, one child a request, %d children a round, all clients on "
          "one parent, the next after %d; create: POST /v1/ships with count 1 on the "
          "admin socket, %g s; write: 100-byte PUTs to one kv ship, %g s; op: `ship "
          "new --count %d` in one call."
          % (os.cpu_count(), CLIENTS, ROUNDS, CHILDREN, PER_PARENT, SECONDS, SECONDS,
             CHILDREN))
    s_eps, c_eps, w_eps = med(sp, "eps"), med(cr, "eps"), med(wr, "eps")
    print("%-7s %10s %9s %9s %7s %7s | %s" % ("row", "per s", "p50 ms", "p99 ms", "client",
                                             "errors", "rounds, per s"))
    for k, rs in (("spawn", sp), ("create", cr), ("write", wr)):
        print("%-7s %10.0f %9.3f %9.3f %6.0f%% %7d | %s" % (
            k, med(rs, "eps"), med(rs, "p50_ms"), med(rs, "p99_ms"),
            100 * med(rs, "client_share"), sum(r["errors"] for r in rs),
            ", ".join("%.0f" % r["eps"] for r in rs)))
    print("%-7s %10.0f %9s %9s %7s %7s | %s" % (
        "op", med(op, "eps"), "-", "-", "-", "-",
        ", ".join("%.0f" % r["eps"] for r in op)))
    print("spawns/s over creates/s %.2fx, over writes/s %.2fx (rounds: %s; %s)" % (
        s_eps / c_eps if c_eps else 0, s_eps / w_eps if w_eps else 0,
        ", ".join("%.2f" % (a["eps"] / b["eps"]) for a, b in zip(sp, cr) if b["eps"]),
        ", ".join("%.2f" % (a["eps"] / b["eps"]) for a, b in zip(sp, wr) if b["eps"])))
    print("CHILD events: every parent had all its CHILD spawned %.2f s after the first "
          "spawn (median; %.0f children/s), against %.2f s for the 202s; listed at the "
          "last round's end: %s"
          % (med(sp, "child_events_s"), CHILDREN / med(sp, "child_events_s"),
             med(sp, "events") / s_eps, sp[-1]["children_listed"]))
    print("cost of a ship, per ship made. Whole run: disk at rest = store file + WAL + "
          "raft directory, bytes allocated, the host stopped before the first round "
          "and after the last (a stop checkpoints the WAL); RSS rest = the host's, "
          "%g s after a restart before the first round and after the last (what "
          "holding the ships costs, as a start loads them, each time after a "
          "compaction); +raft log = what the host held more after the last "
          "round's restart before its compaction (the log since raft's last "
          "snapshot, which raft holds in memory); RSS = the host's, up, "
          "%g s after the restart before the first round and after the last round "
          "(with what the rounds' traffic left in the heap); raft snaps = "
          "raft's snapshot files, part of raft; cache = the growth of the "
          "store's page cache (store_cache_bytes, part of the RSS); registry = "
          "its registry_bytes (/v1/stats); children count their parents' creation and growth. "
          "Rounds: the same with the host up, %g s after each row (the WAL as it "
          "stands), median of %d." % (SETTLE, SETTLE, SETTLE, ROUNDS))
    print("%-20s %10s %10s %10s %10s %10s %10s %10s %9s %9s | %10s %10s %9s | %s" % (
        "", "disk", "store", "raft", "raft snaps", "RSS rest", "+raft log", "RSS",
        "cache", "registry", "rounds: up", "RSS", "registry", "rounds, disk up / RSS"))
    for k, name in (("spawn", "child (spawn)"), ("op", "operator, --count"),
                    ("create", "admin API, count 1")):
        w, rs = whole[k], runs[k]
        print("%-20s %10s %10s %10s %10s %10s %10s %10s %9s %9s | %10s %10s %9s | %s" % (
            name, kib(w["rest"]), kib(w["rest_store"]), kib(w["rest_raft"]),
            kib(w["rest_snaps"]), kib(w["rest_rss"]), kib(w["log_rss"]), kib(w["rss"]), kib(w["cache"]), kib(w["registry"]),
            kib(med(rs, "disk")), kib(med(rs, "rss")), kib(med(rs, "registry")),
            ", ".join("%s / %s" % (kib(r["disk"]), kib(r["rss"])) for r in rs)))
    print("whole run: %d children, %d operator's ships, %d ships by the admin API; "
          "each host given %d operator's ships before (cache at the first "
          "measurement: %s)"
          % (made["spawn"], made["op"], made["create"], FILL,
             ", ".join("%s %.1f MiB" % (k, up0[k][5] / 1048576) for k in costed)))
    d, m = whole["spawn"]["rest"], whole["spawn"]["rest_rss"]
    print("a child beside an operator's ship, whole run, at rest: disk %.2fx, RSS %.2fx; "
          "target (at most a fresh ship's cost today, 16 KiB disk, 512 B RAM): disk %s, "
          "RAM %s"
          % (d / whole["op"]["rest"] if whole["op"]["rest"] else 0,
             m / whole["op"]["rest_rss"] if whole["op"]["rest_rss"] else 0,
             "%s (%s)" % (verdict(d, DISK_TARGET), kib(d)),
             "%s (%s)" % (verdict(m, RSS_TARGET), kib(m))))


if __name__ == "__main__":
    try:
        main()
    finally:
        for h in hosts:
            try:
                h.stop()
            except Exception as e:  # keep stopping the others
                note("stopping %s: %s" % (h.data, e))
        left = leftovers()
        if left:
            note("left running after the hosts stopped, killed: %s" % left)
            for pid in left:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        shutil.rmtree(DIR, ignore_errors=True)
