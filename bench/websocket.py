#!/usr/bin/env python3
"""make bench: WebSockets at the front door, one host, each figure beside a
floor measured in the same run. The timing is done by bench/ws_client.c
(C, a blocking socket a measure, so that the client's own cost stays in the
microseconds); this script starts the host, makes the ships and reads the
host's memory.

- Round trip to an awake ship: a chat ship (programs/chat) with one member;
  a text message of 64 bytes, from before its write to the whole line the
  room sends back (its event is logged and durable before the line
  leaves). Beside it, the same to programs/python/echo.py, which keeps no
  state (its events are reads, never logged), and a peer over plain HTTP:
  64-byte PUTs to a kv ship on one keep-alive connection (logged like the
  chat's messages). Floors: a raw TCP echo of 64 bytes on loopback
  (ws_client echo: a child process writes back what it reads), and for
  the logged kinds one durable write (ws_client sync: a 4 KiB pwrite and
  an fdatasync in the host's data directory); the kinds take turns each
  round. The client times each message to the frame that carries it
  back: a chat room sends its history to each new member first.
- Host memory per open WebSocket: 1,000 chat ships, woken once and put to
  sleep; the host's RSS (and its anonymous part) is read, then 10,000
  WebSockets are opened, 10 a ship, by one client process (ws_client hold,
  epoll), every ship is put to sleep again and the RSS read again: the
  difference over 10,000. Target: at most 4 KiB a socket. The kernel's
  socket buffers are not in the host's RSS; /proc/net/sockstat's TCP
  memory (the whole machine's) is given beside.
- A message to a sleeping ship, to the line back: the first socket of each
  of the first SHIPS ships (asleep) sends one message, which wakes its ship.
  Floor: the same wake without a host (ws_client floor: posix_spawn chat,
  BOOT from a one-member room, READY, the TEXT event, DONE, the event
  written and fdatasynced, the line sent back on an open loopback
  socket), as bench/idle_bench.c's wake floor does for an HTTP GET, plus the
  log write a message needs. Beside them, a peer: a GET to a sleeping chat
  ship on a fresh connection (a read, not logged), from other ships of the
  same 1,000. Wakes, GETs and floor alternate in blocks of 20.

Usage: websocket.py BUILD DIR [N]"""
import os
import shutil
import signal
import subprocess
import sys
import time

from crawl import free_port
from emergency import admin
from messages import pct, request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPS = 1000
PER_SHIP = 10
SIZE = 64
ROUNDS = 10


def client(build, *args):
    """Run ws_client with args; its latencies in microseconds."""
    out = subprocess.run([os.path.join(build, "bench", "ws_client")] +
                         [str(a) for a in args], check=True,
                         capture_output=True, text=True, timeout=600).stdout
    return [float(x) for x in out.split()]


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def tcp_mem_pages():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                v = line.split()
                return int(v[v.index("mem") + 1])
    return 0


def sleep_all(data, names):
    for name in names:
        st, v = admin(data, "POST", "/v1/ships/%s/sleep" % name)
        assert st == 200 and v["state"] == "asleep", (name, st, v)


def ms(xs, p):
    return pct(xs, p) / 1000


def main():
    build, d = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    berth = os.path.join(build, "berth")
    chat = os.path.abspath(os.path.join(build, "programs", "chat"))
    kv = os.path.abspath(os.path.join(build, "programs", "kv"))
    echo = os.path.join(ROOT, "programs", "python", "echo.py")
    os.makedirs(d, exist_ok=True)
    data = os.path.join(d, "host")
    port = free_port()
    log = open(os.path.join(d, "host.log"), "wb")
    # No sleeps but the bench's own, and 10,000 sockets from one address.
    host = subprocess.Popen([berth, "serve", "--data", data, "--listen",
                             "127.0.0.1:%d" % port, "--freeze-timeout", "0",
                             "--idle-timeout", "3600000",
                             "--max-conns-per-addr", "0"], stderr=log)
    hold = None
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)

        def cli(*args):
            return subprocess.run([berth] + list(args) + ["--data", data],
                                  check=True, capture_output=True, text=True)

        # --- Round trips to awake ships, beside a TCP echo. ---
        cli("ship", "new", "--program", chat, "--name", "room")
        cli("ship", "new", "--program", echo, "--name", "echo")
        cli("ship", "new", "--program", kv, "--name", "kv")
        rtt = {"TCP echo (floor)": [], "fdatasync (floor)": [],
               "chat (logged)": [], "echo.py (a read)": [],
               "HTTP PUT to kv": []}
        # Short rounds, the kinds in turn, so that the machine's moods
        # (the shared disk's above all) fall on every kind alike.
        warm, each = 5, max(1, n // ROUNDS)
        for r in range(ROUNDS):
            for k in (list(rtt) if r % 2 == 0 else list(rtt)[::-1]):
                m = each + warm
                if k.startswith("TCP"):
                    xs = client(build, "echo", m, SIZE)
                elif k.startswith("fdatasync"):
                    xs = client(build, "sync", data, m, SIZE)
                elif k.startswith("chat"):
                    xs = client(build, "rtt", port, "/s/room/", m, SIZE)
                elif k.startswith("HTTP"):
                    xs = client(build, "put", port, "/s/kv/k/x", m, SIZE)
                else:
                    xs = client(build, "rtt", port, "/s/echo/", m, SIZE)
                rtt[k] += xs[warm:]

        # --- Memory per socket: 10,000 sockets, 1,000 sleeping ships. ---
        cli("ship", "new", "--program", chat, "--name", "r", "--count",
            str(SHIPS))
        names = ["r-%d" % i for i in range(1, SHIPS + 1)]
        for name in names:
            st, _ = request(port, "GET", "/s/%s/" % name)
            assert st == 200, (name, st)
        sleep_all(data, names)
        time.sleep(1)
        rss0 = status_kib(host.pid, "VmRSS")
        anon0 = status_kib(host.pid, "RssAnon")
        tcp0 = tcp_mem_pages()
        t0 = time.time()
        hold = subprocess.Popen(
            [os.path.join(build, "bench", "ws_client"), "hold", str(port),
             "r", str(SHIPS), str(PER_SHIP)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = hold.stdout.readline()
        assert line.startswith("open "), line
        opened = int(line.split()[1])
        open_s = time.time() - t0
        sleep_all(data, names)
        time.sleep(1)
        rss1 = status_kib(host.pid, "VmRSS")
        anon1 = status_kib(host.pid, "RssAnon")
        tcp1 = tcp_mem_pages()

        # --- Messages to sleeping ships, beside the wake floor. ---
        wakes, gets, floor = [], [], []
        k = min(200, SHIPS // 2)
        for block in range(0, k, 20):
            for i in range(block, min(block + 20, k)):
                hold.stdin.write("send %d %d\n" % (i * PER_SHIP, SIZE))
                hold.stdin.flush()
                wakes.append(float(hold.stdout.readline()))
                hold.stdin.write("get %d\n" % (SHIPS // 2 + i + 1))
                hold.stdin.flush()
                gets.append(float(hold.stdout.readline()))
            floor += client(build, "floor", chat, d, 20, SIZE)
        hold.stdin.write("quit\n")
        hold.stdin.flush()
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(60)
        log.close()
        if hold is not None:
            hold.kill()
            hold.wait()

    print("WebSockets at the front door, one host (bench/websocket.py; "
          "timed by bench/ws_client.c)")
    print("  round trip of a %d-byte message to an awake ship, %d a kind "
          "in %d rounds, kinds in turn:" % (SIZE, each * ROUNDS, ROUNDS))
    floor50 = pct(rtt["TCP echo (floor)"], 50)
    sync50 = pct(rtt["fdatasync (floor)"], 50)
    for k, xs in rtt.items():
        print("    %-18s p50 %7.1f us  p99 %7.1f us  %6.2fx the TCP echo, "
              "%5.2fx the fdatasync (p50)" % (
                  k, pct(xs, 50), pct(xs, 99), pct(xs, 50) / floor50,
                  pct(xs, 50) / sync50))
    per = (rss1 - rss0) * 1024 / opened
    per_anon = (anon1 - anon0) * 1024 / opened
    print("  host memory per open WebSocket, %d sockets to %d sleeping "
          "ships: %.0f B of RSS (%.0f B anonymous; RSS %.1f -> %.1f MiB); "
          "target 4096 B: %s" % (opened, SHIPS, per, per_anon, rss0 / 1024,
                                 rss1 / 1024,
                                 "met" if per <= 4096 else "MISSED"))
    print("    the machine's TCP buffers (/proc/net/sockstat, other work's "
          "too): %.0f B a socket; opening "
          "took %.1f s (%.0f a second)" % (
              (tcp1 - tcp0) * os.sysconf("SC_PAGESIZE") / opened, open_s,
              opened / open_s))
    print("  a message to a sleeping chat ship, to the line back, %d ships: "
          "p50 %.2f ms p99 %.2f ms; wake floor p50 %.2f ms p99 %.2f ms; "
          "%.2fx (p50) %.2fx (p99)" % (
              len(wakes), ms(wakes, 50), ms(wakes, 99), ms(floor, 50),
              ms(floor, 99), pct(wakes, 50) / pct(floor, 50),
              pct(wakes, 99) / pct(floor, 99)))
    print("    beside: a GET to a sleeping chat ship (10 members, a read) on "
          "a fresh connection, p50 %.2f ms p99 %.2f ms" % (ms(gets, 50),
                                                          ms(gets, 99)))
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
