#!/usr/bin/env python3
"""make bench: what TLS adds to a wake, beside the same wake over plain
HTTP and beside a TLS handshake plus request to an awake ship, one host,
same run.

Each measure is a new connection and one GET to a ship by its name
(Host: w.example.org under --domain), from before connect to the last
byte of the reply. A wake is measured from a ship asleep (POST
/v1/ships/w/sleep before it). Over TLS the ClientHello names the ship
(SNI), so its wake starts before the handshake ends; "no SNI" is the same
wake with the name in the Host header alone, which is known only once
the handshake is done and the headers are in. The kinds take turns in
each round, so that the machine's noise falls on all of them alike;
"resumed" resumes the session of the connection before it (a TLS 1.3
ticket, as a returning browser would), which skips the certificate's
signature and its check.
Target: TLS adds at most 0.5 ms to a wake (p50, TLS wake minus plain
wake).

Beside them: the host's CPU time (utime + stime from /proc) per new
connection and GET to an awake ship, over TLS and plain, which the
client's share of the machine does not touch.

Usage: tls.py BUILD DIR [N]"""
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

from crawl import free_port
from emergency import admin
from messages import pct, request

DOMAIN = "example.org"


def make_cert(d):
    cert, key = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
         "-days", "2", "-subj", "/CN=" + DOMAIN, "-addext",
         "subjectAltName=DNS:%s,DNS:*.%s" % (DOMAIN, DOMAIN)],
        check=True, capture_output=True)
    return cert, key


# The last TLS session, for a resumed handshake.
SESSION = [None]


def get(port, ctx=None, sni=None, resume=False):
    """A new connection and one GET of w's key; milliseconds. resume: the
    handshake resumes the session of the one before (a ticket: no
    certificate sent, signed or checked)."""
    t = time.perf_counter_ns()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ctx is not None:
        s = ctx.wrap_socket(s, server_hostname=sni,
                            session=SESSION[0] if resume else None)
    s.sendall(b"GET /k/x HTTP/1.1\r\nHost: w.example.org\r\n\r\n")
    r = http.client.HTTPResponse(s)
    r.begin()
    r.read()
    ms = (time.perf_counter_ns() - t) / 1e6
    if ctx is not None:
        # TLS 1.3 tickets come after the handshake: read with the reply.
        assert not resume or s.session_reused
        SESSION[0] = s.session
    s.close()
    assert r.status == 200, r.status
    return ms


def cpu_ms(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def main():
    build, d = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    berth = os.path.join(build, "berth")
    kv = os.path.abspath(os.path.join(build, "programs", "kv"))
    os.makedirs(d, exist_ok=True)
    cert, key = make_cert(d)
    data = os.path.join(d, "host")
    port, tls_port = free_port(), free_port()
    log = open(os.path.join(d, "host.log"), "wb")
    host = subprocess.Popen([berth, "serve", "--data", data, "--listen",
                             "127.0.0.1:%d" % port, "--domain", DOMAIN,
                             "--tls-listen", "127.0.0.1:%d" % tls_port,
                             "--tls-cert", cert, "--tls-key", key],
                            stderr=log)
    ctx = ssl.create_default_context(cafile=cert)
    ctx.set_alpn_protocols(["http/1.1"])
    bare = ssl.create_default_context(cafile=cert)
    bare.check_hostname = False
    kinds = {
        "plain wake": lambda: get(port),
        "TLS wake": lambda: get(tls_port, ctx, "w." + DOMAIN),
        "TLS wake, no SNI": lambda: get(tls_port, bare, None),
        "TLS wake, resumed": lambda: get(tls_port, ctx, "w." + DOMAIN, True),
    }
    awake = {
        "plain, awake": lambda: get(port),
        "TLS, awake": lambda: get(tls_port, ctx, "w." + DOMAIN),
    }
    got = {k: [] for k in list(kinds) + list(awake)}
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        subprocess.run([berth, "ship", "new", "--program", kv, "--name", "w",
                        "--data", data], check=True, capture_output=True)
        request(port, "PUT", "/s/w/k/x", b"v")
        names = list(kinds)
        for i in range(n):
            for j in range(len(names)):
                k = names[(i + j) % len(names)]
                st, _ = admin(data, "POST", "/v1/ships/w/sleep")
                assert st == 200, st
                got[k].append(kinds[k]())
                for a in awake:
                    got[a].append(awake[a]())
        # The host's CPU per connection, awake: n * 5 of each.
        cpu = {}
        for k in awake:
            c0 = cpu_ms(host.pid)
            for _ in range(n * 5):
                awake[k]()
            cpu[k] = (cpu_ms(host.pid) - c0) / (n * 5)
    finally:
        host.send_signal(signal.SIGTERM)
        host.wait(30)
        log.close()
    print("TLS at the front door, one host, %d of each: a new connection "
          "and one GET (bench/tls.py)" % n)
    for k, xs in got.items():
        print("  %-18s p50 %6.2f ms  p90 %6.2f ms" % (k, pct(xs, 50),
                                                      pct(xs, 90)))
    print("  host CPU per connection and GET, awake: TLS %.3f ms, plain "
          "%.3f ms" % (cpu["TLS, awake"], cpu["plain, awake"]))
    p = {k: pct(xs, 50) for k, xs in got.items()}
    print("  TLS adds to a wake %.2f ms (p50, TLS wake - plain wake; target "
          "0.5 ms), %.2f ms without SNI, %.2f ms resumed; a handshake to an "
          "awake ship costs %.2f ms" % (
              p["TLS wake"] - p["plain wake"],
              p["TLS wake, no SNI"] - p["plain wake"],
              p["TLS wake, resumed"] - p["plain wake"],
              p["TLS, awake"] - p["plain, awake"]))
    shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
