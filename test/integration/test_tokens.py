"""Tokens of the admin API on TCP: every request needs one, of a scope high
enough for its route; the socket needs none and is where the first token is
made; tokens are kept as hashes, survive a restart, are revoked, and hold
on every host of a cluster; failed attempts are limited per address and
logged, without flooding the log. The fixtures check that no program
outlives a test."""
import base64
import json
import os
import subprocess
import time

from conftest import BERTH, KV, admin_tcp, free_port, wait_for


tcp = admin_tcp


def code(v):
    return v["error"]["code"] if isinstance(v, dict) and "error" in v else None


def new_token(h, scope, name=None):
    """A token made over the host's socket, with the CLI: its text."""
    args = ["token", "new", "--scope", scope] + (["--name", name] if name else [])
    r = h.cli(*args)
    assert r.stdout.count("\n") == 1 and r.stdout.startswith("bt_"), r.stdout
    assert "shown this once" in r.stderr
    return r.stdout.strip()


def cli(port, *args, token=None, check=True):
    env = dict(os.environ)
    env.pop("BERTH_TOKEN", None)
    if token is not None:
        env["BERTH_TOKEN"] = token
    r = subprocess.run([BERTH] + list(args) + ["--admin", "127.0.0.1:%d" % port],
                       capture_output=True, text=True, timeout=60, env=env)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def tcp_host(host_factory, address="127.0.0.1", name="host"):
    port = free_port()
    h = host_factory(["--admin", "%s:%d" % (address, port)], name=name).start()
    return h


# A well-formed token no host made.
STRANGER = "bt_" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


def test_scopes_over_tcp(host_factory):
    h = tcp_host(host_factory, address="0.0.0.0")
    port = h.admin_port

    # No token, a stranger's, a malformed one: 401 with a clear error.
    for token in (None, STRANGER, "not-a-token"):
        status, headers, v = tcp(port, "GET", "/v1/stats", token)
        assert status == 401 and code(v) == "unauthorized", (token, status, v)
        assert headers.get("WWW-Authenticate") == "Bearer"
        assert "berth token new" in v["error"]["message"]
    # Every request, /healthz included, on loopback too.
    assert tcp(port, "GET", "/healthz")[0] == 401

    read = new_token(h, "read", "reader")
    operate = new_token(h, "operate")
    admin = new_token(h, "admin", "root")

    # read: looks, and nothing else.
    assert tcp(port, "GET", "/v1/stats", read)[0] == 200
    assert tcp(port, "GET", "/v1/ships", read)[0] == 200
    assert tcp(port, "GET", "/healthz", read)[0] == 200
    status, _, v = tcp(port, "POST", "/v1/ships", read, {"program": KV, "name": "a"})
    assert status == 403 and code(v) == "forbidden", v
    assert "needs operate" in v["error"]["message"]
    assert tcp(port, "GET", "/v1/tokens", read)[0] == 403

    # operate: ships, not tokens nor the cluster.
    status, _, v = tcp(port, "POST", "/v1/ships", operate, {"program": KV, "name": "a"})
    assert status == 201, v
    assert tcp(port, "POST", "/v1/ships/a/send", operate, "put k v")[0] == 200
    assert tcp(port, "GET", "/v1/ships/a", read)[0] == 200
    status, _, v = tcp(port, "POST", "/v1/tokens", operate, {"scope": "read"})
    assert status == 403 and "needs admin" in v["error"]["message"]
    assert tcp(port, "POST", "/v1/cluster/join", operate, {"peer": "127.0.0.1:1"})[0] == 403

    # admin: makes tokens over TCP as well, and lists them without secrets.
    status, _, v = tcp(port, "POST", "/v1/tokens", admin, {"scope": "read", "name": "ci"})
    assert status == 201, v
    made = v["token"]
    assert v["scope"] == "read" and v["name"] == "ci" and v["account"] == 0
    assert tcp(port, "GET", "/v1/stats", made)[0] == 200
    status, _, listed = tcp(port, "GET", "/v1/tokens", admin)
    assert status == 200
    text = json.dumps(listed)
    assert sorted(t["name"] or "" for t in listed["tokens"]) == ["", "ci", "reader", "root"]
    for secret in (read, operate, admin, made):
        assert secret not in text
    assert all("token" not in t and "hash" not in t for t in listed["tokens"])
    assert tcp(port, "POST", "/v1/tokens", admin, {"scope": "root"})[0] == 400
    assert tcp(port, "POST", "/v1/tokens", admin, {"scope": "read", "name": "ci"})[0] == 409

    # The CLI over TCP: BERTH_TOKEN or --token.
    out = cli(port, "--json", "ship", "ls", token=read)
    assert json.loads(out.stdout)["ships"][0]["name"] == "a"
    r = cli(port, "ship", "ls", check=False)
    assert r.returncode == 1 and r.stdout == "" and "BERTH_TOKEN" in r.stderr
    r = cli(port, "token", "ls", "--token", admin)
    assert "ci" in r.stdout and "reader" in r.stdout and made not in r.stdout
    r = cli(port, "ship", "new", "--program", KV, "--name", "b", token=read, check=False)
    assert r.returncode == 1 and "forbidden" in r.stderr

    # Revoked (by name over TCP, by id with the CLI): refused from then on.
    status, _, v = tcp(port, "DELETE", "/v1/tokens/ci", admin)
    assert status == 200, v
    assert tcp(port, "GET", "/v1/stats", made)[0] == 401
    assert tcp(port, "DELETE", "/v1/tokens/ci", admin)[0] == 404
    reader_id = [t["id"] for t in listed["tokens"] if t["name"] == "reader"][0]
    assert "revoked %s" % reader_id in h.cli("token", "revoke", reader_id).stdout
    assert tcp(port, "GET", "/v1/stats", read)[0] == 401
    # The socket never needed one.
    assert h.admin("GET", "/v1/stats")[0] == 200

    # Only hashes are kept: no token's text in the store, nor in the log.
    assert h.stop() == 0
    stored = b""
    for name in ("store.db", "store.db-wal"):
        p = os.path.join(h.data, name)
        if os.path.exists(p):
            stored += open(p, "rb").read()
    logs = open(h.log_path, "rb").read()
    for secret in (read, operate, admin, made):
        raw = base64.urlsafe_b64decode(secret[3:] + "=")
        assert secret.encode() not in stored and raw not in stored
        assert secret.encode() not in logs


def test_failures_are_limited_and_logged(host_factory):
    h = tcp_host(host_factory)
    port = h.admin_port
    good = new_token(h, "read")
    for i in range(10):
        status, _, v = tcp(port, "GET", "/v1/stats", STRANGER)
        assert status == 401, (i, status, v)
    # The address is out of tries: 429, not even a good token is looked at.
    status, headers, v = tcp(port, "GET", "/v1/stats", good)
    assert status == 429 and code(v) == "too_many_failures", (status, v)
    assert int(headers["Retry-After"]) >= 1
    # An attack goes on: answered, and the log does not follow it (a burst
    # of 20 lines, then 2 a second).
    t0 = time.time()
    for _ in range(200):
        assert tcp(port, "GET", "/v1/stats", STRANGER)[0] == 429
    elapsed = time.time() - t0
    # The socket is not limited.
    assert h.admin("GET", "/v1/stats")[0] == 200
    lines = [l for l in h.logs().splitlines() if "admin request refused" in l]
    assert 10 <= len(lines) <= 20 + 2 * elapsed + 2, (len(lines), elapsed)
    assert all("address=127.0.0.1" in l for l in lines)
    assert any('why="unknown or revoked token"' in l for l in lines)
    assert any('why="too many failed attempts"' in l for l in lines)
    # A second later the address has a try again, and a good token works.
    time.sleep(1.2)
    assert tcp(port, "GET", "/v1/stats", good)[0] == 200
    # After a quiet while, the next line logged says how many were not.
    time.sleep(1.0)
    assert tcp(port, "GET", "/v1/stats", STRANGER)[0] == 401
    wait_for(lambda: "unlogged_before=" in h.logs())


def test_tokens_survive_a_restart(host_factory):
    h = tcp_host(host_factory)
    keep = new_token(h, "operate", "keep")
    gone = new_token(h, "read", "gone")
    h.cli("token", "revoke", "gone")
    h.stop()
    h.start()
    port = h.admin_port
    assert tcp(port, "POST", "/v1/ships", keep, {"program": KV, "name": "x"})[0] == 201
    assert tcp(port, "GET", "/v1/stats", gone)[0] == 401
    # Killed, the log replays the tokens into the store.
    h.kill9()
    h.start()
    assert tcp(port, "GET", "/v1/ships/x", keep)[0] == 200
    assert tcp(port, "GET", "/v1/stats", gone)[0] == 401
    names = [t["name"] for t in h.cli_json("token", "ls")["tokens"]]
    assert names == ["keep"]


def test_token_made_on_one_host_works_on_every_host(cluster_factory):
    c = cluster_factory(3)
    for h in c.hosts:
        h.admin_port = free_port()
        h.extra = h.extra + ["--admin", "127.0.0.1:%d" % h.admin_port]
    c.start()
    lead = c.leader()
    follower = [h for h in c.hosts if h is not lead][0]
    # Made over a follower's socket: forwarded to the leader, logged,
    # applied everywhere.
    token = new_token(follower, "operate", "everywhere")

    def works_everywhere(want):
        return all(tcp(h.admin_port, "GET", "/v1/stats", token)[0] in want
                   for h in c.hosts)

    wait_for(lambda: works_everywhere((200,)), 20, step=0.1)
    # Through another host's TCP (a follower forwards to the leader, without
    # the token), a ship is made.
    other = [h for h in c.hosts if h is not lead and h is not follower][0]
    status, _, v = tcp(other.admin_port, "POST", "/v1/ships", token,
                       {"program": KV, "name": "c1"})
    assert status == 201, v
    # Revoked through a third host: refused everywhere (429 once a host
    # has seen too many of the polls below fail).
    lead.cli("token", "revoke", "everywhere")
    wait_for(lambda: works_everywhere((401, 429)), 20, step=0.2)
