"""WebSockets at the front door, with real clients (Python's websockets)
and raw frames: open and echo, a program's refusal coming back as HTTP,
the ship asleep (and its program killed) while the socket stays open and
the next message wakes it, pings answered while asleep, the limits
(message size 1009, sockets per ship 429), bad frames closing the socket
with the host staying up, effects that leave only for open sockets, a
stopping host closing its sockets, and WebSockets over TLS."""
import asyncio
import base64
import json
import os
import socket
import ssl
import struct
import time

import pytest
import websockets

from conftest import ROOT, free_port, tagged_processes, wait_for
from test_tls import DOMAIN, certs, client_ctx, make_cert  # noqa: F401

WSECHO = os.path.join(ROOT, "test", "programs", "wsecho.py")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def url(h, path="/s/ws/chat"):
    return "ws://127.0.0.1:%d%s" % (h.port, path)


def state(h, ship="ws"):
    return h.cli_json("ship", "show", ship)["state"]


def count(h):
    status, _, body = h.http("GET", "/s/ws/count")
    assert status == 200, body
    return json.loads(body)


def stats(h):
    return h.cli_json("stats")


@pytest.fixture
def wshost(host_factory):
    h = host_factory(["--ws-max-message", "1000", "--ws-per-ship", "3",
                      "--idle-timeout", "60000"])
    h.start()
    h.new_ship(WSECHO, "ws")
    return h


def test_open_echo_and_refusal(wshost):
    h = wshost

    async def go():
        async with websockets.connect(url(h)) as ws:
            assert await ws.recv() == "hello 1"
            await ws.send("one")
            assert await ws.recv() == "1:one"
            await ws.send(b"\x00\x01\xff")
            assert await ws.recv() == b"\x00\x01\xff"
            # A message the program sends to another socket of the ship,
            # and one to a conn that is not open (dropped, counted).
            async with websockets.connect(url(h)) as ws2:
                assert await ws2.recv() == "hello 2"
                await ws2.send("all:news")
                assert await ws.recv() == "news"
                assert await ws2.recv() == "news"
                await ws2.send("stale")
                await ws2.send("after")
                assert await ws2.recv() == "5:after"
                out = h.cli("stats").stdout
                assert "websockets:       2 open, 0 opening; " in out, out
                assert "1 sends dropped" in out, out
            # The program closes a socket with its own code.
            await ws.send("close")
            await ws.wait_closed()
            assert ws.close_code == 4000 and ws.close_reason == "bye"
        # A refusal is a plain HTTP reply.
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            async with websockets.connect(url(h, "/s/ws/refuse")):
                pass
        assert e.value.status_code == 403
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            async with websockets.connect(url(h, "/s/nobody/")):
                pass
        assert e.value.status_code == 404

    run(go())
    c = count(h)
    assert c["conns"] == []
    assert c["count"] == 6
    s = stats(h)["websockets"]
    assert s["open"] == 0
    assert s["opened"] == 2
    assert s["messages_in"] == 6
    assert s["dropped"] >= 1
    # The second client closed normally; the ship heard it.
    assert c["closed"][0] == 1000


def raw_upgrade(h, path="/s/ws/raw", version="13", extra=b""):
    """A connected socket after an opening handshake: (socket, the reply's
    head, bytes after it)."""
    s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
              b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Version: " + version.encode() + b"\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\n" + extra + b"\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        got = s.recv(4096)
        if not got:
            break
        data += got
    head, _, rest = data.partition(b"\r\n\r\n")
    return s, head, rest


def frame(opcode, payload, masked=True, fin=True):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, (0x80 if masked else 0) | n])
    else:
        head = bytes([b0, (0x80 if masked else 0) | 126]) + struct.pack(">H", n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload))


class Frames:
    """The server's frames on a raw socket, one at a time."""

    def __init__(self, s, rest=b"", timeout=10):
        self.s, self.buf = s, rest
        s.settimeout(timeout)

    def next(self):
        """(opcode, payload), or None at EOF."""
        while True:
            if len(self.buf) >= 2:
                n, off = self.buf[1] & 0x7f, 2
                if n == 126 and len(self.buf) >= 4:
                    n, off = struct.unpack(">H", self.buf[2:4])[0], 4
                if n != 126 and len(self.buf) >= off + n:
                    f = (self.buf[0] & 0x0f, self.buf[off:off + n])
                    self.buf = self.buf[off + n:]
                    return f
            got = self.s.recv(65536)
            if not got:
                return None
            self.buf += got

    def until_close(self):
        """Every frame up to a close frame or EOF."""
        out = []
        while True:
            f = self.next()
            if f is None:
                return out
            out.append(f)
            if f[0] == 8:
                return out


def read_frames(s, rest=b""):
    return Frames(s, rest).until_close()


def test_bad_frames_close_the_socket(wshost):
    h = wshost
    # An unmasked client frame: 1002.
    s, head, rest = raw_upgrade(h)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"Sec-WebSocket-Accept: " in head
    s.sendall(frame(1, b"plain", masked=False))
    frames = read_frames(s, rest)
    assert frames[0] == (1, b"hello 1")
    assert frames[-1][0] == 8
    assert struct.unpack(">H", frames[-1][1][:2])[0] == 1002
    assert s.recv(100) == b""
    s.close()
    # Text that is not UTF-8: 1007.
    s, head, rest = raw_upgrade(h)
    s.sendall(frame(1, b"\xc3\x28"))
    frames = read_frames(s, rest)
    assert struct.unpack(">H", frames[-1][1][:2])[0] == 1007
    s.close()
    # Over the message limit (1000 bytes), in fragments: 1009.
    s, head, rest = raw_upgrade(h)
    s.sendall(frame(2, b"x" * 600, fin=False) + frame(0, b"y" * 600))
    frames = read_frames(s, rest)
    assert struct.unpack(">H", frames[-1][1][:2])[0] == 1009
    s.close()
    # A fragmented message under it, a ping between its fragments.
    s, head, rest = raw_upgrade(h)
    s.sendall(frame(1, b"frag", fin=False) + frame(9, b"pi") +
              frame(0, b"ment"))
    fr = Frames(s, rest)
    assert fr.next() == (1, b"hello 1")
    assert fr.next() == (10, b"pi")
    op, data = fr.next()
    assert op == 1 and data.endswith(b":fragment")
    s.sendall(frame(8, struct.pack(">H", 1000)))
    assert fr.until_close()[-1] == (8, struct.pack(">H", 1000))
    s.close()
    # Handshakes that are not valid: 400, and 426 for another version.
    s, head, _ = raw_upgrade(h, version="8")
    assert head.startswith(b"HTTP/1.1 426")
    assert b"Sec-WebSocket-Version: 13" in head
    s.close()
    s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
    s.sendall(b"GET /s/ws/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Key: short\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 400")
    s.close()
    # The host is up, and the ship heard each close.
    assert h.http("GET", "/healthz")[0] == 200
    wait_for(lambda: count(h)["conns"] == [])
    assert count(h)["closed"][0] == 1000


def test_message_too_big_and_per_ship_limit(wshost):
    h = wshost

    async def go():
        async with websockets.connect(url(h)) as ws:
            await ws.recv()
            await ws.send("x" * 1001)
            await ws.wait_closed()
            assert ws.close_code == 1009
        socks = [await websockets.connect(url(h)) for _ in range(3)]
        for ws in socks:
            await ws.recv()
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            async with websockets.connect(url(h)):
                pass
        assert e.value.status_code == 429
        await socks[0].close()
        # A socket closed makes room.
        async def fourth():
            try:
                async with websockets.connect(url(h)) as ws:
                    return await ws.recv()
            except websockets.exceptions.InvalidStatusCode:
                return None
        assert await wait_async(fourth) is not None
        for ws in socks[1:]:
            await ws.close()

    run(go())
    assert stats(h)["websockets"]["refused"] >= 1


async def wait_async(fn, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = await fn()
        if v:
            return v
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met")


def test_sleep_kill_and_pings(wshost):
    """The socket outlives the ship's sleep and its program's kill -9; pings
    are answered by the host while the ship sleeps, and the next message
    wakes it."""
    h = wshost

    async def go():
        async with websockets.connect(url(h)) as ws:
            assert await ws.recv() == "hello 1"
            await ws.send("a")
            assert await ws.recv() == "1:a"
            h.cli("ship", "sleep", "ws")
            assert state(h) == "asleep"
            assert tagged_processes(h.tag) == []
            # Pings while asleep: answered by the host, the ship sleeps on.
            for _ in range(3):
                pong = await ws.ping()
                await asyncio.wait_for(pong, 5)
            assert state(h) == "asleep"
            # The next message wakes it, from its snapshot or log.
            await ws.send("b")
            assert await ws.recv() == "2:b"
            assert state(h) != "asleep"
            # kill -9 of the program: the socket stays.
            procs = tagged_processes(h.tag)
            assert procs
            for pid, _ in procs:
                os.kill(pid, 9)
            # A message sent before the host has heard of the exit is the
            # event in flight that the crash loses; the process leaves
            # /proc's list before the host hears of it, so the host's own
            # word is waited for (it puts the ship to sleep).
            wait_for(lambda: tagged_processes(h.tag) == [] and
                     state(h) == "asleep")
            await ws.send("c")
            assert await ws.recv() == "3:c"
            # A send the host refuses (text that is not UTF-8) kills the
            # program; its event failed, the socket stays.
            await ws.send("bad")
            await asyncio.sleep(0.3)
            await ws.send("d")
            assert await ws.recv() == "4:d"

    run(go())


def test_host_pings_and_closes_silent_clients(host_factory):
    h = host_factory(["--ws-ping-ms", "300"])
    h.start()
    h.new_ship(WSECHO, "ws")
    s, head, rest = raw_upgrade(h)
    assert head.startswith(b"HTTP/1.1 101")
    # The host pings after 300 ms of silence; the client answers and stays.
    fr = Frames(s, rest, timeout=3)
    assert fr.next() == (1, b"hello 1")
    assert fr.next() == (9, b"")
    s.sendall(frame(10, b""))
    time.sleep(0.4)
    assert h.cli_json("stats")["websockets"]["open"] == 1
    # Silent now: closed after a ping unanswered (the ship hears 1006).
    wait_for(lambda: h.cli_json("stats")["websockets"]["open"] == 0, 5)
    wait_for(lambda: count(h)["conns"] == [])
    assert count(h)["closed"][0] == 1006
    s.close()


def test_stopping_host_closes_sockets(wshost):
    h = wshost

    async def go():
        ws = await websockets.connect(url(h))
        await ws.recv()
        h.stop()
        await ws.wait_closed()
        return ws.close_code

    assert run(go()) == 1001


def test_websocket_over_tls(host_factory, certs):  # noqa: F811
    tls_port = free_port()
    h = host_factory(["--domain", DOMAIN, "--tls-listen",
                      "127.0.0.1:%d" % tls_port, "--tls-cert", certs["cert"],
                      "--tls-key", certs["key"]])
    h.start()
    h.new_ship(WSECHO, "ws")
    ctx = client_ctx(certs, alpn=None)

    async def go():
        # By name under the domain, through SNI and Host.
        uri = "wss://ws.%s:%d/chat" % (DOMAIN, tls_port)
        async with websockets.connect(
                uri, ssl=ctx, host="127.0.0.1", port=tls_port,
                server_hostname="ws." + DOMAIN) as ws:
            assert await ws.recv() == "hello 1"
            await ws.send("over tls")
            assert await ws.recv() == "1:over tls"
            await ws.send(b"y" * 5000)
            assert await ws.recv() == b"y" * 5000

    run(go())


def test_backpressure_keeps_every_message_in_order(host_factory):
    """Past --ws-inflight messages on their way the host stops reading the
    socket; nothing is dropped, and replies come in order, across a
    sleep."""
    h = host_factory(["--ws-inflight", "2"])
    h.start()
    h.new_ship(WSECHO, "ws")

    async def go():
        async with websockets.connect(url(h)) as ws:
            await ws.recv()
            h.cli("ship", "sleep", "ws")
            for i in range(40):
                await ws.send("m%d" % i)
            for i in range(40):
                assert await ws.recv() == "%d:m%d" % (i + 1, i)

    run(go())
    assert count(h)["count"] == 40


def test_block_and_remove_close_sockets(wshost):
    h = wshost

    async def go():
        ws = await websockets.connect(url(h))
        await ws.recv()
        h.cli("ship", "block", "ws")
        await ws.wait_closed()
        assert ws.close_code == 1008
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            async with websockets.connect(url(h)):
                pass
        assert e.value.status_code == 403
        h.cli("ship", "unblock", "ws")
        ws = await websockets.connect(url(h))
        await ws.recv()
        h.cli("ship", "rm", "ws")
        await ws.wait_closed()
        assert ws.close_code == 1001

    run(go())
    assert h.http("GET", "/healthz")[0] == 200


def test_cluster_follower_tunnels_to_the_leader(host_factory):
    """A follower's front door passes a WebSocket to the leader and relays
    it both ways; when the leader is killed the client's socket closes,
    and connecting again to a surviving host works."""
    from test_forward import leading, start_cluster
    leader, f1, f2 = start_cluster(host_factory)
    leader.new_ship(WSECHO, "ws")
    # Each follower has heard the leader's heartbeat (its front door).
    wait_for(lambda: all(
        any(x.get("heartbeat", {}).get("leading")
            for x in f.cli_json("cluster", "ls")["hosts"]) for f in (f1, f2)))

    async def go():
        async with websockets.connect(url(f1)) as ws:
            assert await ws.recv() == "hello 1"
            await ws.send("via f1")
            assert await ws.recv() == "1:via f1"
            await ws.send(b"z" * 3000)
            assert await ws.recv() == b"z" * 3000
            # The socket lives on the leader.
            assert leader.cli_json("stats")["websockets"]["open"] == 1
            assert f1.cli_json("stats")["websockets"]["open"] == 0
            # A refusal comes back through the tunnel as HTTP.
            with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
                async with websockets.connect(url(f2, "/s/ws/refuse")):
                    pass
            assert e.value.status_code == 403
            leader.kill9()
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 20)

        # Any surviving host serves again once a new leader is elected.
        async def again():
            for h in (f1, f2):
                try:
                    async with websockets.connect(url(h)) as ws:
                        hello = await ws.recv()
                        await ws.send("back")
                        return hello, await ws.recv()
                except (websockets.exceptions.InvalidStatusCode, OSError,
                        websockets.exceptions.ConnectionClosed):
                    pass
            return None

        hello, echo = await wait_async(again, 30)
        # The ship's state is the same: the conn of the old run is
        # dropped by the program, the count goes on.
        assert hello == "hello 1"
        assert echo == "3:back"

    run(go())
    assert wait_for(lambda: leading(f1) or leading(f2))


def test_account_limit_and_disable(host_factory):
    """--ws-per-account counts the sockets of all of an account's ships;
    disabling the account closes them (1008) and refuses new ones (403)."""
    h = host_factory(["--ws-per-account", "2"])
    h.start()
    h.cli("account", "new", "alice")
    for name in ("a1", "a2"):
        h.cli("ship", "new", "--program", WSECHO, "--name", name,
              "--account", "alice")

    async def go():
        one = await websockets.connect(url(h, "/s/a1/"))
        two = await websockets.connect(url(h, "/s/a2/"))
        for ws in (one, two):
            assert await ws.recv() == "hello 1"
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            async with websockets.connect(url(h, "/s/a1/")):
                pass
        assert e.value.status_code == 429
        h.cli("account", "disable", "alice")
        for ws in (one, two):
            await ws.wait_closed()
            assert ws.close_code == 1008
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            async with websockets.connect(url(h, "/s/a1/")):
                pass
        assert e.value.status_code == 403

    run(go())
