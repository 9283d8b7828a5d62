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


class Host:
    def __init__(self, data, extra=()):
        self.data = data
        self.extra = list(extra)
        self.port = None
        self.proc = None
        self.log_path = data + ".log"
        self.preexec_fn = None  # run in the host's process before exec
        self.env = None  # the host's environment; None: the test's
        self.started = False

    @property
    def tag(self):
        return data_tag(self.data)

    def start(self, timeout=20):
        self.port = self.port or free_port()
        self.started = True
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BERTH, "serve", "--data", self.data, "--listen",
             "127.0.0.1:%d" % self.port] + self.extra,
            stdout=self.log, stderr=self.log, preexec_fn=self.preexec_fn,
            env=self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("host exited with %s:\n%s" % (self.proc.returncode, self.logs()))
            try:
                status, _, _ = self.http("GET", "/healthz", timeout=1)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("host not ready:\n" + self.logs())

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
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.getheader("Content-Type"), r.read()
        finally:
            c.close()

    def cli(self, *args, check=True):
        r = subprocess.run([BERTH] + list(args) + ["--data", self.data],
                           capture_output=True, text=True, timeout=60)
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
    for h in hosts:
        if h.proc is not None:
            h.stop()
    # Nothing a host started may outlive it, whether it stopped or was
    # killed: no program, and nothing a program started.
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
