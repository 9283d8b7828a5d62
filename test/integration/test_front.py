"""The front door under abuse: trickled headers, many connections from one
address, idle connections by the thousand, obs-folded headers."""
import resource
import select
import socket
import time

from conftest import KV


def connect(host, src="127.0.0.1"):
    """A connection to the host's front door from the loopback address src
    (all of 127/8 is loopback, so each is a distinct client address)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", host.port))
    return s


def wait_closed(s, within):
    """Return what the server sent before it closed s, or None if s is
    still open after `within` seconds."""
    data = b""
    deadline = time.time() + within
    while True:
        left = deadline - time.time()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            return None
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def get_healthz(s):
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    return s.recv(4096)


def test_trickled_headers_are_cut_off(host_factory):
    h = host_factory(["--header-timeout", "1000"]).start()
    # One client sends half its headers and waits; the others trickle a
    # header line every 200 ms, which kept them open for good before.
    waiting = connect(h)
    waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    tricklers = [connect(h) for _ in range(50)]
    for s in tricklers:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
    start = time.time()
    closed = {}
    while len(closed) < len(tricklers) and time.time() - start < 8:
        for i, s in enumerate(tricklers):
            if i in closed:
                continue
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed[i] = time.time() - start
                continue
            if select.select([s], [], [], 0)[0]:
                closed[i] = time.time() - start
        time.sleep(0.2)
    assert len(closed) == len(tricklers), "%d of %d trickling clients still open" % (
        len(tricklers) - len(closed), len(tricklers))
    assert max(closed.values()) < 5
    answer = wait_closed(waiting, 3)
    assert answer is not None and answer.startswith(b"HTTP/1.1 408"), answer
    # A client that sends its headers in time is served as ever.
    assert h.http("GET", "/healthz")[0] == 200


def test_connections_per_address_are_capped(host_factory):
    h = host_factory(["--max-conns-per-addr", "4"]).start()
    four = [connect(h) for _ in range(4)]
    time.sleep(0.3)  # accepted before the fifth
    fifth = connect(h)
    answer = wait_closed(fifth, 5)
    assert answer is not None and answer.startswith(b"HTTP/1.1 429"), answer
    # Another address is served, and so are the four.
    other = connect(h, src="127.0.0.2")
    assert get_healthz(other).startswith(b"HTTP/1.1 200")
    assert get_healthz(four[0]).startswith(b"HTTP/1.1 200")
    # One of the four leaves: its address has room again.
    four[3].close()
    time.sleep(0.3)
    again = connect(h)
    assert get_healthz(again).startswith(b"HTTP/1.1 200")


def test_idle_connections_are_capped_oldest_first(host_factory):
    h = host_factory(["--max-idle-conns", "5"]).start()
    socks = []
    for _ in range(10):
        socks.append(connect(h))
        time.sleep(0.05)  # accepted in this order
    time.sleep(0.5)
    ready = select.select(socks, [], [], 2)[0]
    gone = [s in ready and wait_closed(s, 1) is not None for s in socks]
    assert gone == [True] * 5 + [False] * 5
    assert get_healthz(socks[9]).startswith(b"HTTP/1.1 200")
    # A connection in use is not idle: the five left are all served.
    assert h.http("GET", "/healthz")[0] == 200


def test_idle_connections_do_not_lock_ships_out(host_factory):
    # A host with 3,000 descriptors, and 3,100 idle connections: programs
    # and new clients must still find room.
    h = host_factory(["--max-conns-per-addr", "0", "--max-idle-conns", "0"])
    h.preexec_fn = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (3000, 3000))
    h.start()
    h.new_ship(KV, "locked")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4000:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    idle = []
    try:
        for _ in range(3100):
            idle.append(socket.create_connection(("127.0.0.1", h.port), timeout=10))
        time.sleep(1)  # the host takes them all in
        status, _, _ = h.http("PUT", "/s/locked/k/colour", b"blue", timeout=20)
        assert status in (200, 201, 204), h.logs()
        assert h.http("GET", "/s/locked/k/colour", timeout=20)[2] == b"blue"
        stats = h.cli_json("stats")
        assert stats["programs_running"] == 1
        assert stats["connections"] <= stats["max_connections"]
    finally:
        for s in idle:
            s.close()


def test_obs_folded_header_is_400(host):
    s = connect(host)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: one\r\n  two\r\n\r\n")
    answer = wait_closed(s, 5)
    assert answer is not None and answer.startswith(b"HTTP/1.1 400"), answer
    assert b"obs-fold" in answer
    # The admin API shares the parser.
    a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    a.settimeout(10)
    a.connect(host.data + "/admin.sock")
    a.sendall(b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nX-A: one\r\n\ttwo\r\n\r\n")
    answer = wait_closed(a, 5)
    assert answer is not None and answer.startswith(b"HTTP/1.1 400"), answer
    assert host.http("GET", "/healthz")[0] == 200


def admin_call(sock, method, path):
    """One request on a kept-alive admin connection; returns the status."""
    sock.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                  % (method, path)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([line for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:")][0].split(b":")[1])
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split()[1])


def test_wakes_close_idle_connections_for_descriptors(host_factory):
    # 1,200 descriptors: the front door may hold about 450 connections
    # while programs are few; 140 programs (4 descriptors each: 3 pipes and
    # a pidfd) need more than the idle connections leave, and take them
    # rather than wait.
    h = host_factory(["--max-conns-per-addr", "0", "--max-idle-conns", "0",
                      "--freeze-timeout", "0", "--idle-timeout", "600000"])
    h.preexec_fn = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1200, 1200))
    h.start()
    n = 140
    h.cli("ship", "new", "--program", KV, "--name", "w", "--count", str(n))
    most = h.cli_json("stats")["max_connections"]
    assert 300 < most < 600, most
    idle = [socket.create_connection(("127.0.0.1", h.port), timeout=10)
            for _ in range(most)]
    try:
        deadline = time.time() + 10
        while h.cli_json("stats")["connections"] < most and time.time() < deadline:
            time.sleep(0.1)
        admin = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        admin.settimeout(30)
        admin.connect(h.data + "/admin.sock")
        for i in range(n):
            assert admin_call(admin, "POST", "/v1/ships/w-%d/wake" % (i + 1)) == 200
        admin.close()
        stats = h.cli_json("stats")
        assert stats["programs_running"] == n
        assert stats["evictions"] == 0, stats
        assert stats["connections"] < most
    finally:
        for s in idle:
            s.close()
