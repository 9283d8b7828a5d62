"""berth serve under a service manager, as systemd runs the units in
packaging/ (Type=notify, WatchdogSec, socket activation): the test binds the
unix datagram socket systemd would, starts a real host with NOTIFY_SOCKET
and WATCHDOG_USEC, and reads what the host says: READY=1 only once both
doors answer, a STATUS, WATCHDOG=1 pings at half the period, STOPPING=1 on
SIGTERM. And it holds the front door's socket as berth.socket does and
passes it (LISTEN_FDS): a request sent while the host restarts waits in the
socket and is answered by the new process, and no program inherits the
socket."""
import http.client
import os
import signal
import socket
import threading
import time

from conftest import ROOT, free_port


def bind(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(20)
    return s


def messages(sock, until, timeout=20):
    """Read datagrams until one holds the line `until`; return every line
    read with the monotonic time its datagram came."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(4096).decode()
        now = time.monotonic()
        for line in data.split("\n"):
            got.append((now, line))
        if until in data.split("\n"):
            return got
    raise AssertionError("no %s in %s s; got %s" % (until, timeout, got))


def start_async(h):
    """Start h in a thread (Host.start waits for /healthz), so that the
    test reads the socket meanwhile."""
    errors = []

    def run():
        try:
            h.start()
        except Exception as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    return t, errors


def test_ready_watchdog_stopping(host_factory, tmpdir_path):
    path = os.path.join(tmpdir_path, "notify.sock")
    sock = bind(path)
    h = host_factory()
    h.port = free_port()
    h.env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
    t, errors = start_async(h)
    got = messages(sock, "READY=1")
    # The moment READY=1 came, the front door and the admin socket answer.
    status, _, body = h.http("GET", "/healthz", timeout=5)
    assert status in (200, 503), (status, body)
    st, _ = h.admin("GET", "/v1/stats")
    assert st == 200
    t.join(30)
    assert not errors, errors
    assert any(l.startswith("STATUS=") for _, l in got), got
    # Pings at half of 400 ms: at least 5 in 1.5 s (the count a loop
    # that works keeps up with even on a loaded machine).
    start = time.monotonic()
    pings = 0
    status_lines = []
    while time.monotonic() - start < 1.5:
        sock.settimeout(1.5)
        for line in sock.recv(4096).decode().split("\n"):
            pings += line == "WATCHDOG=1"
            if line.startswith("STATUS="):
                status_lines.append(line)
    assert pings >= 5, pings
    # The host leads by now (one host), and its STATUS says so.
    sid = h.new_ship(name="ann")
    assert sid
    statuses = [l for _, l in got if l.startswith("STATUS=")] + status_lines
    sock.settimeout(5)
    deadline = time.monotonic() + 5
    while not any("leading" in s for s in statuses) and time.monotonic() < deadline:
        statuses += [l for l in sock.recv(4096).decode().split("\n")
                     if l.startswith("STATUS=")]
    assert any("leading" in s for s in statuses), statuses
    # A stop says STOPPING=1 before the process is gone.
    h.proc.send_signal(signal.SIGTERM)
    got = messages(sock, "STOPPING=1")
    assert h.proc.wait(20) == 0
    h.stop()
    sock.close()


def test_watchdog_for_another_pid_and_abstract_socket(host_factory):
    """An abstract socket (NOTIFY_SOCKET=@name) is reached; WATCHDOG_PID of
    another process turns the pings off, as systemd means it."""
    name = "berth-test-%d-%d" % (os.getpid(), free_port())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    h = host_factory()
    h.port = free_port()
    h.env = dict(os.environ, NOTIFY_SOCKET="@" + name, WATCHDOG_USEC="200000",
                 WATCHDOG_PID="1")
    t, errors = start_async(h)
    got = messages(sock, "READY=1")
    t.join(30)
    assert not errors, errors
    sock.settimeout(0.6)
    later = []
    try:
        while True:
            later += sock.recv(4096).decode().split("\n")
    except socket.timeout:
        pass
    assert "WATCHDOG=1" not in [l for _, l in got] + later
    assert h.stop() == 0
    sock.close()


def test_no_notify_socket(host_factory):
    """Without NOTIFY_SOCKET (a bad one included) the host starts and stops
    as ever."""
    h = host_factory()
    h.env = dict(os.environ, NOTIFY_SOCKET="not-a-socket-address",
                 WATCHDOG_USEC="100000")
    h.start()
    assert h.http("GET", "/healthz")[0] == 200
    assert h.stop() == 0
    assert "cannot notify the service manager" in h.logs()


# As systemd starts a socket-activated service (test/activate.py).
ACTIVATE = os.path.join(ROOT, "test", "activate.py")


def socket_inodes(pid):
    """The inodes of the sockets process pid holds."""
    found = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            found.add(int(link[8:-1]))
    return found


def test_socket_activation_restart_refuses_nothing(host_factory):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    h = host_factory()
    h.port = sock.getsockname()[1]
    h.pass_fds = (sock.fileno(),)
    h.prefix = ["python3", ACTIVATE, "--fd", str(sock.fileno())]
    h.start()
    assert "front door socket from the service manager" in h.logs()
    h.new_ship(name="ann")
    assert h.http("PUT", "/s/ann/k/a", b"before")[0] in (200, 201)
    # The program does not hold the front door's socket.
    inode = os.fstat(sock.fileno()).st_ino
    pid = h.cli_json("ship", "show", "ann")["pid"]
    assert pid, "ann's program is not running"
    assert inode not in socket_inodes(pid)

    # Stop; while no host runs, a client connects and asks.
    h.proc.send_signal(signal.SIGTERM)
    assert h.proc.wait(20) == 0
    h.stop()
    c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=30)
    c.connect()  # not refused: the socket outlives the process
    c.request("GET", "/s/ann/k/a")
    h.start()
    r = c.getresponse()
    assert (r.status, r.read()) == (200, b"before")
    c.close()
    assert h.stop() == 0
    sock.close()
