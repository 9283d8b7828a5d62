"""The front door by name and over TLS: Host routing under --domain, HTTPS
to a ship by its name (SNI and Host), ALPN, certificate reload on SIGHUP
and on the admin API with a connection kept open, bad certificates refused
at start and on reload, garbage and cut handshakes on the TLS port, and the
early wake (a ship is awake before a slow body ends, and once a ClientHello
names it)."""
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import ROOT, admin_tcp, free_port, wait_for

DOMAIN = "example.org"


def make_cert(d, name, cn):
    """A self-signed certificate for DOMAIN and *.DOMAIN: (cert, key)."""
    cert = os.path.join(d, name + ".crt")
    key = os.path.join(d, name + ".key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
         "-days", "2", "-subj", "/CN=" + cn, "-addext",
         "subjectAltName=DNS:%s,DNS:*.%s" % (DOMAIN, DOMAIN)],
        check=True, capture_output=True)
    return cert, key


def der(cert):
    with open(cert) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


@pytest.fixture
def certs(tmpdir_path):
    """Two certificates (the first served, the second to reload to) and the
    paths the host is given, which the tests overwrite."""
    one = make_cert(tmpdir_path, "one", "one." + DOMAIN)
    two = make_cert(tmpdir_path, "two", "two." + DOMAIN)
    cert = os.path.join(tmpdir_path, "serve.crt")
    key = os.path.join(tmpdir_path, "serve.key")
    shutil.copy(one[0], cert)
    shutil.copy(one[1], key)
    return {"one": one, "two": two, "cert": cert, "key": key}


def client_ctx(certs, alpn=("h2", "http/1.1")):
    ctx = ssl.create_default_context(cafile=certs["one"][0])
    ctx.load_verify_locations(cafile=certs["two"][0])
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


class TLSClient:
    """One kept-alive HTTPS connection to the TLS port, for a server name."""

    def __init__(self, port, name, ctx):
        raw = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.s = ctx.wrap_socket(raw, server_hostname=name)
        self.name = name

    def request(self, method, path, body=b"", host=None):
        head = "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n" % (
            method, path, host or self.name, len(body))
        self.s.sendall(head.encode() + body)
        r = http.client.HTTPResponse(self.s)
        r.begin()
        return r.status, r.read()

    def close(self):
        self.s.close()


def tls_host(host_factory, certs, *extra):
    tls_port = free_port()
    h = host_factory(["--domain", DOMAIN, "--tls-listen",
                      "127.0.0.1:%d" % tls_port, "--tls-cert", certs["cert"],
                      "--tls-key", certs["key"]] + list(extra))
    h.start()
    h.tls_port = tls_port
    return h


def state(h, ship):
    return h.cli_json("ship", "show", ship)["state"]


def client_hello(name):
    """The bytes of a ClientHello asking for name, made without a
    server."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def closed_within(s, seconds):
    """Read s until the server closes it; return how long that took, or
    None if it did not within seconds."""
    start = time.time()
    s.settimeout(seconds)
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        return None
    return time.time() - start


def test_host_routing_with_domain(host_factory, certs):
    h = tls_host(host_factory, certs)
    h.new_ship(name="ann")
    st, _, _ = h.http("PUT", "/k/colour", b"blue",
                      headers={"Host": "ann." + DOMAIN})
    assert st == 201
    # Any case, any port, a trailing dot: the same ship, its path whole.
    for host in ("ann.%s" % DOMAIN, "ANN.Example.ORG:8080", "ann.%s." % DOMAIN):
        st, _, body = h.http("GET", "/k/colour", headers={"Host": host})
        assert (st, body) == (200, b"blue"), host
    # The bare domain and hosts outside it route by path, as before.
    for host in (DOMAIN, "127.0.0.1:%d" % h.port, "other.net"):
        st, _, body = h.http("GET", "/s/ann/k/colour", headers={"Host": host})
        assert (st, body) == (200, b"blue"), host
        st, _, body = h.http("GET", "/k/colour", headers={"Host": host})
        assert st == 404 and b"no such path" in body, host
    # A label that is no ship, or two labels, is an unknown ship.
    st, _, body = h.http("GET", "/k/colour", headers={"Host": "bob." + DOMAIN})
    assert st == 404 and b"no ship named bob" in body
    st, _, body = h.http("GET", "/k/colour",
                         headers={"Host": "a.ann." + DOMAIN})
    assert st == 404 and b"no ship at" in body
    # A ship under a Host has the whole path, /healthz and /s/ included.
    st, _, body = h.http("GET", "/s/ann/k/colour",
                         headers={"Host": "ann." + DOMAIN})
    assert st == 404 and body != b"blue"


def test_https_by_name_sni_and_alpn(host_factory, certs):
    h = tls_host(host_factory, certs)
    ann = h.new_ship(name="ann")
    c = TLSClient(h.tls_port, "ann." + DOMAIN, client_ctx(certs))
    try:
        assert c.s.selected_alpn_protocol() == "http/1.1"
        assert c.s.getpeercert(True) == der(certs["one"][0])
        assert c.request("PUT", "/k/x", b"over tls")[0] == 201
        assert c.request("GET", "/k/x") == (200, b"over tls")
        # The Host decides the ship; by id too, and by path on the domain.
        assert c.request("GET", "/k/x", host="%s.%s" % (ann, DOMAIN)) == \
            (200, b"over tls")
        assert c.request("GET", "/s/ann/k/x", host=DOMAIN) == \
            (200, b"over tls")
    finally:
        c.close()
    # Plain HTTP sees the same ship.
    assert h.http("GET", "/s/ann/k/x")[2] == b"over tls"
    # No ALPN at all is HTTP/1.1 as well.
    c = TLSClient(h.tls_port, "ann." + DOMAIN, client_ctx(certs, alpn=None))
    try:
        assert c.s.selected_alpn_protocol() is None
        assert c.request("GET", "/k/x") == (200, b"over tls")
    finally:
        c.close()
    # A client that offers only h2 is refused with an alert.
    with pytest.raises(ssl.SSLError) as e:
        TLSClient(h.tls_port, "ann." + DOMAIN, client_ctx(certs, alpn=("h2",)))
    assert "no application protocol" in str(e.value)
    assert h.http("GET", "/healthz")[0] == 200


def test_reload_on_sighup_keeps_open_connection(host_factory, certs):
    h = tls_host(host_factory, certs)
    h.new_ship(name="ann")
    ctx = client_ctx(certs)
    old = TLSClient(h.tls_port, "ann." + DOMAIN, ctx)
    try:
        assert old.request("PUT", "/k/a", b"1")[0] == 201
        assert old.s.getpeercert(True) == der(certs["one"][0])
        shutil.copy(certs["two"][0], certs["cert"])
        shutil.copy(certs["two"][1], certs["key"])
        h.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "TLS certificate reloaded" in h.logs())
        # The open connection goes on with what it began with.
        assert old.request("GET", "/k/a") == (200, b"1")
        new = TLSClient(h.tls_port, "ann." + DOMAIN, ctx)
        try:
            assert new.s.getpeercert(True) == der(certs["two"][0])
            assert new.request("GET", "/k/a") == (200, b"1")
        finally:
            new.close()
        assert old.request("GET", "/k/a") == (200, b"1")
    finally:
        old.close()
    # The admin call does the same, and says what it serves.
    shutil.copy(certs["one"][0], certs["cert"])
    shutil.copy(certs["one"][1], certs["key"])
    st, v = h.admin("POST", "/v1/tls/reload")
    assert st == 200 and v["reloaded"] and "one." + DOMAIN in v["cert"]
    c = TLSClient(h.tls_port, "ann." + DOMAIN, ctx)
    try:
        assert c.s.getpeercert(True) == der(certs["one"][0])
    finally:
        c.close()
    assert "reloaded" in h.cli("tls", "reload").stdout


def test_reload_is_the_operators(host_factory, certs):
    h = tls_host(host_factory, certs, "--admin", "127.0.0.1:%d" % free_port())
    account = h.cli("account", "new", "alice").stdout.strip()
    read = h.cli("token", "new", "--scope", "read").stdout.strip()
    operate = h.cli("token", "new", "--scope", "operate").stdout.strip()
    admin = h.cli("token", "new", "--scope", "admin").stdout.strip()
    for token in (None, account, read, operate):
        st, _, v = admin_tcp(h.admin_port, "POST", "/v1/tls/reload", token)
        assert st in (401, 403), (token, st, v)
    st, _, v = admin_tcp(h.admin_port, "POST", "/v1/tls/reload", admin)
    assert st == 200 and v["reloaded"]
    # A host without TLS says so.
    plain = host_factory(name="plain")
    plain.start()
    st, v = plain.admin("POST", "/v1/tls/reload")
    assert st == 404 and v["error"]["code"] == "no_tls"


def test_bad_certificate_refused_at_start(host_factory, certs, tmpdir_path):
    junk = os.path.join(tmpdir_path, "junk.pem")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    cases = [
        ([junk, certs["key"]], "no start line"),
        ([certs["cert"], certs["two"][1]], "key values mismatch"),
        ([os.path.join(tmpdir_path, "absent.pem"), certs["key"]],
         "No such file"),
    ]
    for i, ((cert, key), why) in enumerate(cases):
        h = host_factory(["--tls-listen", "127.0.0.1:%d" % free_port(),
                          "--tls-cert", cert, "--tls-key", key],
                         name="bad%d" % i)
        with pytest.raises(RuntimeError) as e:
            h.start()
        assert "berth: TLS:" in str(e.value) and why in str(e.value)
    r = subprocess.run([os.environ["BERTH_BIN"], "serve", "--tls-cert",
                        certs["cert"], "--data",
                        os.path.join(tmpdir_path, "nokey")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "go together" in r.stderr


def test_bad_certificate_refused_on_reload(host_factory, certs):
    h = tls_host(host_factory, certs)
    h.new_ship(name="ann")
    ctx = client_ctx(certs)
    with open(certs["cert"], "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    h.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "TLS certificate not reloaded" in h.logs())
    st, v = h.admin("POST", "/v1/tls/reload")
    assert st == 422 and v["error"]["code"] == "invalid_certificate"
    assert "still serves" in v["error"]["message"]
    # A key that is not the certificate's is refused too.
    shutil.copy(certs["one"][0], certs["cert"])
    shutil.copy(certs["two"][1], certs["key"])
    r = h.cli("tls", "reload", check=False)
    assert r.returncode != 0 and "key values mismatch" in r.stderr
    # The first certificate still serves.
    c = TLSClient(h.tls_port, "ann." + DOMAIN, ctx)
    try:
        assert c.s.getpeercert(True) == der(certs["one"][0])
        assert c.request("PUT", "/k/a", b"ok")[0] == 201
    finally:
        c.close()


def test_garbage_and_cut_handshakes_leave_the_host_up(host_factory, certs):
    h = tls_host(host_factory, certs, "--header-timeout", "500")
    h.new_ship(name="ann")
    hello = client_hello("ann." + DOMAIN)
    for junk in (b"GET / HTTP/1.1\r\nHost: ann.example.org\r\n\r\n",
                 os.urandom(5000), b"\x16\x03\x01\xff\xff" + os.urandom(300),
                 hello[:len(hello) // 2]):
        s = socket.create_connection(("127.0.0.1", h.tls_port), timeout=5)
        s.sendall(junk)
        s.shutdown(socket.SHUT_WR)
        assert closed_within(s, 5) is not None
        s.close()
    # A whole ClientHello, then gone at once: the handshake's answer is
    # being made on a worker thread when the connection closes.
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", h.tls_port), timeout=5)
        s.sendall(hello)
        s.close()
    # Half a ClientHello, held open: a slow handshake is slow headers.
    s = socket.create_connection(("127.0.0.1", h.tls_port), timeout=5)
    s.sendall(hello[:len(hello) // 2])
    took = closed_within(s, 5)
    s.close()
    assert took is not None and 0.3 < took < 4
    assert h.http("GET", "/healthz")[0] == 200
    c = TLSClient(h.tls_port, "ann." + DOMAIN, client_ctx(certs))
    try:
        assert c.request("PUT", "/k/a", b"still")[0] == 201
    finally:
        c.close()


def test_early_wake_over_plain_http(host_factory, certs):
    h = tls_host(host_factory, certs)
    h.new_ship(name="ann")
    assert h.cli_json("ship", "sleep", "ann")["state"] == "asleep"
    s = socket.create_connection((h.address, h.port), timeout=15)
    try:
        s.sendall(b"PUT /k/slow HTTP/1.1\r\nHost: ann.example.org\r\n"
                  b"Content-Length: 8\r\n\r\nfour")
        # Half the body is in; the ship wakes meanwhile.
        wait_for(lambda: state(h, "ann") == "awake", timeout=10)
        s.sendall(b"more")
        r = http.client.HTTPResponse(s)
        r.begin()
        assert r.status == 201
    finally:
        s.close()
    assert h.http("GET", "/s/ann/k/slow")[2] == b"fourmore"
    # By path too, and for a body that never comes the ship is only awake.
    assert h.cli_json("ship", "sleep", "ann")["state"] == "asleep"
    s = socket.create_connection((h.address, h.port), timeout=15)
    try:
        s.sendall(b"PUT /s/ann/k/never HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 100\r\n\r\n")
        wait_for(lambda: state(h, "ann") == "awake", timeout=10)
    finally:
        s.close()
    assert h.http("GET", "/s/ann/k/never")[0] == 404
    # A blocked ship is not woken by headers.
    h.cli("ship", "block", "ann")
    h.cli("ship", "sleep", "ann", check=False)
    wait_for(lambda: state(h, "ann") == "asleep")
    s = socket.create_connection((h.address, h.port), timeout=15)
    try:
        s.sendall(b"PUT /s/ann/k/x HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 100\r\n\r\n")
        time.sleep(0.5)
        assert state(h, "ann") == "asleep"
    finally:
        s.close()


def test_early_wake_thaws_a_frozen_ship(host_factory, certs):
    # Frozen soon, and awake long enough after a thaw for the CLI to see.
    h = tls_host(host_factory, certs, "--freeze-timeout", "1500")
    h.new_ship(name="ann")
    assert h.http("PUT", "/s/ann/k/a", b"1")[0] == 201
    wait_for(lambda: state(h, "ann") == "frozen", timeout=10)
    s = socket.create_connection((h.address, h.port), timeout=15)
    try:
        s.sendall(b"PUT /k/b HTTP/1.1\r\nHost: ann.example.org\r\n"
                  b"Content-Length: 2\r\n\r\n")
        wait_for(lambda: state(h, "ann") == "awake", timeout=5)
        s.sendall(b"22")
        r = http.client.HTTPResponse(s)
        r.begin()
        assert r.status == 201
    finally:
        s.close()


def test_sni_wakes_the_ship_before_the_handshake_ends(host_factory, certs):
    h = tls_host(host_factory, certs)
    h.new_ship(name="ann")
    h.new_ship(name="bob")
    for ship in ("ann", "bob"):
        assert h.cli_json("ship", "sleep", ship)["state"] == "asleep"
    s = socket.create_connection(("127.0.0.1", h.tls_port), timeout=15)
    try:
        # The ClientHello alone: the handshake never goes on.
        s.sendall(client_hello("ann." + DOMAIN))
        wait_for(lambda: state(h, "ann") == "awake", timeout=10)
    finally:
        s.close()
    assert state(h, "bob") == "asleep"
    # A name outside the domain, or the bare domain, wakes nothing.
    for name in (DOMAIN, "bob.other.net"):
        s = socket.create_connection(("127.0.0.1", h.tls_port), timeout=15)
        s.sendall(client_hello(name))
        time.sleep(0.3)
        s.close()
    assert state(h, "bob") == "asleep"


def test_handshakes_to_sleeping_and_awake_ships(host_factory, certs):
    # A name whose ship sleeps has the handshake's answer made and sent by
    # a worker thread while the loop wakes the ship; an awake ship's, or no
    # name, has it made on the loop. Every kind, and a resumed session,
    # must end in a served request.
    h = tls_host(host_factory, certs)
    h.new_ship(name="ann")
    ctx = client_ctx(certs)
    c = TLSClient(h.tls_port, "ann." + DOMAIN, ctx)
    try:
        assert c.request("PUT", "/k/a", b"hello")[0] == 201
    finally:
        c.close()
    session = None
    for i in range(6):
        assert h.cli_json("ship", "sleep", "ann")["state"] == "asleep"
        raw = socket.create_connection(("127.0.0.1", h.tls_port), timeout=15)
        s = ctx.wrap_socket(raw, server_hostname="ann." + DOMAIN,
                            session=session if i % 2 else None)
        c = TLSClient.__new__(TLSClient)
        c.s, c.name = s, "ann." + DOMAIN
        try:
            assert c.request("GET", "/k/a") == (200, b"hello")
            assert s.session_reused == bool(i % 2 and session is not None)
            session = s.session
        finally:
            c.close()
        assert state(h, "ann") == "awake"
        c = TLSClient(h.tls_port, "ann." + DOMAIN, ctx)
        try:
            assert c.request("GET", "/k/a") == (200, b"hello")
        finally:
            c.close()
    bare = ssl.create_default_context(cafile=certs["one"][0])
    bare.check_hostname = False
    raw = socket.create_connection(("127.0.0.1", h.tls_port), timeout=15)
    c = TLSClient.__new__(TLSClient)
    c.s, c.name = bare.wrap_socket(raw), "ann." + DOMAIN
    try:
        assert c.request("GET", "/k/a") == (200, b"hello")
    finally:
        c.close()


def test_socket_activation(host_factory, certs):
    """Both doors from a service manager, as berth.socket and
    berth-tls.socket pass them: a TLS handshake begun while the host
    restarts waits in the socket and is answered by the next process."""
    plain, tls = socket.socket(), socket.socket()
    for s in (plain, tls):
        s.bind(("127.0.0.1", 0))
        s.listen(128)
    h = host_factory(["--domain", DOMAIN, "--tls-cert", certs["cert"],
                      "--tls-key", certs["key"]])
    h.port = plain.getsockname()[1]
    port = tls.getsockname()[1]
    h.pass_fds = (plain.fileno(), tls.fileno())
    h.prefix = ["python3", os.path.join(ROOT, "test", "activate.py"), "--fd",
                str(plain.fileno()), "--tls-fd", str(tls.fileno())]
    h.start()
    assert "TLS socket from the service manager" in h.logs()
    h.new_ship(name="ann")
    c = TLSClient(port, "ann." + DOMAIN, client_ctx(certs))
    assert c.request("PUT", "/k/a", b"sealed")[0] in (200, 201)
    c.close()
    h.proc.send_signal(signal.SIGTERM)
    assert h.proc.wait(20) == 0
    h.stop()
    # No host runs: the connection is not refused, and its handshake ends
    # once the next process takes the socket.
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    got = {}

    def ask():
        s = client_ctx(certs).wrap_socket(raw, server_hostname="ann." + DOMAIN)
        s.sendall(b"GET /k/a HTTP/1.1\r\nHost: ann.%s\r\n\r\n"
                  % DOMAIN.encode())
        r = http.client.HTTPResponse(s)
        r.begin()
        got["reply"] = (r.status, r.read())
        s.close()

    t = threading.Thread(target=ask)
    t.start()
    h.start()
    t.join(30)
    assert got.get("reply") == (200, b"sealed"), got
    assert h.stop() == 0
    plain.close()
    tls.close()


def test_tls_socket_without_cert(host_factory):
    """A socket named tls on a host without a certificate is closed, with a
    warning: its clients are refused, not left waiting."""
    plain, tls = socket.socket(), socket.socket()
    for s in (plain, tls):
        s.bind(("127.0.0.1", 0))
        s.listen(128)
    h = host_factory()
    h.port = plain.getsockname()[1]
    h.pass_fds = (plain.fileno(), tls.fileno())
    h.prefix = ["python3", os.path.join(ROOT, "test", "activate.py"), "--fd",
                str(plain.fileno()), "--tls-fd", str(tls.fileno())]
    h.start()
    assert "passed a socket named tls but the host has no --tls-cert" \
        in h.logs()
    assert h.http("GET", "/healthz")[0] == 200
    assert h.stop() == 0
    plain.close()
    tls.close()
