"""The chat room sample (programs/chat) on a real host with real WebSocket
clients (Python's websockets): two members see every message in one order,
the ship sleeps between messages (berth ship sleep, and the idle timeout)
while both sockets stay open and the next message wakes it, a kill -9 of
the program between messages or racing one loses nothing a client saw, the
history after it holds every acknowledged message once and in order, and a
host restart drops the members of its older run; and the WebSocket echo
in plain Python on a real host."""
import asyncio
import json
import os
import signal
import time

import pytest
import websockets
import websockets.exceptions

from conftest import PROGRAMS, ROOT, wait_for

CHAT = os.path.join(PROGRAMS, "chat")
ECHO = os.path.join(ROOT, "programs", "python", "echo.py")

# Generous: a wake under the sanitizers on a shared machine.
RECV_S = 30


def show(h, ship):
    return h.cli_json("ship", "show", ship)


def history(h, ship):
    status, ctype, body = h.http("GET", "/s/%s/" % ship)
    assert status == 200, body
    assert ctype == "application/json"
    return json.loads(body)


def url(h, ship, path="/"):
    return "ws://%s:%d/s/%s%s" % (h.address, h.port, ship, path)


def connect(h, ship, path="/"):
    # No pings of the client's own: the host pings, and answering is enough.
    return websockets.connect(url(h, ship, path), ping_interval=None,
                              open_timeout=RECV_S, close_timeout=5)


async def recv(ws, timeout=RECV_S):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


class Room:
    """Clients of one room and every line each has seen, in order."""

    def __init__(self, *clients):
        self.clients = list(clients)
        self.seen = {c: [] for c in self.clients}

    async def exchange(self, *said):
        """Send each (client, text) without waiting, then read as many lines
        on every client; return the lines the first client read."""
        for c, text in said:
            await c.send(text)
        for c in self.clients:
            for _ in said:
                line = await recv(c)
                assert "error" not in line, line
                self.seen[c].append(line)
        return self.seen[self.clients[0]][-len(said):]

    async def until(self, text):
        """Read every client until it sees text; return whether the lines
        each read before it were the same."""
        read = []
        for c in self.clients:
            mine = []
            while True:
                line = await recv(c)
                self.seen[c].append(line)
                mine.append(line)
                if line["text"] == text:
                    break
            read.append(mine)
        return all(r == read[0] for r in read)

    def check_one_order(self):
        """Every client saw the same lines, numbered 1, 2, 3, ... with no
        gap and no repeat; return them."""
        lines = self.seen[self.clients[0]]
        for c in self.clients[1:]:
            assert self.seen[c] == lines
        assert [m["seq"] for m in lines] == list(range(1, len(lines) + 1))
        return lines


def kill_program(h, ship, pid=None):
    """kill -9 the ship's program (pid, or the one running now) and wait
    until the host has seen it die."""
    pid = pid or show(h, ship)["pid"]
    assert pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: show(h, ship)["state"] == "asleep")


def test_chat_two_clients(host_factory):
    h = host_factory(["--freeze-timeout", "300", "--idle-timeout", "60000"]).start()
    h.new_ship(CHAT, "room")
    assert history(h, "room") == {"next": 1, "members": 0, "messages": []}

    async def session():
        # Another path is refused as plain HTTP, before any socket opens.
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            async with connect(h, "room", "/elsewhere"):
                pass
        assert e.value.status_code == 404
        async with connect(h, "room") as a, connect(h, "room") as b:
            room = Room(a, b)
            assert history(h, "room")["members"] == 2
            # Turns, then both at once: one order for both.
            for i in range(6):
                await room.exchange(((a, b)[i % 2], "turn %d" % i))
            for i in range(4):
                await room.exchange((a, "a%d" % i), (b, "b%d" % i))
            said = [m["text"] for m in room.check_one_order()]
            assert sorted(said) == sorted(["turn %d" % i for i in range(6)] +
                                          ["a%d" % i for i in range(4)] +
                                          ["b%d" % i for i in range(4)])

            # Asleep with both sockets open; the next message wakes it.
            wakes = show(h, "room")["wake_count"]
            h.cli("ship", "sleep", "room")
            assert show(h, "room")["state"] == "asleep"
            await asyncio.sleep(0.3)
            assert a.open and b.open
            await room.exchange((b, "after sleep"))
            assert show(h, "room")["wake_count"] == wakes + 1
            await room.exchange((a, "awake again"))

            # kill -9 between messages: the next one wakes it, nothing lost.
            kill_program(h, "room")
            assert a.open and b.open
            await room.exchange((a, "after kill"))
            await room.exchange((b, "after kill, b"))

            # kill -9 racing a message, at once or a little later: it may be
            # lost (its event never became durable, so nobody saw it), or
            # seen by both; then the room goes on.
            for i, delay in enumerate((0, 0, 0.001, 0.002, 0.005, 0.01)):
                pid = show(h, "room")["pid"]
                await a.send("racing %d" % i)
                time.sleep(delay)
                kill_program(h, "room", pid)
                await b.send("after race %d" % i)
                assert await room.until("after race %d" % i)

            lines = room.check_one_order()
            # The history after the wakes: every acknowledged message once,
            # in order, as the members saw them.
            got = history(h, "room")
            assert got["messages"] == lines
            assert got["next"] == len(lines) + 1
            # A new member gets the same history.
            async with connect(h, "room") as c:
                assert [await recv(c) for _ in lines] == lines
                room.clients.append(c)
                room.seen[c] = list(lines)
                await room.exchange((c, "hello from c"))
                room.check_one_order()
            # c's CLOSED reaches the ship.
            wait_for(lambda: history(h, "room")["members"] == 2, timeout=RECV_S)
        wait_for(lambda: history(h, "room")["members"] == 0, timeout=RECV_S)

    asyncio.run(session())


def test_chat_idle_sleep(host_factory):
    # Ships sleep after 1.5 s idle; the sockets stay open through every sleep.
    h = host_factory(["--freeze-timeout", "200", "--idle-timeout", "1500"]).start()
    h.new_ship(CHAT, "room")

    async def session():
        async with connect(h, "room") as a, connect(h, "room") as b:
            room = Room(a, b)
            for i in range(3):
                await room.exchange((a, "a%d" % i), (b, "b%d" % i))
                deadline = time.time() + RECV_S
                while show(h, "room")["state"] != "asleep":
                    assert time.time() < deadline, "the room never slept"
                    await asyncio.sleep(0.1)
                assert a.open and b.open
            before = show(h, "room")["wake_count"]
            await room.exchange((b, "wake"))
            assert show(h, "room")["wake_count"] == before + 1
            lines = room.check_one_order()
            assert history(h, "room")["messages"] == lines

    asyncio.run(session())


def test_chat_host_restart(host_factory):
    # Sockets do not survive the host; the room drops the members of the
    # host's older run at the first join of the new one.
    h = host_factory().start()
    h.new_ship(CHAT, "room")

    async def before():
        async with connect(h, "room") as a, connect(h, "room") as b:
            room = Room(a, b)
            await room.exchange((a, "one"), (b, "two"))
            h.stop()
            # The host closed both sockets as it stopped.
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                await asyncio.wait_for(a.recv(), RECV_S)
            return room.check_one_order()

    lines = asyncio.run(before())
    h.start()
    # The ship heard no CLOSED for them: the host was going away.
    assert history(h, "room")["members"] == 2

    async def after():
        async with connect(h, "room") as c:
            assert [await recv(c) for _ in lines] == lines
            assert history(h, "room")["members"] == 1
            await c.send("three")
            assert (await recv(c))["seq"] == 3

    asyncio.run(after())


def test_python_echo(host_factory):
    # The WebSocket echo in plain Python (programs/python/echo.py), on a
    # real host: text comes back as text, binary as binary, through a sleep.
    h = host_factory().start()
    h.new_ship(ECHO, "echo")

    async def session():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            async with connect(h, "echo", "/nowhere"):
                pass
        assert e.value.status_code == 404
        async with connect(h, "echo") as ws:
            await ws.send("h\u00e9llo")
            assert await asyncio.wait_for(ws.recv(), RECV_S) == "h\u00e9llo"
            await ws.send(b"\x00\xff")
            assert await asyncio.wait_for(ws.recv(), RECV_S) == b"\x00\xff"
            h.cli("ship", "sleep", "echo")
            assert show(h, "echo")["state"] == "asleep"
            await ws.send("again")
            assert await asyncio.wait_for(ws.recv(), RECV_S) == "again"

    asyncio.run(session())
