"""make bench, cluster section: 3 berth hosts on loopback, beside floors
measured in the same run (loopback round trip, fdatasync, and etcd 3.4 with
3 members on loopback driven at the same concurrency through its HTTP API).
First, one host beside one etcd member, the same way.

  front     reads through one host's front door to awake kv ships
            (GET of a 100-byte value) beside nginx proxying to a trivial
            backend (nginx's own `return 200`, upstream keep-alive), at the
            same concurrency, keep-alive connections: each client repeating
            one request (kv marks reads REUSE, so the host answers from the
            reply it kept), and each client sending a new request every
            time (a query that changes), which the program answers
  one host  events/s and p50/p99 of one berth host (no peers, ack level
            quorum, which on one host is its own fsync) and of one etcd
            member, at 16, 64 and 256 concurrent writers

  commit    events/s and p50/p99 at 1, 16 and 256 concurrent ships for ack
            levels 0, 1, 2, quorum and all; bytes written per event (all
            hosts' write_bytes over the row, over the events)
  failover  kill -9 the leader, then the time to the first acknowledged
            write through a surviving host, p50/p99 over the kill loop
  catch-up  a host stopped while 100,000 events are committed: the time from
            its restart until it has applied what the leader has

Both clusters are up at once and their rows alternate: for each
concurrency, round after round, etcd's row and then berth's row at each
ack level, and each figure is the median over the rounds. The machine is
shared and drifts by more than the differences measured (etcd's throughput
moved 50% between two runs made one after the other), so a ratio is only
taken between rows run next to each other.

usage: cluster.py BUILD DIR. Sizes from the environment: BENCH_SECONDS (10 a
row: long enough to hold the periodic costs, raft snapshots and store
commits, which a 3 s row could miss), BENCH_ROUNDS (3), BENCH_CONCS
(1,16,256; empty: no cluster part), BENCH_ACKS (0,1,2,quorum,all), BENCH_SINGLE_CONCS (16,64,256;
empty: no one-host part), BENCH_FRONT_CONCS (16,64,256; empty: no front-door
part), BENCH_PIN (HOSTS:CLIENT, CPU lists for taskset,
such as 0:1: berth hosts, their programs and etcd on HOSTS, the load
generator on CLIENT; unset: nothing pinned), BENCH_KILL_ROUNDS (50),
BENCH_CATCHUP_EVENTS (100000), BENCH_SEAL_CONCS (16,64; empty: no sealing
part: one host sealing beside one --unsealed), BENCH_ACCT_CONCS (16,64; empty: no
accounting part: one host accounting beside one with BERTH_ACCOUNTING=off), BENCH_PEER_CONCS (empty: no peer part; such
as 64: two 3-host clusters side by side, one with peer encryption on, one
with it off through BERTH_PEER_PLAINTEXT=1, acks quorum, their rows
alternating, and the ratio of the two). Every process it starts it stops,
also on failure."""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
DIR = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "bench-cluster")
BERTH = os.path.join(BUILD, "berth")
KV = os.path.join(BUILD, "programs", "kv")
GEN = os.path.join(BUILD, "bench", "cluster_bench")
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONCS = [int(x) for x in os.environ.get("BENCH_CONCS", "1,16,256").split(",") if x]
ACKS = os.environ.get("BENCH_ACKS", "0,1,2,quorum,all").split(",")
FRONT_CONCS = [int(x) for x in os.environ.get("BENCH_FRONT_CONCS", "16,64,256").split(",") if x]
SINGLE_CONCS = [int(x) for x in os.environ.get("BENCH_SINGLE_CONCS",
                                               "16,64,256").split(",") if x]
KILL_ROUNDS = int(os.environ.get("BENCH_KILL_ROUNDS", "50"))
PEER_CONCS = [int(x) for x in os.environ.get("BENCH_PEER_CONCS", "").split(",") if x]
SEAL_CONCS = [int(x) for x in os.environ.get("BENCH_SEAL_CONCS", "16,64").split(",") if x]
ACCT_CONCS = [int(x) for x in os.environ.get("BENCH_ACCT_CONCS", "16,64").split(",") if x]
PIN = os.environ.get("BENCH_PIN", "")
if PIN and (PIN.count(":") != 1 or not all(PIN.split(":"))):
    sys.exit("cluster.py: BENCH_PIN is HOSTS:CLIENT, two CPU lists (such as 0:1), not %r"
             % PIN)
PIN_HOSTS, PIN_CLIENT = PIN.split(":") if PIN else ("", "")


def pinned(cpus, argv):
    """argv run on cpus (a taskset CPU list), or as it is when none."""
    return ["taskset", "-c", cpus] + argv if cpus else argv


def pin_note():
    return ("pinned: hosts, programs and etcd on CPUs %s, the client on %s"
            % (PIN_HOSTS, PIN_CLIENT) if PIN else "not pinned")
CATCHUP = int(os.environ.get("BENCH_CATCHUP_EVENTS", "100000"))

procs = []  # every process started here, stopped at exit


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(v, p):
    v = sorted(v)
    return v[int(p * (len(v) - 1) + 0.5)] if v else 0.0


def gen(*args):
    """Run the load generator; its JSON line."""
    r = subprocess.run(pinned(PIN_CLIENT, [GEN] + [str(a) for a in args]),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("cluster_bench %s: %s" % (args, r.stderr))
    return json.loads(r.stdout)


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path_ = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path_)


class Host:
    def __init__(self, i):
        self.data = os.path.join(DIR, "h%d" % i)
        self.port = free_port()
        self.peer = "127.0.0.1:%d" % free_port()
        self.proc = None
        self.joined = False
        self.id = None
        self.env = None  # None: the bench's environment
        self.secret = None  # the cluster secret, for a host that joins
        self.extra = []  # more serve options

    def start(self, join=None):
        os.makedirs(self.data, exist_ok=True)
        args = [BERTH, "serve", "--data", self.data, "--listen", "127.0.0.1:%d" % self.port,
                "--max-conns-per-addr", "0", "--max-idle-conns", "0"] + self.extra
        if self.peer is not None:
            args += ["--peer", self.peer]
        if join and not self.joined:
            args += ["--join", join]
        log = open(self.data + ".log", "ab")
        env = dict(self.env if self.env is not None else os.environ)
        if join and self.secret:
            env["BERTH_CLUSTER_SECRET"] = self.secret
        self.proc = subprocess.Popen(pinned(PIN_HOSTS, args), stdout=log, stderr=log, env=env)
        procs.append(self.proc)
        log.close()
        self.joined = True
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("host exited: %s" % self.tail())
            try:
                if self.http("GET", "/healthz", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("host not ready: %s" % self.tail())

    def tail(self):
        with open(self.data + ".log", "rb") as f:
            return f.read()[-2000:].decode(errors="replace")

    def http(self, method, path, body=None, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def cluster(self):
        if self.proc is None or self.proc.poll() is not None:
            return None
        c = UnixHTTP(os.path.join(self.data, "admin.sock"), timeout=5)
        try:
            c.request("GET", "/v1/cluster")
            r = c.getresponse()
            body = r.read()
            if r.status != 200:
                return None
            v = json.loads(body)
            self.id = v.get("id")
            return v
        except (OSError, ValueError):
            return None
        finally:
            c.close()

    def applied(self):
        v = self.cluster()
        if not v:
            return None
        me = [x for x in v["hosts"] if x["id"] == v["id"]]
        return me[0].get("applied") if me else None

    def write_bytes(self):
        try:
            with open("/proc/%d/io" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("write_bytes:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait(fn, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.01)
    raise RuntimeError("timed out: %s" % what)


def leader(hosts, exclude=()):
    def find():
        for h in hosts:
            if h in exclude:
                continue
            v = h.cluster()
            if v and v.get("leader") and v["leader"] == v["id"]:
                return h
        return None
    return wait(find, 60, "a leader")


def formed(hosts):
    def ok():
        for h in hosts:
            v = h.cluster()
            if not v or len(v["hosts"]) != len(hosts) or not v.get("leader"):
                return False
            if not all(x.get("online") for x in v["hosts"]):
                return False
        return True
    wait(ok, 120, "the cluster to form")


def caught_up(hosts, h):
    """Wait until h has applied as much as the leader; the seconds it took."""
    t0 = time.time()
    lead = leader(hosts)

    def ok():
        a, b = h.applied(), lead.applied()
        return a is not None and b is not None and a >= b
    wait(ok, 600, "catch-up")
    return time.time() - t0


def cli(h, *args):
    r = subprocess.run([BERTH] + list(args) + ["--data", h.data], capture_output=True,
                       text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("berth %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


def note(msg):
    """Progress, on stderr."""
    print("bench: cluster: " + msg, file=sys.stderr, flush=True)


def ms(x):
    return "%.3f" % x


def median_row(runs):
    """One row from the runs of a row: each figure's median."""
    out = {}
    for k in runs[0]:
        if isinstance(runs[0][k], (int, float)):
            out[k] = pct([r[k] for r in runs], 0.5)
    out["runs"] = [r["eps"] for r in runs]
    return out


def form(first=0, env=None):
    """Three hosts, the first starting the cluster and the others joining
    it with its secret."""
    hosts = [Host(first + i) for i in range(3)]
    for h in hosts:
        h.env = env
    hosts[0].start()
    leader(hosts[:1])
    secret = cli(hosts[0], "cluster", "secret").strip()
    for h in hosts[1:]:
        h.secret = secret
        h.start(join=hosts[0].peer)
    formed(hosts)
    return hosts


def berth_part(etcd):
    hosts = form()
    targets = ",".join("127.0.0.1:%d" % h.port for h in hosts)
    rows, etcd_rows = {}, {}
    for conc in CONCS:
        ready = []
        for acks in ACKS:
            name = "a%s-c%d" % (acks, conc)
            try:
                cli(hosts[0], "ship", "new", "--program", KV, "--name", name,
                    "--count", str(conc), "--acks", acks)
            except RuntimeError as e:
                rows[(acks, conc)] = str(e)
                continue
            for i in range(conc):
                hosts[i % 3].http("GET", "/s/%s-%d/k" % (name, i + 1))
            ready.append((acks, name))
        runs = {acks: [] for acks, _ in ready}
        etcd_runs = []
        for rnd in range(ROUNDS):
            if etcd is not None:
                note("commit: %d writers, round %d: etcd" % (conc, rnd + 1))
                etcd_runs.append(gen("load", "etcd", etcd["targets"], conc, SECONDS,
                                     "c%d-r%d-" % (conc, rnd)))
            for acks, name in ready:
                note("commit: %d writers, round %d: acks %s" % (conc, rnd + 1, acks))
                before = sum(h.write_bytes() for h in hosts)
                r = gen("load", "berth", targets, conc, SECONDS, name)
                after = sum(h.write_bytes() for h in hosts)
                r["bytes_per_event"] = (after - before) / r["events"] if r["events"] else 0
                runs[acks].append(r)
        for acks, _ in ready:
            rows[(acks, conc)] = median_row(runs[acks])
        if etcd_runs:
            etcd_rows[conc] = median_row(etcd_runs)
    results = {"rows": rows, "etcd": etcd_rows}
    if etcd is not None:
        etcd_stop(etcd)

    # Failover: kill -9 the leader, then write through a survivor until one
    # write is acknowledged.
    cli(hosts[0], "ship", "new", "--program", KV, "--name", "fo")
    took = []
    note("failover: %d rounds" % KILL_ROUNDS)
    for rnd in range(KILL_ROUNDS):
        lead = leader(hosts)
        survivors = [h for h in hosts if h is not lead]
        lead.kill9()
        t0 = time.time()
        for i in range(1 << 30):
            if time.time() - t0 > 120:
                raise RuntimeError("no write acknowledged 120 s after a leader kill")
            try:
                status, _ = survivors[i % 2].http("PUT", "/s/fo/k/r%d" % rnd, b"x", timeout=5)
                if status in (200, 201):
                    break
            except OSError:
                pass
            time.sleep(0.001)
        took.append(time.time() - t0)
        lead.start()
        formed(hosts)
        caught_up(hosts, lead)
    results["failover"] = took

    # Catch-up: a follower stopped while CATCHUP events are committed.
    lead = leader(hosts)
    behind = next(h for h in hosts if h is not lead)
    note("catch-up: %d events" % CATCHUP)
    behind.stop()
    conc = 64
    cli(lead, "ship", "new", "--program", KV, "--name", "cu", "--count", str(conc))
    others = ",".join("127.0.0.1:%d" % h.port for h in hosts if h is not behind)
    load = gen("load", "berth", others, conc, 3600, "cu", CATCHUP)
    t0 = time.time()
    behind.start()
    lead = leader(hosts)

    def done():
        a, b = behind.applied(), lead.applied()
        return a is not None and b is not None and a >= b
    wait(done, 1800, "catch-up")
    results["catchup"] = (time.time() - t0, load["events"])
    for h in hosts:
        h.stop()
    return results


def etcd_start(n=3, prefix="e"):
    """Start n etcd members; (the cluster, its version) or (None, why not)."""
    etcd = shutil.which("etcd") or "/usr/bin/etcd"
    if not os.path.exists(etcd):
        return None, "etcd not installed (apt-get install etcd-server)"
    version = "etcd " + subprocess.run([etcd, "--version"], capture_output=True,
                                       text=True).stdout.split("\n")[0].split(":")[-1].strip()
    members = []
    for i in range(n):
        members.append({"name": "%s%d" % (prefix, i), "client": free_port(),
                        "peer": free_port()})
    initial = ",".join("%s=http://127.0.0.1:%d" % (m["name"], m["peer"]) for m in members)
    for m in members:
        d = os.path.join(DIR, m["name"])
        log = open(d + ".log", "ab")
        p = subprocess.Popen(pinned(PIN_HOSTS, [etcd, "--name", m["name"], "--data-dir", d,
                              "--listen-client-urls", "http://127.0.0.1:%d" % m["client"],
                              "--advertise-client-urls", "http://127.0.0.1:%d" % m["client"],
                              "--listen-peer-urls", "http://127.0.0.1:%d" % m["peer"],
                              "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % m["peer"],
                              "--initial-cluster", initial, "--initial-cluster-state", "new",
                              "--initial-cluster-token", "berth-bench"]),
                             stdout=log, stderr=log)
        log.close()
        m["proc"] = p
        procs.append(p)

    def healthy():
        for m in members:
            try:
                c = http.client.HTTPConnection("127.0.0.1", m["client"], timeout=2)
                c.request("POST", "/v3/kv/put", body=json.dumps(
                    {"key": base64.b64encode(b"probe").decode(), "value": ""}))
                ok = c.getresponse().status == 200
                c.close()
                if not ok:
                    return False
            except OSError:
                return False
        return True
    note("etcd: %s" % version)
    wait(healthy, 60, "etcd")
    targets = ",".join("127.0.0.1:%d" % m["client"] for m in members)
    return {"members": members, "targets": targets}, version


def etcd_stop(etcd):
    for m in etcd["members"]:
        m["proc"].terminate()
        m["proc"].wait(30)


NGINX_CONF = """worker_processes auto;
daemon off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    upstream back { server 127.0.0.1:%(back)d; keepalive 64; }
    server {
        listen 127.0.0.1:%(front)d;
        location / {
            proxy_pass http://back;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    server {
        listen 127.0.0.1:%(back)d;
        location / { return 200 "%(value)s"; }
    }
}
"""


def nginx_start():
    """nginx proxying to a trivial backend; (its front port, process, version)
    or (None, None, why not)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        return None, None, "nginx not installed (apt-get install nginx-light)"
    version = subprocess.run([nginx, "-v"], capture_output=True,
                             text=True).stderr.strip().split("/")[-1]
    d = os.path.join(DIR, "nginx")
    os.makedirs(d, exist_ok=True)
    front, back = free_port(), free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF % {"dir": d, "front": front, "back": back, "value": "v" * 100})
    log = open(d + ".log", "ab")
    # A group of its own: nginx's workers outlive a master killed with
    # SIGKILL, so the cleanup kills the whole group.
    p = subprocess.Popen(pinned(PIN_HOSTS, [nginx, "-c", conf, "-p", d]), stdout=log,
                         stderr=log, start_new_session=True)
    p.group = True
    log.close()
    procs.append(p)

    def up():
        try:
            c = http.client.HTTPConnection("127.0.0.1", front, timeout=2)
            c.request("GET", "/")
            ok = c.getresponse().status == 200
            c.close()
            return ok
        except OSError:
            return False
    wait(up, 30, "nginx")
    return front, p, "nginx " + version


def front_part():
    """Reads to awake ships through one host's front door beside nginx, rows
    alternating: {conc: (berth row, nginx row or None)} for repeated
    requests, the same for new ones, and nginx's version or why not."""
    port, nginx, version = nginx_start()
    host = Host(8)
    host.peer = None
    host.start()
    out, fresh = {}, {}
    try:
        ships = max(FRONT_CONCS)
        cli(host, "ship", "new", "--program", KV, "--name", "fr", "--count", str(ships),
            "--freeze-timeout", "0", "--idle-timeout", "600000")
        for i in range(ships):
            host.http("PUT", "/s/fr-%d/k/key0" % (i + 1), b"v" * 100)
        for conc in FRONT_CONCS:
            runs, fresh_runs, peer_runs = [], [], []
            for rnd in range(ROUNDS):
                if port is not None:
                    note("front door: %d clients, round %d: nginx" % (conc, rnd + 1))
                    peer_runs.append(gen("load", "get", "127.0.0.1:%d" % port, conc,
                                         SECONDS))
                note("front door: %d clients, round %d: berth" % (conc, rnd + 1))
                runs.append(gen("load", "read", "127.0.0.1:%d" % host.port, conc,
                                SECONDS, "fr"))
                note("front door: %d clients, round %d: berth, new requests"
                     % (conc, rnd + 1))
                fresh_runs.append(gen("load", "fresh", "127.0.0.1:%d" % host.port, conc,
                                      SECONDS, "fr"))
            peer = median_row(peer_runs) if peer_runs else None
            out[conc] = (median_row(runs), peer)
            fresh[conc] = (median_row(fresh_runs), peer)
    finally:
        host.stop()
        if nginx is not None:
            nginx.terminate()
            nginx.wait(30)
    return out, fresh, version if port is not None else "not run: " + version


def beside_print(title, who, peer, unit, rows):
    """A table of berth's rows beside a peer's: rows is {conc: (berth row,
    peer row or None)}; who names the concurrency, unit the rate."""
    print(title + "; " + pin_note())
    print("%7s %10s %9s %9s %7s | %10s %9s %7s | %8s %9s" % (
        who, unit, "p50 ms", "p99 ms", "client", peer + " " + unit, peer + " p99",
        "client", "x " + peer, "p99/" + peer))
    for conc, (r, e) in rows.items():
        print("%7d %10.0f %9s %9s %6.0f%% | %10s %9s %7s | %8s %9s%s" % (
            conc, r["eps"], ms(r["p50_ms"]), ms(r["p99_ms"]), 100 * r["client_share"],
            "%.0f" % e["eps"] if e else "-", ms(e["p99_ms"]) if e else "-",
            "%.0f%%" % (100 * e["client_share"]) if e else "-",
            "%.2fx" % (r["eps"] / e["eps"]) if e and e["eps"] else "-",
            "%.2f" % (r["p99_ms"] / e["p99_ms"]) if e and e["p99_ms"] else "-",
            "  (errors: %d)" % r["errors"] if r["errors"] else ""))
        if e:
            print("%7s rounds, %s: berth %s; %s %s" % (
                "", unit, ", ".join("%.0f" % x for x in r["runs"]), peer,
                ", ".join("%.0f" % x for x in e["runs"])))
    print()


def single_part():
    """One berth host and one etcd member up together, rows alternating:
    {conc: (berth row, etcd row or None)}, and etcd's version or why not."""
    etcd, version = etcd_start(1, "one")
    host = Host(9)
    host.peer = None
    host.start()
    out = {}
    try:
        for conc in SINGLE_CONCS:
            name = "one-c%d" % conc
            cli(host, "ship", "new", "--program", KV, "--name", name, "--count", str(conc))
            for i in range(conc):
                host.http("GET", "/s/%s-%d/k" % (name, i + 1))
            runs, etcd_runs = [], []
            for rnd in range(ROUNDS):
                if etcd is not None:
                    note("one host: %d writers, round %d: etcd" % (conc, rnd + 1))
                    etcd_runs.append(gen("load", "etcd", etcd["targets"], conc, SECONDS,
                                         "one-c%d-r%d-" % (conc, rnd)))
                note("one host: %d writers, round %d: berth" % (conc, rnd + 1))
                runs.append(gen("load", "berth", "127.0.0.1:%d" % host.port, conc,
                                SECONDS, name))
            out[conc] = (median_row(runs), median_row(etcd_runs) if etcd_runs else None)
    finally:
        host.stop()
        if etcd is not None:
            etcd_stop(etcd)
    return out, version if etcd is not None else "not run: " + version


def main():
    global DIR
    os.makedirs(DIR, exist_ok=True)
    DIR = tempfile.mkdtemp(prefix="cluster-", dir=DIR)
    if FRONT_CONCS:
        rows, fresh, version = front_part()
        what = ("GETs of a 100-byte value from awake kv ships through one host's front "
                "door, one ship per client, keep-alive connections, beside %s proxying "
                "to a trivial backend (its own return 200, upstream keep-alive), rows "
                "alternating, %g s a row, median of %d rounds" % (version, SECONDS, ROUNDS))
        beside_print("front door: " + what + "; each client repeats one request, "
                     "answered with the reply the host kept (REUSE)", "clients", "nginx",
                     "req/s", rows)
        beside_print("front door, new requests: the same, each request with a new "
                     "query, so that every one goes to its program", "clients", "nginx",
                     "req/s", fresh)
    if SINGLE_CONCS:
        rows, version = single_part()
        beside_print("one host: one berth host (no peers; an event is acknowledged after "
                     "the host's own fsync) beside one etcd member (%s), POST "
                     "/v3/kv/put, rows alternating, %g s a row, median of %d rounds; "
                     "100-byte PUTs to kv, one ship per client"
                     % (version, SECONDS, ROUNDS), "writers", "etcd", "ev/s", rows)
    if SEAL_CONCS:
        pair_part("sealing", SEAL_CONCS)
    if ACCT_CONCS:
        pair_part("accounting", ACCT_CONCS)
    if PEER_CONCS:
        peer_part()
    if CONCS:
        cluster_part()


# The parts that set one host beside another, same run, rows alternating:
# (the first side's name, its column, its serve options and environment),
# then the second's, and what the part compares.
PAIRS = {
    "sealing": (("sealed", "sealed/s", [], {}),
                ("unsealed", "plain/s", ["--unsealed"], {}),
                "one sealing events, snapshots and ship keys (the default) and one "
                "--unsealed"),
    "accounting": (("accounting", "acct/s", [], {}),
                   ("no accounting", "none/s", [], {"BERTH_ACCOUNTING": "off"}),
                   "one recording usage as entries apply and measuring its programs, "
                   "with its crawler at the default 5% share (the default), and one "
                   "started with BERTH_ACCOUNTING=off (nothing recorded, measured or "
                   "crawled)"),
}


def pair_part(kind, concs):
    """Commits and wakes on one host beside another that differs in one
    setting (PAIRS), same run, rows alternating."""
    first, second, what = PAIRS[kind]
    sides = {}
    for n, (name, _, extra, env) in enumerate((first, second)):
        h = Host(20 + n)
        h.extra = list(extra)
        if env:
            h.env = dict(os.environ, **env)
        h.peer = None
        h.start()
        sides[name] = h
    rows, wakes = {}, {}
    try:
        for conc in concs:
            name = "%s-c%d" % (kind[:4], conc)
            for h in sides.values():
                cli(h, "ship", "new", "--program", KV, "--name", name, "--count", str(conc))
                for i in range(conc):
                    h.http("GET", "/s/%s-%d/k" % (name, i + 1))
            runs = {k: [] for k in sides}
            woke = {k: [] for k in sides}
            for rnd in range(ROUNDS):
                order = list(sides) if rnd % 2 == 0 else list(reversed(list(sides)))
                for k in order:
                    h = sides[k]
                    note("%s: %d writers, round %d: %s" % (kind, conc, rnd + 1, k))
                    runs[k].append(gen("load", "berth", "127.0.0.1:%d" % h.port, conc,
                                       SECONDS, name))
                # Every ship asleep (a snapshot of what it was written),
                # then woken one after another by a read, on each side.
                for k in order:
                    h = sides[k]
                    for i in range(conc):
                        cli(h, "ship", "sleep", "%s-%d" % (name, i + 1))
                for k in order:
                    h = sides[k]
                    for i in range(conc):
                        t0 = time.perf_counter()
                        status = h.http("GET", "/s/%s-%d/k/x" % (name, i + 1))[0]
                        woke[k].append(1000 * (time.perf_counter() - t0))
                        if status not in (200, 404):
                            raise RuntimeError("a wake answered %d" % status)
            rows[conc] = {k: median_row(v) for k, v in runs.items()}
            wakes[conc] = {k: sorted(v) for k, v in woke.items()}
    finally:
        for h in sides.values():
            h.stop()
    print("%s: two hosts alone on one machine (%d cores), side by side: %s; 100-byte "
          "PUTs to kv, one client per ship, closed loop, rows alternating, %g s a row, "
          "median of %d rounds; then each round every ship put to sleep and woken by "
          "one read, one after another (wake = the read's time at the client); %s."
          % (kind, os.cpu_count(), what, SECONDS, ROUNDS, pin_note()))
    a_name, b_name = first[0], second[0]
    print("%7s | %10s %9s | %10s %9s | %8s %8s | %9s %9s | %9s %9s" % (
        "writers", first[1], "p99 ms", second[1], "p99 ms", "ev ratio", "p99 ratio",
        "wake p50", "p99", "2nd p50", "p99"))
    for conc, r in rows.items():
        a, b = r[a_name], r[b_name]
        wa, wb = wakes[conc][a_name], wakes[conc][b_name]
        print("%7d | %10.0f %9s | %10.0f %9s | %8.3f %8.3f | %9.3f %9.3f | %9.3f %9.3f%s" % (
            conc, a["eps"], ms(a["p99_ms"]), b["eps"], ms(b["p99_ms"]),
            a["eps"] / b["eps"] if b["eps"] else 0,
            a["p99_ms"] / b["p99_ms"] if b["p99_ms"] else 0,
            pct(wa, 0.5), pct(wa, 0.99), pct(wb, 0.5), pct(wb, 0.99),
            "  (errors: %d, %d)" % (a["errors"], b["errors"])
            if a["errors"] or b["errors"] else ""))
        print("rounds at %d writers, events/s: %s %s; %s %s; wakes %d a side, "
              "p50 ratio %.3f" % (
                  conc, a_name, ", ".join("%.0f" % x for x in a["runs"]),
                  b_name, ", ".join("%.0f" % x for x in b["runs"]), len(wa),
                  pct(wa, 0.5) / pct(wb, 0.5) if pct(wb, 0.5) else 0))
    print()


def peer_part():
    """Replicated commits with peer encryption on and off, same run."""
    sides = {"sealed": form(0), "plaintext": form(3, dict(os.environ, BERTH_PEER_PLAINTEXT="1"))}
    rows = {}
    for conc in PEER_CONCS:
        name = "p-c%d" % conc
        for hosts in sides.values():
            cli(hosts[0], "ship", "new", "--program", KV, "--name", name, "--count", str(conc),
                "--acks", "quorum")
            for i in range(conc):
                hosts[i % 3].http("GET", "/s/%s-%d/k" % (name, i + 1))
        runs = {k: [] for k in sides}
        for rnd in range(ROUNDS):
            order = list(sides) if rnd % 2 == 0 else list(reversed(list(sides)))
            for k in order:
                hosts = sides[k]
                note("peer: %d writers, round %d: %s" % (conc, rnd + 1, k))
                targets = ",".join("127.0.0.1:%d" % h.port for h in hosts)
                runs[k].append(gen("load", "berth", targets, conc, SECONDS, name))
        rows[conc] = {k: median_row(v) for k, v in runs.items()}
    for hosts in sides.values():
        for h in hosts:
            h.stop()
    print("peer encryption: two 3-host clusters on loopback, one machine (%d cores), side "
          "by side: peers authenticated and sealed (the default) and plaintext "
          "(BERTH_PEER_PLAINTEXT=1); 100-byte PUTs to kv, acks quorum, closed loop, one "
          "client per ship over the 3 front doors, rows alternating, %g s a row, median of "
          "%d rounds; %s." % (os.cpu_count(), SECONDS, ROUNDS, pin_note()))
    print("%7s | %10s %9s %9s | %10s %9s %9s | %8s %8s" % (
        "writers", "sealed/s", "p50 ms", "p99 ms", "plain/s", "p50 ms", "p99 ms",
        "ev ratio", "p99 ratio"))
    for conc, r in rows.items():
        a, b = r["sealed"], r["plaintext"]
        print("%7d | %10.0f %9s %9s | %10.0f %9s %9s | %8.3f %8.3f%s" % (
            conc, a["eps"], ms(a["p50_ms"]), ms(a["p99_ms"]), b["eps"], ms(b["p50_ms"]),
            ms(b["p99_ms"]), a["eps"] / b["eps"] if b["eps"] else 0,
            a["p99_ms"] / b["p99_ms"] if b["p99_ms"] else 0,
            "  (errors: %d, %d)" % (a["errors"], b["errors"])
            if a["errors"] or b["errors"] else ""))
        print("rounds at %d writers, events/s: sealed %s; plaintext %s" % (
            conc, ", ".join("%.0f" % x for x in a["runs"]),
            ", ".join("%.0f" % x for x in b["runs"])))


def cluster_part():
    floors = {"rtt": gen("rtt", 1)}
    for conc in CONCS:
        floors[conc] = gen("fsync", DIR, conc, SECONDS)
    etcd_cluster, version = etcd_start()
    b = berth_part(etcd_cluster)
    etcd = b["etcd"] if etcd_cluster else None

    print("cluster: 3 hosts on loopback, one machine (%d cores); 100-byte PUTs to kv, "
          "closed loop, one client per ship, clients spread over the 3 front doors, "
          "%g s a row, median of %d rounds. Beside: etcd (%s), 3 members on loopback, "
          "POST /v3/kv/put at the same concurrency over the same 3 members, its row run "
          "before berth's in each round; fdatasync floor as in commit above; %s."
          % (os.cpu_count(), SECONDS, ROUNDS, version if etcd else "not run: " + version,
             pin_note()))
    print("%-7s %5s %10s %9s %9s %9s %7s | %10s %9s | %9s %9s | %9s" % (
        "acks", "ships", "events/s", "p50 ms", "p99 ms", "B/event", "client",
        "etcd ev/s", "etcd p99", "x etcd", "p99/etcd", "fsync/berth"))
    for (acks, conc), r in b["rows"].items():
        if isinstance(r, str):
            print("%-7s %5d  not run: %s" % (acks, conc, r))
            continue
        e = etcd.get(conc) if etcd else None
        f = floors[conc]
        print("%-7s %5d %10.0f %9s %9s %9.0f %6.0f%% | %10s %9s | %9s %9s | %8.2fx%s" % (
            acks, conc, r["eps"], ms(r["p50_ms"]), ms(r["p99_ms"]), r["bytes_per_event"],
            100 * r["client_share"],
            "%.0f" % e["eps"] if e else "-", ms(e["p99_ms"]) if e else "-",
            "%.2fx" % (r["eps"] / e["eps"]) if e and e["eps"] else "-",
            "%.2f" % (r["p99_ms"] / e["p99_ms"]) if e and e["p99_ms"] else "-",
            f["eps"] / r["eps"] if r["eps"] else 0,
            "  (errors: %d)" % r["errors"] if r["errors"] else ""))
    if etcd:
        for conc in CONCS:
            r = b["rows"].get(("quorum", conc))
            if isinstance(r, dict) and conc in etcd:
                print("rounds at %d writers, events/s: quorum %s; etcd %s; x etcd %s" % (
                    conc, ", ".join("%.0f" % x for x in r["runs"]),
                    ", ".join("%.0f" % x for x in etcd[conc]["runs"]),
                    ", ".join("%.2f" % (x / y) if y else "-"
                              for x, y in zip(r["runs"], etcd[conc]["runs"]))))
        print("etcd client CPU share: %s" % ", ".join(
            "%d: %.0f%%" % (c, 100 * etcd[c]["client_share"]) for c in CONCS))
    rtt = floors["rtt"]
    print("floors: loopback round trip p50 %s ms, p99 %s ms; fdatasync per batch p50 %s" % (
        ms(rtt["p50_ms"]), ms(rtt["p99_ms"]),
        ", ".join("%d: %s ms" % (c, ms(floors[c]["p50_ms"])) for c in CONCS)))
    fo = b["failover"]
    print("failover: kill -9 of the leader to the first acknowledged write through a "
          "survivor, %d rounds: p50 %s ms, p99 %s ms, max %s ms (%.0fx the loopback RTT p50)"
          % (len(fo), ms(pct(fo, 0.5) * 1e3), ms(pct(fo, 0.99) * 1e3), ms(max(fo) * 1e3),
             pct(fo, 0.5) * 1e3 / rtt["p50_ms"] if rtt["p50_ms"] else 0))
    secs, events = b["catchup"]
    print("catch-up: a host %d events behind applied them all %.2f s after its restart "
          "(%.0f events/s)" % (events, secs, events / secs if secs else 0))


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in procs:
            if getattr(p, "group", False):
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if p.poll() is None:
                p.kill()
                p.wait()
