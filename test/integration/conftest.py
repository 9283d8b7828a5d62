"""Real hosts for integration tests: each Host is a `berth serve` process on
loopback with its own data directory, driven through the CLI and HTTP."""
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import http.client

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BERTH = os.environ.get("BERTH_BIN", os.path.join(ROOT, "build", "berth"))
PROGRAMS = os.environ.get("BERTH_PROGRAMS", os.path.join(ROOT, "build", "programs"))
KV = os.path.join(PROGRAMS, "kv")
MISBEHAVE = os.path.join(os.path.dirname(PROGRAMS), "test", "programs", "misbehave")


def data_tag(data):
    """The tag a host names its programs after: its data directory's device
    and inode, as every program of it has BERTH_HOST=<tag>/<run>."""
    st = os.stat(data)
    return "%x-%x" % (st.st_dev, st.st_ino)


def tagged_processes(tag):
    """(pid, command line) of every process whose environment says it is a
    program of the host with this tag, or something such a program started;
    found even after they were handed to init."""
    want = ("BERTH_HOST=%s/" % tag).encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read().split(b"\0")
            if not any(e.startswith(want) for e in env):
                continue
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            found.append((int(name), cmd))
        except OSError:
            pass
    return found


def wait_no_programs(tag, timeout=5):
    """Wait until no process of the host with this tag is left; return what
    is left after the timeout (empty when none)."""
    deadline = time.time() + timeout
    while True:
        left = tagged_processes(tag)
        if not left or time.time() >= deadline:
            return left
        time.sleep(0.05)


def wait_for(fn, timeout=10, step=0.02):
    """Poll fn until it returns a true value, which is returned; fail after
    timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("condition not met in %s s" % timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Running hosts by peer address: a host started with --join and no cluster
# secret gets the secret of the host it joins through (`berth cluster
# secret`), as an operator would give it.
PEERS = {}


def cluster_secret_env(args, env, data):
    """env (None: this process's) with BERTH_CLUSTER_SECRET of the host that
    args join through, when they join for the first time (data has no
    cluster.key yet: a member needs nothing) and give no secret."""
    if "--join" not in args or "--cluster-secret-file" in args:
        return env
    if os.path.exists(os.path.join(data, "cluster.key")):
        return env
    if "BERTH_CLUSTER_SECRET" in (env if env is not None else os.environ):
        return env
    through = PEERS.get(args[args.index("--join") + 1])
    if through is None or through.proc is None or through.proc.poll() is not None:
        return env
    secret = through.cli("cluster", "secret").stdout.strip()
    env = dict(env if env is not None else os.environ)
    env["BERTH_CLUSTER_SECRET"] = secret
    return env


class Host:
    def __init__(self, data, extra=()):
        self.data = data
        self.extra = list(extra)
        self.address = "127.0.0.1"  # where the front door listens
        self.prefix = []  # put before berth on the command line
        self.port = None
        self.proc = None
        self.log_path = data + ".log"
        self.preexec_fn = None  # run in the host's process before exec
        self.pass_fds = ()  # descriptors the host's process inherits
        self.env = None  # the host's environment; None: the test's
        self.started = False
        self.ever_ready = False  # it answered /healthz once
        self.admin_port = None  # the port of --admin HOST:PORT, once started

    @property
    def tag(self):
        return data_tag(self.data)

    def fresh_ports(self):
        """Pick other ports (front door, --admin, --peer) after a clash, if
        this host never ran (a port from free_port() can be taken by a test
        running beside this one before the host binds it); return whether
        it did."""
        if self.ever_ready:
            return False
        self.port = free_port()
        if "--admin" in self.extra:
            i = self.extra.index("--admin") + 1
            host = self.extra[i].rsplit(":", 1)[0]
            self.extra[i] = "%s:%d" % (host, free_port())
        if "--peer" in self.extra:
            i = self.extra.index("--peer") + 1
            host = self.extra[i].rsplit(":", 1)[0]
            self.extra[i] = "%s:%d" % (host, free_port())
            self.peer = self.extra[i]
        return True

    def start(self, timeout=20):
        for attempt in range(3):
            try:
                return self._start(timeout)
            except RuntimeError as e:
                if "address already in use" not in str(e) or not self.fresh_ports():
                    raise
        return self._start(timeout)

    def _start(self, timeout):
        self.port = self.port or free_port()
        self.started = True
        self.log = open(self.log_path, "ab")
        size = self.log.tell()
        args = self.serve_args()
        env = cluster_secret_env(args, self.env, self.data)
        self.proc = subprocess.Popen(
            self.prefix + [BERTH, "serve", "--data", self.data, "--listen",
                           "%s:%d" % (self.address, self.port)] + args,
            stdout=self.log, stderr=self.log, preexec_fn=self.preexec_fn,
            env=env, pass_fds=self.pass_fds)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                with open(self.log_path, "rb") as f:
                    f.seek(size)
                    now = f.read().decode(errors="replace")
                self.proc = None
                raise RuntimeError("host exited:\n%s" % now[-4000:])
            try:
                status, _, _ = self.http("GET", "/healthz", timeout=1)
                if status == 200:
                    self.ever_ready = True
                    if "--admin" in args:
                        # As bound: fresh_ports may have picked another.
                        self.admin_port = int(args[args.index("--admin") + 1].rsplit(":", 1)[1])
                    if "--peer" in args:
                        PEERS[args[args.index("--peer") + 1]] = self
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("host not ready:\n" + self.logs())

    def serve_args(self):
        """The serve options after --data and --listen."""
        return self.extra

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("host did not stop on SIGTERM")
        rc = self.proc.returncode if self.proc else 0
        self.proc = None
        self.log.close()
        return rc

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        self.log.close()

    def http(self, method, path, body=None, timeout=30, headers=None):
        c = http.client.HTTPConnection(self.address, self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.getheader("Content-Type"), r.read()
        finally:
            c.close()

    def admin(self, method, path, body=None, timeout=10):
        """One admin request: (status, parsed JSON or None)."""
        c = UnixHTTPConnection(os.path.join(self.data, "admin.sock"), timeout)
        try:
            if body is not None and not isinstance(body, (bytes, str)):
                body = json.dumps(body)
            c.request(method, path, body=body,
                      headers={"Content-Type": "application/json"} if body else {})
            r = c.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw) if raw else None
            except ValueError:
                return r.status, raw
        finally:
            c.close()

    def cli(self, *args, check=True, env=None):
        r = subprocess.run([BERTH] + list(args) + ["--data", self.data],
                           capture_output=True, text=True, timeout=60, env=env)
        if check and r.returncode != 0:
            raise AssertionError("berth %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr))
        return r

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)

    def new_ship(self, program=None, name=None, *extra):
        args = ["ship", "new", "--program", program or KV]
        if name:
            args += ["--name", name]
        return self.cli_json(*args, *extra)["id"]


@pytest.fixture
def tmpdir_path():
    with tempfile.TemporaryDirectory(prefix="berth-it-", dir=os.environ.get("BERTH_TEST_TMP")) as d:
        yield d


@pytest.fixture
def host_factory(tmpdir_path):
    hosts = []

    def make(extra=(), name="host"):
        h = Host(os.path.join(tmpdir_path, name), extra)
        hosts.append(h)
        return h

    yield make
    stop_hosts(hosts)


def stop_hosts(hosts):
    """Stop every host still running (SIGTERM to all, then wait; SIGKILL
    past 20 s) and check that nothing a host started outlives it, whether it
    stopped or was killed: no program, and nothing a program started."""
    late = []
    for h in hosts:
        if h.proc is not None and h.proc.poll() is None:
            h.proc.send_signal(signal.SIGTERM)
    for h in hosts:
        if h.proc is None:
            continue
        try:
            h.proc.wait(20)
        except subprocess.TimeoutExpired:
            h.proc.kill()
            h.proc.wait()
            late.append("%s:\n%s" % (h.data, h.logs()[-1500:]))
        h.proc = None
        h.log.close()
    left = []
    for h in hosts:
        if h.started and os.path.isdir(h.data):
            left += wait_no_programs(h.tag)
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    assert not left, "processes of the host outlived it: %s" % left
    assert not late, "hosts did not stop on SIGTERM in 20 s: %s" % "\n".join(late)


@pytest.fixture
def host(host_factory):
    return host_factory().start()


@pytest.fixture
def tmpfs():
    """Mount small tmpfs file systems (a full disk on demand). Mounting needs
    root; without it the test fails, since a skipped test proves nothing."""
    mounts = []

    def mount(size_mb):
        d = tempfile.mkdtemp(prefix="berth-tmpfs-")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mb, "tmpfs", d],
                           capture_output=True)
        if r.returncode != 0:
            os.rmdir(d)
            pytest.fail("cannot mount a small tmpfs (the full-disk tests need root): %s"
                        % r.stderr.decode(errors="replace").strip())
        mounts.append(d)
        return d

    yield mount
    for d in mounts:
        subprocess.run(["umount", "-l", d])
        os.rmdir(d)


# --- Clusters: several hosts on loopback or in network namespaces. ---

class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket: a host's admin API (DATA/admin.sock)."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class ClusterHost(Host):
    """A host of a cluster: a front door, a peer port and the admin API on
    DATA/admin.sock (reachable from any network namespace). It joins the
    cluster of `join` (a peer address) the first time it starts."""

    def __init__(self, data, extra=(), address="127.0.0.1", netns=None):
        super().__init__(data, extra)
        self.address = address
        self.peer_address = address
        self.peer_port = None
        self.netns = netns
        if netns:
            self.prefix = ["ip", "netns", "exec", netns]
        self.join = None
        self.joined = False  # whether --join was given once already
        self.id = None  # the raft id, once the host has shown it

    @property
    def peer(self):
        return "%s:%d" % (self.peer_address, self.peer_port)

    @property
    def listen(self):
        return "%s:%d" % (self.address, self.port)

    def serve_args(self):
        args = ["--peer", self.peer]
        if self.join and not self.joined:
            args += ["--join", self.join]
        return args + self.extra

    def fresh_ports(self):
        if self.netns or not super().fresh_ports():
            return False
        self.peer_port = free_port()
        return True

    def start(self, timeout=20):
        if self.netns:
            self.port = self.port or 8080
            self.peer_port = self.peer_port or 7000
        else:
            self.peer_port = self.peer_port or free_port()
        super().start(timeout)
        self.joined = True
        return self

    def cluster(self, timeout=5):
        """GET /v1/cluster from this host, or None when it does not answer."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        try:
            status, v = self.admin("GET", "/v1/cluster", timeout=timeout)
        except OSError:
            return None
        if status != 200 or not isinstance(v, dict):
            return None
        self.id = v.get("id", self.id)
        return v

    def running(self):
        return self.proc is not None and self.proc.poll() is None


WRITE_OK = (200, 201)


class Cluster:
    """N hosts forming one cluster. hosts[0] bootstraps it and the others
    join it. Requests may go to any host: a follower forwards to the leader.
    Hosts are stopped and checked for leftover processes by the fixture."""

    def __init__(self, make_host, n, extra=()):
        self.make_host = make_host
        self.extra = list(extra)
        # Voters the cluster keeps (berth serve --voters, default 3).
        self.voters = int(self.extra[self.extra.index("--voters") + 1]) \
            if "--voters" in self.extra else 3
        self.hosts = []
        for _ in range(n):
            self.add_host()

    def add_host(self, extra=None):
        """A new host, not started, that will join through hosts[0] (or the
        first running host at its start)."""
        h = self.make_host(len(self.hosts), self.extra if extra is None else extra)
        self.hosts.append(h)
        return h

    def start(self, timeout=60):
        """Start every host: the first alone, then the others joining it;
        wait until each one's GET /v1/cluster shows them all."""
        first = self.hosts[0]
        first.start()
        wait_for(lambda: (first.cluster() or {}).get("leader"), timeout,
                 step=0.05)
        for h in self.hosts[1:]:
            h.join = first.peer
            h.start()
        self.wait_members(self.hosts, timeout)
        return self

    def start_joining(self, h, timeout=60):
        """Start a host added after the cluster formed, joining through a
        running member."""
        through = next(x for x in self.hosts if x is not h and x.running())
        h.join = through.peer
        h.start()
        return h

    def running(self):
        return [h for h in self.hosts if h.running()]

    def views(self):
        """{host: its GET /v1/cluster} for every running host answering."""
        out = {}
        for h in self.running():
            v = h.cluster()
            if v is not None:
                out[h] = v
        return out

    def wait_members(self, members, timeout=60, voters=None):
        """Wait until every running host lists exactly `members` (their peer
        addresses), agrees on one leader, sees them all online, and the
        cluster has as many voters as it keeps (`voters`, or all hosts when
        fewer)."""
        want = sorted(h.peer for h in members)
        want_voters = min(voters or self.voters, len(members))

        def agreed():
            views = self.views()
            if len(views) != len(self.running()) or not views:
                return None
            leaders = set()
            for v in views.values():
                hosts = v.get("hosts", [])
                if sorted(x.get("peer") for x in hosts) != want:
                    return None
                if not all(x.get("online") for x in hosts):
                    return None
                if sum(1 for x in hosts if x.get("role") == "voter") != want_voters:
                    return None
                leaders.add(v.get("leader"))
            if len(leaders) != 1 or 0 in leaders or None in leaders:
                return None
            return views

        try:
            return wait_for(agreed, timeout, step=0.1)
        except AssertionError:
            raise AssertionError("cluster did not agree on %s in %s s; views: %s\n%s"
                                 % (want, timeout, self.views(), self.all_logs()))

    def by_id(self, hid):
        for h in self.hosts:
            if h.id == hid:
                return h
        return None

    def leader(self, timeout=30, exclude=()):
        """The running host that a majority of running hosts name as leader
        and that says it leads, once there is one."""
        def find():
            views = self.views()
            votes = {}
            for h, v in views.items():
                if v.get("leader"):
                    votes[v["leader"]] = votes.get(v["leader"], 0) + 1
            for lid, n in votes.items():
                h = self.by_id(lid)
                if h is None or h in exclude or h not in views:
                    continue
                if views[h].get("leader") == lid and n * 2 > len(views):
                    return h
            return None

        try:
            return wait_for(find, timeout, step=0.05)
        except AssertionError:
            raise AssertionError("no leader in %s s; views: %s\n%s"
                                 % (timeout, self.views(), self.all_logs()))

    def followers(self):
        lead = self.leader()
        return [h for h in self.running() if h is not lead]

    def kill9(self, h):
        h.kill9()

    def restart(self, h, timeout=20):
        """Start a stopped or killed host again on its data directory."""
        return h.start(timeout)

    def applied(self):
        """{peer: applied index} as the leader sees it."""
        v = self.leader().cluster() or {}
        return {x["peer"]: x.get("applied") for x in v.get("hosts", [])}

    def wait_caught_up(self, timeout=60):
        """Wait until every running host has applied what the leader had
        applied when this was called, each by its own report. (Under writes
        the leader is always a little ahead: equal indexes at one instant
        may never come.)"""
        def own_applied():
            own = {}
            for h, v in self.views().items():
                mine = [x for x in v.get("hosts", []) if x.get("id") == v.get("id")]
                if mine and mine[0].get("applied") is not None:
                    own[h] = mine[0]["applied"]
            return own
        lead = self.leader()
        target = wait_for(lambda: own_applied().get(lead), 10)

        def same():
            if len(self.views()) != len(self.running()):
                return None
            own = own_applied()
            if len(own) != len(self.running()) or any(a < target for a in own.values()):
                return None
            return own

        try:
            return wait_for(same, timeout, step=0.1)
        except AssertionError:
            raise AssertionError("hosts did not catch up in %s s: %s"
                                 % (timeout, {h.peer: v for h, v in self.views().items()}))

    def request(self, method, path, body=None, via=None, tries=40, timeout=10,
                among=None, errors=None, polite=False):
        """One front-door request through `via` (default: any running host
        of `among`, or of the cluster, in turn), retried on the next host
        when the connection fails or the answer is 503 (leadership changed,
        starting). Returns (status, body, tries used); each failed try is
        appended to `errors` as (seconds, host's peer, what), if given.
        A polite client waits as a 503's Retry-After says, and takes a
        connection refused (a host that is down) as no try at all: it goes
        on to the next host at once."""
        t0 = time.time()
        refused = 0
        last = None
        for i in range(tries):
            if via is not None:
                hosts = [via]
            else:
                hosts = [h for h in (among or self.hosts) if h.running()]
            if not hosts:
                time.sleep(0.1)
                continue
            h = hosts[(hash(path) + i + refused) % len(hosts)]
            c = http.client.HTTPConnection(h.address, h.port, timeout=timeout)
            try:
                c.request(method, path, body=body)
                r = c.getresponse()
                status, data = r.status, r.read()
                wait = float(r.getheader("Retry-After") or 0)
            except ConnectionRefusedError as e:
                last = e
                if polite and refused < 10:
                    refused += 1
                    continue
                if errors is not None:
                    errors.append((round(time.time() - t0, 3), h.peer, repr(e)))
                time.sleep(0.05)
                continue
            except (OSError, http.client.HTTPException) as e:
                last = e
                if errors is not None:
                    errors.append((round(time.time() - t0, 3), h.peer, repr(e)))
                time.sleep(0.05)
                continue
            finally:
                c.close()
            if status == 503:
                last = (status, data)
                if errors is not None:
                    errors.append((round(time.time() - t0, 3), h.peer, data[:80]))
                time.sleep(wait if polite and wait else 0.05)
                continue
            return status, data, i + 1 - refused
        raise AssertionError("%s %s failed after %d tries: %s" % (method, path, tries, last))

    def new_ship(self, name, *extra, via=None):
        """Create a ship through `via` (default the leader), with retries."""
        for _ in range(20):
            h = via or self.leader()
            r = h.cli("ship", "new", "--program", KV, "--name", name, "--json", *extra,
                      check=False)
            if r.returncode == 0:
                return json.loads(r.stdout)["id"]
            if "exists" in r.stderr or "taken" in r.stderr:
                return h.cli_json("ship", "show", name)["id"]
            time.sleep(0.2)
        raise AssertionError("ship new %s failed: %s" % (name, r.stderr))

    def all_logs(self):
        return "\n".join("--- %s (%s)\n%s" % (h.data, h.peer, h.logs()[-1500:])
                         for h in self.hosts if h.started)


class Writers:
    """Concurrent closed-loop writers, one per ship, each writing a fresh
    key per request through any host (with retries) and recording every
    acknowledged write. check() reads every acknowledged write back."""

    def __init__(self, cluster, ships, prefix="w", targets=None, polite=False):
        import threading
        self.cluster = cluster
        self.polite = polite  # see Cluster.request
        self.targets = targets  # the hosts to write through; None: any
        self.ships = list(ships)
        self.prefix = prefix
        self.acked = {s: {} for s in self.ships}  # ship -> {key: value}
        self.failed = []  # (ship, key, error) of writes never acknowledged
        self.stop_event = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(s,), daemon=True)
                        for s in self.ships]
        self.retries = 0
        self.max_tries = 0
        self.worst = None  # the request that needed the most tries, and why

    def _run(self, ship):
        i = 0
        while not self.stop_event.is_set():
            key = "%s%d" % (self.prefix, i)
            value = ("%s-%s-%d" % (ship, key, os.getpid())).encode()
            try:
                errors = []
                status, _, tries = self.cluster.request(
                    "PUT", "/s/%s/k/%s" % (ship, key), value, tries=200,
                    among=self.targets, errors=errors, polite=self.polite)
                self.retries += tries - 1
                if tries > self.max_tries:
                    self.max_tries = tries
                    self.worst = (ship, key, errors[:3] + ["..."] + errors[-3:])
                if status in WRITE_OK:
                    self.acked[ship][key] = value
                else:
                    self.failed.append((ship, key, status))
            except AssertionError as e:
                self.failed.append((ship, key, str(e)))
            i += 1

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(60)
        assert not any(t.is_alive() for t in self.threads), "a writer hung"

    def count(self):
        return sum(len(a) for a in self.acked.values())

    def check(self, via=None, values=25):
        """Every acknowledged write is there, read through `via` (default:
        the leader): each ship's keys, and the values of `values` of them
        a ship, chosen at random (None: all)."""
        import random
        via = via or self.cluster.leader()
        lost = []
        for ship, acked in self.acked.items():
            status, body, _ = self.cluster.request("GET", "/s/%s/k" % ship, via=via)
            assert status == 200, (ship, status, body)
            keys = set(json.loads(body))
            lost += [(ship, k) for k in acked if k not in keys]
            some = list(acked.items())
            if values is not None and len(some) > values:
                some = random.sample(some, values)
            for k, v in some:
                if k in keys:
                    status, body, _ = self.cluster.request(
                        "GET", "/s/%s/k/%s" % (ship, k), via=via)
                    if (status, body) != (200, v):
                        lost.append((ship, k, status, body))
        assert not lost, "acknowledged writes lost: %s" % lost[:20]


def store_query(data, *queries):
    """The rows of each query, run on a copy of a host's store (its WAL
    included), so that the host's files are left as they were: one list of
    rows, or a list of lists for several queries."""
    import shutil
    import sqlite3
    with tempfile.TemporaryDirectory(prefix="berth-store-") as d:
        for suffix in ("", "-wal"):
            src = os.path.join(data, "store.db" + suffix)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(d, "store.db" + suffix))
        db = sqlite3.connect(os.path.join(d, "store.db"))
        try:
            out = [db.execute(q).fetchall() for q in queries]
        finally:
            db.close()
    return out[0] if len(out) == 1 else out


def store_sql(h, query, args=()):
    """Run one statement on a stopped host's store itself, as an operator
    with the sqlite3 tool would (to damage or alter it); return its rows."""
    import sqlite3
    db = sqlite3.connect(os.path.join(h.data, "store.db"))
    try:
        rows = db.execute(query, args).fetchall()
        db.commit()
        return rows
    finally:
        db.close()


def store_ships(data):
    """{ship name: (last_event, last_hash hex)} from a host's store."""
    rows = store_query(data, "SELECT coalesce(name, id), last_event, hex(last_hash) FROM ships")
    return {r[0]: (r[1], r[2]) for r in rows}


def admin_tcp(port, method, path, token=None, body=None, timeout=10):
    """One request to the admin API on TCP: (status, headers, JSON or
    bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        raw = r.read()
        try:
            v = json.loads(raw) if raw else None
        except ValueError:
            v = raw
        return r.status, dict(r.getheaders()), v
    finally:
        c.close()


class Netns:
    """Network namespaces for a cluster's hosts, made and removed by the
    test. Each host i has a namespace with two veth links: one on a peer
    network (10.A.B.0/24, bridge in the root namespace) for raft traffic and
    one on a client network (10.A.B+1.0/24, whose bridge has the root
    namespace's address .254) for its front door. cut(i) takes host i's
    peer link down: a partition from every other host, while the test can
    still reach its front door. Making them needs root (CAP_NET_ADMIN);
    without it the test fails."""

    serial = 0

    def __init__(self, n):
        if Netns.serial == 0:
            Netns.remove_stale()
        Netns.serial += 1
        self.tag = "%x%x" % (os.getpid(), Netns.serial % 16)
        used = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
        base = 16 + (os.getpid() * 8 + Netns.serial * 2) % 224
        while "10.213.%d." % base in used or "10.213.%d." % (base + 1) in used:
            base = 16 + (base + 2 - 16) % 224
        self.peer_net = "10.213.%d" % base
        self.client_net = "10.213.%d" % (base + 1)
        self.n = 0
        self.names = []
        self.bridges = ["b%sP" % self.tag, "b%sC" % self.tag]
        self.made_bridges = []
        try:
            for br, net in zip(self.bridges, (self.peer_net, self.client_net)):
                self._ip("link", "add", br, "type", "bridge")
                self.made_bridges.append(br)
                self._ip("addr", "add", "%s.254/24" % net, "dev", br)
                self._ip("link", "set", br, "up")
            for _ in range(n):
                self.add()
        except BaseException:
            self.remove()
            raise

    @staticmethod
    def remove_stale():
        """Remove namespaces and bridges that an earlier test process, now
        gone, left behind (named berth-t<pid hex><serial>-<i>)."""
        r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            parts = name.split("-")
            if len(parts) != 3 or parts[0] != "berth" or not parts[1].startswith("t"):
                continue
            tag = parts[1][1:]
            try:
                pid = int(tag[:-1], 16)
            except ValueError:
                continue
            if os.path.exists("/proc/%d" % pid):
                continue
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                                  text=True).stdout.split()
            for p in pids:
                try:
                    os.kill(int(p), signal.SIGKILL)
                except OSError:
                    pass
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            for br in ("b%sP" % tag, "b%sC" % tag):
                subprocess.run(["ip", "link", "del", br], capture_output=True)

    @staticmethod
    def _ip(*args, ns=None):
        cmd = (["ip", "netns", "exec", ns] if ns else []) + ["ip"] + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail("cannot set up network namespaces (these tests need root "
                        "and iproute2): %s: %s" % (" ".join(cmd), r.stderr.strip()))
        return r.stdout

    def add(self):
        """Make the namespace of one more host; return its name."""
        i = self.n
        self.n += 1
        ns = "berth-t%s-%d" % (self.tag, i)
        self._ip("netns", "add", ns)
        self.names.append(ns)
        for kind, br, net in (("p", self.bridges[0], self.peer_net),
                              ("c", self.bridges[1], self.client_net)):
            outer = "b%s%d%s" % (self.tag, i, kind)
            self._ip("link", "add", outer, "type", "veth", "peer", "name", "e" + kind,
                     "netns", ns)
            self._ip("link", "set", outer, "master", br)
            self._ip("link", "set", outer, "up")
            self._ip("addr", "add", "%s.%d/24" % (net, i + 1), "dev", "e" + kind, ns=ns)
            self._ip("link", "set", "e" + kind, "up", ns=ns)
        self._ip("link", "set", "lo", "up", ns=ns)
        return ns

    def peer_address(self, i):
        return "%s.%d" % (self.peer_net, i + 1)

    def client_address(self, i):
        return "%s.%d" % (self.client_net, i + 1)

    def cut(self, i):
        """Partition host i from every other host (its peer link down)."""
        self._ip("link", "set", "b%s%dp" % (self.tag, i), "down")

    def heal(self, i):
        self._ip("link", "set", "b%s%dp" % (self.tag, i), "up")

    def remove(self):
        """Remove every namespace and bridge made (their veths go with
        them); processes still inside our namespaces are ours and killed."""
        for ns in self.names:
            r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in r.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.names = []
        for br in self.made_bridges:
            subprocess.run(["ip", "link", "del", br], capture_output=True)
        self.made_bridges = []


@pytest.fixture
def cluster_factory(tmpdir_path):
    """cluster_factory(n, extra=(), netns=False) -> Cluster, not started.
    At the end every host is stopped, checked for leftover programs, and
    the namespaces are removed, even when the test failed."""
    hosts = []
    nets = []
    made = []

    def make(n, extra=(), netns=False):
        tag = len(made)
        made.append(n)
        net = Netns(0) if netns else None
        if net:
            nets.append(net)

        def make_host(i, host_extra):
            if net:
                ns = net.add()
                k = net.n - 1
                h = ClusterHost(os.path.join(tmpdir_path, "c%d-h%d" % (tag, i)), host_extra,
                                address=net.client_address(k), netns=ns)
                h.peer_address = net.peer_address(k)
                h.index = k
            else:
                h = ClusterHost(os.path.join(tmpdir_path, "c%d-h%d" % (tag, i)), host_extra)
            hosts.append(h)
            return h

        c = Cluster(make_host, n, extra)
        c.net = net
        return c

    try:
        yield make
        stop_hosts(hosts)
    finally:
        for h in hosts:
            if h.proc is not None and h.proc.poll() is None:
                h.proc.kill()
                h.proc.wait()
        for net in nets:
            net.remove()
