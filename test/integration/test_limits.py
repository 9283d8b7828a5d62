"""Limits of accounts (docs/api.md, "Limits"): each one filled on a real
host, checking the refusal's status, code and figures, that reads still
work, and that what was written before is still there after a restart."""
import json
import time

from conftest import KV, MISBEHAVE, wait_for

FAST = ["--usage-interval", "200", "--freeze-timeout", "0"]


def error_of(body):
    return json.loads(body)["error"]


def limit(h, name, *args):
    return h.cli_json("account", "limit", name, *args)


def new_ship_api(h, name, account, count=None):
    spec = {"program": KV, "name": name, "account": account}
    if count:
        spec["count"] = count
    return h.admin("POST", "/v1/ships", spec)


def test_ships_limit(host_factory):
    h = host_factory(FAST).start()
    h.cli("account", "new", "alice")
    got = limit(h, "alice", "--ships", "2")
    assert got["limits"]["ships"] == 2 and got["limits_set"] == {"ships": 2}
    for name in ("a1", "a2"):
        status, _ = new_ship_api(h, name, "alice")
        assert status == 201
    status, body = new_ship_api(h, "a3", "alice")
    assert status == 507, body
    assert body["error"]["code"] == "limit_ships"
    assert body["error"]["limit"] == 2 and body["error"]["used"] == 2
    status, body = new_ship_api(h, "b", "alice", count=1)
    assert status == 507 and body["error"]["code"] == "limit_ships"
    r = h.cli("ship", "new", "--program", KV, "--name", "a3", "--account",
              "alice", check=False)
    assert r.returncode == 1 and "ships" in r.stderr and r.stdout == ""
    # The ships made before serve, and the other accounts are not held.
    assert h.http("PUT", "/s/a1/k/x", b"1")[0] in (200, 201, 204)
    assert h.http("GET", "/s/a1/k/x")[2] == b"1"
    assert new_ship_api(h, "anon", "anonymous")[0] == 201
    # After a restart: the data, and the limit (it is in the store).
    h.stop()
    h.start()
    assert h.http("GET", "/s/a1/k/x")[2] == b"1"
    assert new_ship_api(h, "a3", "alice")[0] == 507
    # Lifting it lets the ship be made.
    assert limit(h, "alice", "--ships", "none")["limits"]["ships"] == 0
    assert new_ship_api(h, "a3", "alice")[0] == 201


def test_storage_limit(host_factory):
    h = host_factory(FAST).start()
    h.cli("account", "new", "bob")
    h.cli("ship", "new", "--program", KV, "--name", "bob1", "--account", "bob")
    row = h.cli_json("account", "show", "bob")["usage"]["storage_bytes"]
    limit(h, "bob", "--storage-bytes", str(row + 20000))
    written = []
    refused = None
    for i in range(10):
        status, _, body = h.http("PUT", "/s/bob1/k/k%d" % i, b"v" * 5000)
        if status == 507:
            refused = error_of(body)
            break
        assert status in (200, 201, 204), (status, body)
        written.append("k%d" % i)
    assert refused is not None, "never refused"
    assert refused["code"] == "limit_storage"
    assert refused["limit"] == row + 20000
    assert refused["used"] >= refused["limit"]
    # The refused write is not there; every write before it is, and reads
    # keep working (a GET commits nothing), also of keys made before.
    assert 3 <= len(written) <= 5
    assert h.http("GET", "/s/bob1/k/k%d" % len(written))[0] == 404
    for k in written:
        status, _, body = h.http("GET", "/s/bob1/k/" + k)
        assert status == 200 and body == b"v" * 5000
    # Another write is refused too, with the same figures.
    status, _, body = h.http("PUT", "/s/bob1/k/again", b"x")
    assert status == 507 and error_of(body)["used"] == refused["used"]
    usage = h.cli_json("account", "show", "bob")["usage"]
    assert usage["events"] == len(written)
    assert usage["storage_bytes"] == refused["used"]
    h.stop()
    h.start()
    for k in written:
        assert h.http("GET", "/s/bob1/k/" + k)[2] == b"v" * 5000
    assert h.http("PUT", "/s/bob1/k/again", b"x")[0] == 507
    # A new ship of the account is refused as well: it would take storage.
    status, body = new_ship_api(h, "bob2", "bob")
    assert status == 507 and body["error"]["code"] == "limit_storage"
    # Deleting is a write too, so raising the limit is the way out.
    limit(h, "bob", "--storage-bytes", "default")
    assert h.http("PUT", "/s/bob1/k/again", b"x")[0] in (200, 201, 204)


def test_awake_limit(host_factory):
    h = host_factory(FAST).start()
    h.cli("account", "new", "cat")
    for n in ("c1", "c2"):
        h.cli("ship", "new", "--program", KV, "--name", n, "--account", "cat")
    limit(h, "cat", "--awake", "1")
    assert h.http("PUT", "/s/c1/k/x", b"1")[0] in (200, 201, 204)
    status, _, body = h.http("GET", "/s/c2/k/x")
    assert status == 429, body
    e = error_of(body)
    assert e["code"] == "limit_awake" and e["limit"] == 1 and e["used"] == 1
    assert h.cli_json("account", "show", "cat")["usage"]["ships_awake"] == 1
    # The awake ship goes on serving; once it sleeps the other wakes.
    assert h.http("GET", "/s/c1/k/x")[2] == b"1"
    h.cli("ship", "sleep", "c1")
    assert h.http("PUT", "/s/c2/k/y", b"2")[0] in (200, 201, 204)
    assert h.http("GET", "/s/c1/k/x")[0] == 429
    h.stop()
    h.start()
    assert h.http("GET", "/s/c1/k/x")[2] == b"1"
    assert h.http("GET", "/s/c2/k/y")[0] == 429


def test_events_per_second_limit(host_factory):
    h = host_factory(FAST).start()
    h.cli("account", "new", "dan")
    h.cli("ship", "new", "--program", KV, "--name", "d1", "--account", "dan")
    limit(h, "dan", "--events-per-second", "5")
    h.http("GET", "/s/d1/k/none")  # awake first: wakes take time
    ok, refused = [], []
    start = time.time()
    for i in range(30):
        status, _, body = h.http("PUT", "/s/d1/k/k%d" % i, b"v")
        if status == 429:
            refused.append(error_of(body))
        else:
            assert status in (200, 201, 204), (status, body)
            ok.append(i)
    took = time.time() - start
    assert refused, "never refused"
    assert refused[0]["code"] == "limit_events"
    assert refused[0]["limit"] == 5 and refused[0]["used"] == 5
    # At most the burst of 5 and 5 a second after it went through.
    assert len(ok) <= 5 + 5 * took + 1, (len(ok), took)
    # Reads are not events: they go on meanwhile.
    for i in ok[:3]:
        assert h.http("GET", "/s/d1/k/k%d" % i)[0] == 200
    time.sleep(1.1)
    assert h.http("PUT", "/s/d1/k/later", b"v")[0] in (200, 201, 204)
    assert h.cli_json("account", "show", "dan")["usage"]["events"] == \
        len(ok) + 1
    h.stop()
    h.start()
    for i in ok:
        assert h.http("GET", "/s/d1/k/k%d" % i)[2] == b"v"
    for i in set(range(30)) - set(ok):
        assert h.http("GET", "/s/d1/k/k%d" % i)[0] == 404


def test_cpu_per_hour_limit(host_factory):
    h = host_factory(FAST).start()
    h.cli("account", "new", "eve")
    h.cli("ship", "new", "--program", MISBEHAVE, "--name", "e1", "--account",
          "eve")
    limit(h, "eve", "--cpu-per-hour", "1")
    assert h.http("POST", "/s/e1/count")[2].strip() == b"1"
    # A read that burns 1.2 s of CPU is let through: reads are not refused.
    assert h.http("GET", "/s/e1/spin/1200")[0] == 200
    h.cli("ship", "sleep", "e1")  # its CPU is read as it exits
    status, _, body = h.http("POST", "/s/e1/count")
    assert status == 429, body
    e = error_of(body)
    assert e["code"] == "limit_cpu" and e["limit"] == 1 and e["used"] >= 1
    assert h.http("GET", "/s/e1/spin/1")[0] == 200
    h.stop()
    h.start()
    # The count committed before is there (the rates start afresh on a new
    # leader: they live in its memory).
    assert h.http("POST", "/s/e1/count")[2].strip() == b"2"


def test_host_defaults(host_factory):
    h = host_factory(FAST + ["--limit-ships", "1"]).start()
    shown = h.cli_json("account", "show", "anonymous")
    assert shown["limits"]["ships"] == 1 and shown["limits_set"] == {}
    assert "limit ships:" in h.cli("account", "show", "anonymous").stdout
    h.new_ship(KV, "first")
    status, body = new_ship_api(h, "second", "anonymous")
    assert status == 507 and body["error"]["code"] == "limit_ships"
    # A new account gets the default too; its own limit wins over it.
    h.cli("account", "new", "fay")
    assert new_ship_api(h, "f1", "fay")[0] == 201
    assert new_ship_api(h, "f2", "fay")[0] == 507
    limit(h, "fay", "--ships", "3")
    assert new_ship_api(h, "f2", "fay")[0] == 201
    bad = h.cli("account", "limit", "fay", "--ships", "-1", check=False)
    assert bad.returncode == 2 and "--ships" in bad.stderr
    status, body = h.admin("POST", "/v1/accounts/fay/limits", {"nope": 1})
    assert status == 400 and "nope" in body["error"]["message"]
